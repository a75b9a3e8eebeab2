/** The backends a parity test compares against js: wasm always; webgpu where an adapter exists. */
import type { Backend } from '../../src/backends/backend.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { createBackend } from '../../src/scheduler/backends.js';

export async function otherBackends(): Promise<{ name: string; backend: Backend }[]> {
  const out = [
    { name: 'wasm 1 thread', backend: (await createBackend('wasm', { threads: 1 })).backend },
    { name: 'wasm 2 threads', backend: (await createBackend('wasm', { threads: 2 })).backend },
  ];
  if (process.env.ADAPTKIT_TEST_WEBGPU !== '0') {
    try {
      out.push({ name: 'webgpu', backend: (await createBackend('webgpu')).backend });
    } catch (e) {
      // CI installs SwiftShader, so a missing adapter there is a failure, not a skip.
      if (process.env.CI) throw e;
      console.warn(`webgpu not available here: ${(e as Error).message}`);
    }
  }
  return out;
}

export const js = (): Backend => createJsBackend();

/** Largest relative difference between two loss curves, step by step. */
export function curveDiff(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length) throw new Error(`curves of ${a.length} and ${b.length} steps`);
  return Math.max(...a.map((x, i) => Math.abs(x - b[i]!) / Math.max(Math.abs(x), 1e-12)));
}
