/** Entry point of the adaptkit command (Node, Deno and Bun). */
import { main } from './commands.js';

main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
