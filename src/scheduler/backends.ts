/**
 * Backend choice. `auto` takes a hardware WebGPU adapter first, then WebAssembly; a software WebGPU
 * adapter (SwiftShader, llvmpipe) is slower than wasm on the same CPU, so auto passes it over unless
 * `allowSoftwareGpu` is set. Every choice comes with the reason, for `adaptkit info` and logs.
 */
import type { Backend } from '../backends/backend.js';
import { createJsBackend } from '../backends/js/index.js';
import { withFallback } from './fallback.js';

export type BackendChoice = 'auto' | 'webgpu' | 'wasm' | 'js';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'webgpu', 'wasm', 'js'];

export interface BackendOptions {
  /** wasm worker threads (default: hardware concurrency, at most 8). */
  threads?: number;
  /** Let `auto` use a software WebGPU adapter. */
  allowSoftwareGpu?: boolean;
  /** Where `auto` reports falling back from WebGPU to wasm (default: console.warn). */
  warn?: (message: string) => void;
}

export interface ChosenBackend { backend: Backend; reason: string }

async function wasm(o: BackendOptions): Promise<Backend> {
  const { createWasmBackend } = await import('../backends/wasm/index.js');
  return createWasmBackend(o.threads !== undefined ? { threads: o.threads } : {});
}

async function webgpu(): Promise<Backend & { context: { adapter: { software: boolean; description: string } } }> {
  const { createWebgpuBackend } = await import('../backends/webgpu/index.js');
  return createWebgpuBackend() as never;
}

export async function createBackend(choice: BackendChoice | string = 'auto', o: BackendOptions = {}): Promise<ChosenBackend> {
  switch (choice) {
    case 'js': return { backend: createJsBackend(), reason: 'asked for js' };
    case 'wasm': return { backend: await wasm(o), reason: 'asked for wasm' };
    case 'webgpu': {
      try {
        return { backend: await webgpu(), reason: 'asked for webgpu' };
      } catch (e) {
        throw new Error(`the webgpu backend was asked for but is not available: ${(e as Error).message}`);
      }
    }
    case 'auto': {
      let why: string;
      try {
        const gpu = await webgpu();
        if (!gpu.context.adapter.software || o.allowSoftwareGpu) {
          // A lost device or a failing kernel moves the run to wasm instead of ending it.
          return { backend: withFallback(gpu, () => wasm(o), o.warn ?? ((m) => console.warn(`adaptkit: ${m}`))), reason: `auto: WebGPU adapter ${gpu.describe()}` };
        }
        why = `the only WebGPU adapter is a software one (${gpu.describe()}), slower than wasm on this CPU`;
        gpu.dispose();
      } catch (e) {
        why = `no WebGPU adapter (${(e as Error).message.split('\n')[0]})`;
      }
      try {
        const b = await wasm(o);
        return { backend: b, reason: `auto: ${b.describe()}, because ${why}` };
      } catch (e) {
        return { backend: createJsBackend(), reason: `auto: js, because ${why} and wasm failed to load (${(e as Error).message})` };
      }
    }
    default:
      throw new Error(`unknown backend '${choice}' (choose one of ${BACKEND_CHOICES.join(', ')})`);
  }
}
