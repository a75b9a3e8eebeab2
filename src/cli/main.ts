/** Entry point of the adaptkit command (Node and Deno). */
import { main } from './commands.js';

main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
