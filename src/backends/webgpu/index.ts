/**
 * The webgpu backend: WGSL kernels (wgsl/*.wgsl) on a WebGPU device, in Node (Dawn), Deno and browsers.
 */
import type { Backend, ExecutionPlan, Executable, WeightSources } from '../backend.js';
import { WeightPool } from '../weight-pool.js';
import { WebgpuError } from './errors.js';
import { GpuContext, type GpuContextOptions } from './device.js';
import { loadPlan, measurePlanBuffers, type LoadLimits, type PlanBuffers } from './executable.js';
import { ADAMW_HYPER_BYTES, adamwKernel, recordAdamw } from './kernels/adamw.js';
import { webgpuKernels } from './kernels/index.js';
import { PipelineCache } from './pipelines.js';
import type { WgslSources } from './wgsl.js';

export interface WebgpuBackendOptions extends GpuContextOptions {
  /** Kernel sources by file name (without .wgsl), for hosts that cannot read the wgsl/ folder. */
  readonly wgsl?: WgslSources;
  /** Use this context instead of creating one (it is not destroyed by dispose()). */
  readonly context?: GpuContext;
}

export interface WebgpuBackend extends Backend {
  readonly name: 'webgpu';
  readonly context: GpuContext;
}

export async function createWebgpuBackend(opts: WebgpuBackendOptions = {}): Promise<WebgpuBackend> {
  const ctx = opts.context ?? (await GpuContext.create(opts));
  const owned = opts.context === undefined;
  const pipelines = new PipelineCache(ctx, opts.wgsl);
  const loaded = new Set<Executable>();
  const pool = new WeightPool<GPUBuffer>();
  return {
    name: 'webgpu',
    context: ctx,
    describe: () => ctx.describe(),
    // WebGPU does not tell how much device memory there is; what it does bound is each buffer.
    memoryCaps: () => ({ bufferBytes: Math.min(ctx.limits.maxBufferSize, ctx.limits.maxStorageBufferBindingSize) }),
    async load(plan: ExecutionPlan, weights?: WeightSources): Promise<Executable> {
      for (const value of weights?.keys() ?? []) {
        if (!plan.weights.some((w) => w.value === value)) throw new WebgpuError(`weights: %${value} is not a weight of this plan`);
      }
      const exe = await loadPlan(ctx, pipelines, plan, { kernels: webgpuKernels, adamw: recordAdamw, adamwKernel, adamwHyperBytes: ADAMW_HYPER_BYTES, pool, ...(weights ? { weights } : {}) });
      loaded.add(exe);
      // Forgotten once disposed, so a long-lived backend does not pin every plan it ever loaded.
      const dispose = exe.dispose.bind(exe);
      exe.dispose = () => { loaded.delete(exe); dispose(); };
      return exe;
    },
    dispose(): void {
      for (const e of loaded) e.dispose();
      loaded.clear();
      if (owned) ctx.destroy();
    },
  };
}

/**
 * The GPU buffers `plan` takes once loaded on the webgpu backend (arena with its constants and scratch, each
 * weight's own buffer, uniforms), computed without a device by recording the steps as loading would. Pass
 * an adapter's limits to size for it (they decide some kernels' tiling); the defaults are WebGPU's minimums.
 */
export function webgpuPlanBuffers(plan: ExecutionPlan, limits?: LoadLimits): Promise<PlanBuffers> {
  return measurePlanBuffers(plan, webgpuKernels, limits);
}

export { GpuContext } from './device.js';
export type { LoadLimits, PlanBuffers } from './executable.js';
export type { AdapterSummary, GpuContextOptions } from './device.js';
export { WebgpuError } from './errors.js';
