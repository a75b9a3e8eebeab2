/** The backends a parity test compares against js: wasm always; webgpu where an adapter exists. */
import { existsSync } from 'node:fs';
import type { Backend } from '../../src/backends/backend.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { createBackend } from '../../src/scheduler/backends.js';

/** The Vulkan driver scripts/setup.sh installs (Debian's chromium ships SwiftShader's), which gives Dawn an adapter. */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/**
 * Why this machine must have a WebGPU adapter, or null where none is promised. Where setup installed
 * SwiftShader, or in CI (which runs setup), a missing adapter is a failure, never a skip.
 */
export function webgpuRequired(): string | null {
  if (existsSync(SWIFTSHADER_ICD)) return `${SWIFTSHADER_ICD} is installed (scripts/setup.sh)`;
  if (process.env.CI) return 'CI is set';
  return null;
}

export async function otherBackends(): Promise<{ name: string; backend: Backend }[]> {
  const out = [
    { name: 'wasm 1 thread', backend: (await createBackend('wasm', { threads: 1 })).backend },
    { name: 'wasm 2 threads', backend: (await createBackend('wasm', { threads: 2 })).backend },
  ];
  try {
    out.push({ name: 'webgpu', backend: (await createBackend('webgpu')).backend });
  } catch (e) {
    const required = webgpuRequired();
    if (required) throw new Error(`no WebGPU adapter, though ${required}: ${(e as Error).message}`);
    console.warn(`webgpu left out: no adapter and no Vulkan driver installed here (run scripts/setup.sh): ${(e as Error).message}`);
  }
  return out;
}

export const js = (): Backend => createJsBackend();

/** Largest relative difference between two loss curves, step by step. */
export function curveDiff(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length) throw new Error(`curves of ${a.length} and ${b.length} steps`);
  return Math.max(...a.map((x, i) => Math.abs(x - b[i]!) / Math.max(Math.abs(x), 1e-12)));
}
