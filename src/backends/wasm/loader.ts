/**
 * Finds, picks and compiles the WebAssembly build that this runtime can run.
 *
 * Four builds sit in dist/wasm: baseline SIMD128 and relaxed SIMD, each for a shared (threads) memory
 * and a plain one. Relaxed SIMD is chosen only when the engine validates a relaxed opcode (Node 20 needs
 * --experimental-wasm-relaxed-simd; Deno and Chromium have it on).
 */

export type SimdFlavour = 'simd' | 'relaxed';

// (func (param v128 v128 v128) (result v128) local.get 0 local.get 1 local.get 2 f32x4.relaxed_madd)
const RELAXED_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x08, 0x01, 0x60, 0x03, 0x7b, 0x7b, 0x7b, 0x01, 0x7b,
  0x03, 0x02, 0x01, 0x00,
  0x0a, 0x0d, 0x01, 0x0b, 0x00, 0x20, 0x00, 0x20, 0x01, 0x20, 0x02, 0xfd, 0x85, 0x02, 0x0b,
]);

// (func (param v128 v128) (result v128) local.get 0 local.get 1 f32x4.add)
const SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x07, 0x01, 0x60, 0x02, 0x7b, 0x7b, 0x01, 0x7b,
  0x03, 0x02, 0x01, 0x00,
  0x0a, 0x0b, 0x01, 0x09, 0x00, 0x20, 0x00, 0x20, 0x01, 0xfd, 0xe4, 0x01, 0x0b,
]);

export function hasSimd(): boolean {
  return typeof WebAssembly === 'object' && WebAssembly.validate(SIMD_PROBE);
}

export function hasRelaxedSimd(): boolean {
  return typeof WebAssembly === 'object' && WebAssembly.validate(RELAXED_PROBE);
}

/** True when a shared WebAssembly.Memory can be created (SharedArrayBuffer available, page isolated). */
export function hasSharedMemory(): boolean {
  if (typeof SharedArrayBuffer === 'undefined') return false;
  try {
    return new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }).buffer instanceof SharedArrayBuffer;
  } catch {
    return false;
  }
}

/** True when this thread may block in Atomics.wait (not a browser's main thread). */
export function canBlock(): boolean {
  if (typeof SharedArrayBuffer === 'undefined') return false;
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
    return true;
  } catch {
    return false;
  }
}

export function wasmFileName(flavour: SimdFlavour, shared: boolean): string {
  return `adaptkit-${flavour}${shared ? '-mt' : ''}.wasm`;
}

/**
 * Where the .wasm files may be, relative to this module: from the source tree (src/backends/wasm/) and
 * from a bundle in dist/ (dist/wasm/ beside it, or one level up from dist/<sub>/).
 */
function candidateDirs(): URL[] {
  const here = import.meta.url;
  return [new URL('../../../dist/wasm/', here), new URL('./wasm/', here), new URL('../wasm/', here)];
}

async function readUrl(url: URL): Promise<Uint8Array<ArrayBuffer> | undefined> {
  try {
    if (url.protocol === 'file:' && typeof process !== 'undefined' && process.versions?.node) {
      const { readFile } = await import('node:fs/promises');
      return new Uint8Array(await readFile(url));
    }
    const res = await fetch(url);
    return res.ok ? new Uint8Array(await res.arrayBuffer()) : undefined;
  } catch {
    return undefined;
  }
}

export interface LoadedModule {
  readonly module: WebAssembly.Module;
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly flavour: SimdFlavour;
  readonly shared: boolean;
  readonly source: string;
}

/**
 * Compiles one build. `dir` overrides where the files are looked for (a directory URL ending in '/').
 */
export async function loadWasmModule(flavour: SimdFlavour, shared: boolean, dir?: string | URL): Promise<LoadedModule> {
  const name = wasmFileName(flavour, shared);
  const dirs = dir !== undefined ? [new URL(String(dir))] : candidateDirs();
  for (const d of dirs) {
    const url = new URL(name, d);
    const bytes = await readUrl(url);
    if (bytes) return { module: await WebAssembly.compile(bytes), bytes, flavour, shared, source: url.href };
  }
  throw new Error(`wasm backend: ${name} not found in ${dirs.map((d) => d.href).join(', ')} (run \`npm run build\`)`);
}
