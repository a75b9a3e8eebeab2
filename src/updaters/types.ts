/**
 * Updaters: training rules that choose which of the base model's own weights learn (some of them at a time,
 * or through a transformed update), instead of adding parameters the way adapters do. An Updater only
 * decides; `trainBaseWeights` (train.ts) owns the graph, the master copies and the optimizer state.
 */
import type { LlamaCheckpoint } from '../formats/checkpoint.js';
import type { SparseDelta } from './sparse/delta.js';

/** One base tensor that may train. */
export interface BaseTensorInfo {
  /** Hugging Face name, e.g. 'model.layers.3.self_attn.q_proj.weight'. */
  name: string;
  shape: readonly number[];
  /** Decoder layer index; undefined for the embeddings, the final norm and the head. */
  layer?: number;
}

/** What an Updater sees of the run. */
export interface UpdaterContext {
  /** Optimizer steps done so far. */
  readonly step: number;
  /** Every base tensor that may train, in graph order. */
  readonly tensors: readonly BaseTensorInfo[];
  /** The names training now. */
  readonly trainable: ReadonlySet<string>;
  /** Seeded uniform draw in [0, 1) (the run's seed). */
  rng(): number;
  /** Current f32 values of any base tensors. */
  values(names: readonly string[]): Promise<Map<string, Float32Array>>;
  /** Last step's gradients (trainable tensors only), averaged over micro-batches; the clipping scale is NOT applied. */
  gradients(names: readonly string[]): Promise<Map<string, Float32Array>>;
  /** Progress output (stderr in the CLI). */
  log(line: string): void;
  /**
   * The held-out loss (the run's evalData, as its own evaluations score it) of the current model with these
   * tensors replaced, or undefined when the run has no held-out data. One evaluation pass per call: grafting
   * scores its rounded masks with it.
   */
  heldOutLoss?(replace: ReadonlyMap<string, Float32Array>): Promise<number | undefined>;
}

export interface TensorOptimizerHyper {
  /** This step's learning rate (schedule applied). */
  lr: number;
  /** Steps this tensor has trained, this one included (1-based; restarts when it starts training again). */
  step: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Multiply the gradient by this first: clipping (and the mean over micro-batches). */
  gradScale: number;
}

/** A host-side update rule for one tensor replacing the fused AdamW (GaLore's projected Adam, sparse FT's Adam on chosen entries). */
export interface TensorOptimizer {
  /** Update `param` in place from `grad` (multiply grad by hyper.gradScale first: clipping). */
  update(param: Float32Array, grad: Float32Array, hyper: TensorOptimizerHyper): void;
  /** Bytes of optimizer state this tensor holds now (for the benchmark's optimizer-state column). */
  stateBytes(): number;
}

export interface Updater {
  readonly method: string;
  /**
   * The model the run starts from, given the base (default: the base itself). Grafting starts at
   * θ₀ + σ(s₀) ⊙ (θ_ft − θ₀). `trainBaseWeights` calls it first; the CLI calls it earlier, before reading data,
   * so that bad input is refused before any work: a second call with the same base returns the same model.
   */
  start?(base: LlamaCheckpoint): Promise<LlamaCheckpoint>;
  /** The base tensors that train from the first step. */
  initialTrainable(ctx: UpdaterContext): Iterable<string>;
  /** After gradients exist and before the optimizer step (probe importance, gradient accumulation for regrowth). */
  beforeUpdate?(ctx: UpdaterContext): Promise<void>;
  /** After each optimizer step but the last: a new trainable set to switch to (the optimizer state of tensors leaving it is freed), or undefined to keep. */
  afterStep?(ctx: UpdaterContext): Promise<Iterable<string> | undefined>;
  /** A host-side optimizer for this tensor instead of the fused AdamW; undefined keeps AdamW. Asked when the tensor starts training. */
  tensorOptimizer?(name: string, shape: readonly number[]): TensorOptimizer | undefined;
  /** Figures printed at the end and put in the run summary (e.g. { trainableFraction: 0.47 }). */
  summary?(): Record<string, number | string>;
  /**
   * Keep the Adam moments of tensors that leave the trainable set and come back later (default: dropped,
   * and a returning tensor starts from zero moments). Kept moments cost their memory while the tensor is frozen.
   */
  readonly keepMoments?: boolean;
  /**
   * Sparse fine-tuning methods (SpIEL, LT-SFT, grafting): the trained result as a sparse delta over the base
   * (src/updaters/sparse/delta.ts), asked once after the last step. When present, `train --out DIR` saves this
   * delta folder instead of a full model.
   */
  sparseDelta?(ctx: UpdaterContext): Promise<SparseDelta>;
}

/** The decoder layer of a Hugging Face tensor name ('model.layers.3.…' → 3), or undefined. */
export function layerOf(name: string): number | undefined {
  const m = /^model\.layers\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : undefined;
}
