/**
 * Memory estimates from a plan, before anything is allocated: what a backend will hold for it (weights,
 * the arena with its activations, optimizer state and KV caches, the kernels' workspace) and whether that
 * fits the backend's limits. Planning a graph allocates nothing, so a run can be checked, and cheaper
 * variants tried, before its first step.
 */
import type { Backend, BackendName, ExecutionPlan, MemoryCaps } from '../backends/backend.js';
import { numel } from '../graph/types.js';

export interface MemoryEstimate {
  readonly backend: BackendName;
  /** Every param: frozen weights in their stored types, and the trained adapter parameters. */
  readonly weightBytes: number;
  /** The arena less optimizer state and KV caches: activations, gradients, inputs. */
  readonly activationBytes: number;
  /** AdamW's moments and gradient-accumulation sums (states of the plan). */
  readonly optimizerBytes: number;
  /** KV caches of a decoding plan. */
  readonly kvCacheBytes: number;
  /** Kernel scratch and constants beyond the plan's values. */
  readonly workspaceBytes: number;
  /** The arena: the largest single allocation besides the biggest weight. */
  readonly arenaBytes: number;
  /** The biggest single weight. */
  readonly largestWeightBytes: number;
  /** All of the above that the backend holds. */
  readonly totalBytes: number;
}

const OPTIMIZER_STATE = /\.(adam_m|adam_v|grad_sum)$/;
const KV_CACHE = /\.(k_cache|v_cache)$/;

export function estimatePlanMemory(plan: ExecutionPlan, backend: Backend): MemoryEstimate {
  const weightBytes = plan.weights.reduce((a, w) => a + w.bytes, 0);
  const largestWeightBytes = plan.weights.reduce((a, w) => Math.max(a, w.bytes), 0);
  let optimizerBytes = 0, kvCacheBytes = 0;
  for (const v of plan.values) {
    if (v.kind !== 'state') continue;
    const bytes = numel(v.shape) * 4;
    if (OPTIMIZER_STATE.test(v.name ?? '')) optimizerBytes += bytes;
    else if (KV_CACHE.test(v.name ?? '')) kvCacheBytes += bytes;
  }
  const arenaBytes = plan.arenaElems * 4;
  const workspaceBytes = backend.workspaceBytes?.(plan) ?? 0;
  return {
    backend: backend.name, weightBytes, activationBytes: arenaBytes - optimizerBytes - kvCacheBytes, optimizerBytes, kvCacheBytes,
    workspaceBytes, arenaBytes, largestWeightBytes, totalBytes: weightBytes + arenaBytes + workspaceBytes,
  };
}

/** Why an estimate does not fit a backend's limits; undefined when it fits. */
export function memoryProblem(e: MemoryEstimate, caps: MemoryCaps | undefined, extraBytes = 0): string | undefined {
  if (!caps) return undefined;
  if (caps.bufferBytes !== undefined) {
    if (e.arenaBytes + e.workspaceBytes > caps.bufferBytes) {
      return `its arena of activations needs ${formatBytes(e.arenaBytes + e.workspaceBytes)} in one buffer; ${e.backend} allows ${formatBytes(caps.bufferBytes)}`;
    }
    if (e.largestWeightBytes > caps.bufferBytes) {
      return `its largest weight needs ${formatBytes(e.largestWeightBytes)} in one buffer; ${e.backend} allows ${formatBytes(caps.bufferBytes)}`;
    }
  }
  if (caps.totalBytes !== undefined && e.totalBytes + extraBytes > caps.totalBytes) {
    return `it needs ${formatBytes(e.totalBytes + extraBytes)}; ${e.backend} can hold ${formatBytes(caps.totalBytes)}`;
  }
  return undefined;
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${(n / 2 ** 10).toFixed(1)} KiB`;
}

/** A few lines for people: the total and what it is made of. */
export function formatEstimate(e: MemoryEstimate): string {
  const parts = [
    ['weights', e.weightBytes], ['activations', e.activationBytes], ['optimizer state', e.optimizerBytes],
    ['KV cache', e.kvCacheBytes], ['kernel workspace', e.workspaceBytes],
  ] as const;
  return `${formatBytes(e.totalBytes)} on ${e.backend}: ${parts.filter(([, b]) => b > 0).map(([k, b]) => `${k} ${formatBytes(b)}`).join(', ')}`;
}
