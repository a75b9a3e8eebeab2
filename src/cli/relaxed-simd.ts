/**
 * Node 20's V8 validates relaxed-SIMD opcodes only behind --experimental-wasm-relaxed-simd (Node 22, Deno
 * and browsers have them on). The flag is read when a module is compiled, so setting it at start-up, before
 * the wasm backend loads, gives the CLI the faster relaxed build without asking users for a node flag.
 */
import { createRequire } from 'node:module';

export function enableRelaxedSimd(): void {
  const node = (globalThis as { process?: { versions?: { node?: string; deno?: string; bun?: string } } }).process?.versions;
  if (!node?.node || node.deno || node.bun) return;
  if (Number(node.node.split('.')[0]) >= 22) return;
  try {
    const v8 = createRequire(import.meta.url)('node:v8') as { setFlagsFromString(flags: string): void };
    v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
  } catch {
    // An embedder without node:v8 keeps the baseline SIMD build.
  }
}
