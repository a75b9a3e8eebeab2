/** Entry point of the adaptkit command (Node, Deno and Bun). */
import { enableRelaxedSimd } from './relaxed-simd.js';
import { main } from './commands.js';

enableRelaxedSimd();
main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
