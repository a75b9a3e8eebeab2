/**
 * Knowing before a run: the memory a fine-tuning run will need on a backend (planned from its training
 * graph, nothing allocated), whether that fits, and — when it does not — which cheaper settings would:
 * activation checkpointing, a compact base type, a smaller batch or sequence.
 */
import type { AdaptedModel } from '../adapters/adapted-model.js';
import type { Backend, ExecutionPlan, MemoryCaps, OutOfMemoryError } from '../backends/backend.js';
import { isCompactTensor, type LlamaCheckpoint } from '../formats/checkpoint.js';
import { numel } from '../graph/types.js';
import type { CeChunk } from '../model/loss.js';
import { type CompactDType, compactBytes } from '../quant/types.js';
import { estimatePlanMemory, formatBytes, type MemoryEstimate, memoryProblem } from '../scheduler/memory.js';
import { planGraph } from '../scheduler/plan.js';
import { buildTrainingGraph } from './finetune.js';
import { Trainer } from './trainer.js';

/** The settings of a run that decide its memory. */
export interface TrainingShape {
  readonly batch: number;
  readonly seq: number;
  readonly checkpointing?: boolean;
  readonly ceChunk?: CeChunk;
  readonly accumulate?: number;
}

export interface TrainingEstimate extends MemoryEstimate {
  /** The base weights the host keeps (the loaded checkpoint), beside what the backend holds. */
  readonly hostBytes: number;
}

/** Bytes of a checkpoint's tensors as loaded (compact ones in their layouts). */
export function checkpointBytes(c: LlamaCheckpoint): number {
  let n = 0;
  for (const t of c.tensors.values()) n += isCompactTensor(t) ? t.bytes.byteLength : t.data.byteLength;
  return n;
}

/** Plan the training graph of `shape` (nothing is allocated) and estimate what it needs on `backend`. */
export function planTraining(model: AdaptedModel, adapter: string, shape: TrainingShape): ExecutionPlan {
  const tg = buildTrainingGraph(model, adapter, {
    batch: shape.batch, seq: shape.seq, ...(shape.checkpointing ? { checkpointing: true } : {}), ...(shape.ceChunk !== undefined ? { ceChunk: shape.ceChunk } : {}),
  });
  Trainer.prepare({ graph: tg.graph, loss: tg.loss, trainable: tg.trainable, accumulate: shape.accumulate ?? 1, checkpoint: tg.segments });
  return planGraph(tg.graph);
}

export function estimateTraining(model: AdaptedModel, adapter: string, backend: Backend, shape: TrainingShape): TrainingEstimate {
  return { ...estimatePlanMemory(planTraining(model, adapter, shape), backend), hostBytes: checkpointBytes(model.base) };
}

/**
 * The estimate with the base's frozen 2-D weights stored as `dtype` instead (rows of whole 32-blocks
 * for q types; others keep their type, as the loader does).
 */
function withBaseDtype(e: MemoryEstimate, plan: ExecutionPlan, dtype: CompactDType): MemoryEstimate {
  let weightBytes = 0, largest = 0;
  for (const w of plan.weights) {
    const v = plan.values[w.value]!;
    const base = !(v.name ?? '').includes('/') && v.shape.length === 2;
    const fitsBlocks = !dtype.startsWith('q') || v.shape[1]! % 32 === 0;
    const bytes = base && fitsBlocks ? Math.min(w.bytes, compactBytes(dtype, numel(v.shape))) : w.bytes;
    weightBytes += bytes;
    largest = Math.max(largest, bytes);
  }
  return { ...e, weightBytes, largestWeightBytes: largest, totalBytes: e.totalBytes - e.weightBytes + weightBytes };
}

interface Variant { label: string; estimate: MemoryEstimate }

/**
 * Settings that would fit, cheapest change first: checkpointing, a compact base (q8_0, then q4_0),
 * both, then the largest batch (and sequence) that fits with them. At most `limit` suggestions.
 */
export function fittingVariants(model: AdaptedModel, adapter: string, backend: Backend, shape: TrainingShape, caps = backend.memoryCaps?.(), limit = 3): Variant[] {
  const out: Variant[] = [];
  const baseIsQuantised = [...model.base.tensors.values()].some((t) => isCompactTensor(t) && t.dtype.startsWith('q'));
  const dtypes: CompactDType[] = baseIsQuantised ? [] : ['q8_0', 'q4_0'];
  const consider = (label: string, plan: ExecutionPlan): boolean => {
    const e = estimatePlanMemory(plan, backend);
    if (!memoryProblem(e, caps)) { out.push({ label, estimate: e }); return true; }
    for (const d of dtypes) {
      const q = withBaseDtype(e, plan, d);
      if (!memoryProblem(q, caps)) { out.push({ label: `${label}${label ? ' ' : ''}--base-dtype ${d}`, estimate: q }); return true; }
    }
    return false;
  };
  const tryShape = (label: string, s: TrainingShape): boolean => {
    try { return consider(label, planTraining(model, adapter, s)); } catch { return false; }
  };
  // The same shape with only the base made compact.
  consider('', planTraining(model, adapter, shape));
  if (!shape.checkpointing) tryShape('--checkpointing', { ...shape, checkpointing: true });
  const ckpt = { ...shape, checkpointing: true };
  let smallerBatch = false;
  for (let b = Math.floor(shape.batch / 2); b >= 1 && out.length < limit; b = Math.floor(b / 2)) {
    if (tryShape(`--checkpointing --batch ${b}`, { ...ckpt, batch: b })) { smallerBatch = true; break; }
  }
  // Shorter sequences only when no batch, however small, fits.
  for (let t = Math.floor(shape.seq / 2); !smallerBatch && t >= 16 && out.length < limit; t = Math.floor(t / 2)) {
    if (tryShape(`--checkpointing --batch 1 --seq ${t}`, { ...ckpt, batch: 1, seq: t })) break;
  }
  return out.filter((v) => v.label !== '').slice(0, limit);
}

/** A run that cannot fit, refused before its first step; the message names what would fit. */
export class MemoryPlanError extends Error {
  constructor(message: string, readonly estimate: MemoryEstimate, readonly suggestions: readonly string[]) {
    super(message);
    this.name = 'MemoryPlanError';
  }
}

function refusal(what: string, model: AdaptedModel, adapter: string, backend: Backend, shape: TrainingShape, e: MemoryEstimate, caps: MemoryCaps | undefined): MemoryPlanError {
  const variants = fittingVariants(model, adapter, backend, shape, caps);
  const advice = variants.length
    ? `would fit: ${variants.map((v) => `${v.label} (${formatBytes(v.estimate.totalBytes)})`).join('; ')}`
    : 'no smaller setting tried fits either: use a smaller model, or a backend with more memory';
  return new MemoryPlanError(`training with batch ${shape.batch} × ${shape.seq} on ${backend.name} does not fit: ${what}. ${advice}`, e, variants.map((v) => v.label));
}

/** Throw a MemoryPlanError with advice when the planned run does not fit the backend. */
export function checkTrainingPlan(plan: ExecutionPlan, model: AdaptedModel, adapter: string, backend: Backend, shape: TrainingShape): void {
  const e = estimatePlanMemory(plan, backend);
  const problem = memoryProblem(e, backend.memoryCaps?.());
  if (problem) throw refusal(problem, model, adapter, backend, shape, e, backend.memoryCaps?.());
}

/** The same advice for a backend that ran out of memory anyway (its own limits were not all known). */
export function adviseOutOfMemory(err: OutOfMemoryError, plan: ExecutionPlan, model: AdaptedModel, adapter: string, backend: Backend, shape: TrainingShape): MemoryPlanError {
  const e = estimatePlanMemory(plan, backend);
  // Whatever the backend's real limit, it is below what just failed: only smaller settings can help.
  const known = backend.memoryCaps?.();
  const caps: MemoryCaps = { ...known, totalBytes: Math.min(known?.totalBytes ?? Infinity, e.totalBytes - 1) };
  return refusal(`${backend.name} ran out of memory (${err.message}); the plan needs ${formatBytes(e.totalBytes)}`, model, adapter, backend, shape, e, caps);
}
