/**
 * The contract between the scheduler and a backend.
 *
 * The scheduler turns a graph into an ExecutionPlan: parameters (weights, frozen or trained) each get
 * memory of their own, every other value an offset (in elements) in one arena where values whose
 * lifetimes do not overlap share memory; views (reshape) alias their input, and `steps` lists the nodes
 * that need a kernel, in order. A backend loads a plan and runs its steps with
 * kernels looked up by op name; it knows nothing of autodiff, adapters or models.
 */
import type { Attrs, DType, NodeInfo, Shape, ValueInfo } from '../graph/types.js';

export type BackendName = 'js' | 'wasm' | 'webgpu';

export interface PlanStep {
  /** Index of the node in `plan.nodes`. */
  readonly node: number;
  readonly op: string;
  readonly attrs: Attrs;
  readonly inputs: readonly number[];
  readonly outputs: readonly number[];
}

export interface ExecutionPlan {
  readonly values: readonly ValueInfo[];
  readonly nodes: readonly NodeInfo[];
  /** Arena offset of each value, in elements, aligned to ARENA_ALIGN elements; -1 for a weight. */
  readonly offsets: readonly number[];
  /** Total arena size in elements. */
  readonly arenaElems: number;
  /**
   * The values that live outside the arena, each in memory of its own: every param, with its size in
   * bytes (a compact weight in its packed layout). Frozen weights never count against the arena, so a
   * backend can place them wherever its limits allow (separate GPU buffers, compact in wasm memory).
   */
  readonly weights: readonly PlanWeight[];
  /** The value whose memory each value uses: itself, or for a view or an in-place result the value it aliases. */
  readonly roots: readonly number[];
  /** Nodes that run a kernel, in execution order (views such as reshape are absent). */
  readonly steps: readonly PlanStep[];
}

export interface PlanWeight {
  readonly value: number;
  readonly bytes: number;
}

/** Every arena offset is a multiple of this many elements (256 bytes for f32: WebGPU's binding alignment). */
export const ARENA_ALIGN = 64;

/** Host data of a value: f32 as Float32Array (Float64Array on a js f64 backend), i32 as Int32Array, a compact weight as the bytes of its layout. */
export type HostArray = Float32Array | Float64Array | Int32Array | Uint8Array;

/** The time one step took while profiling: a plan step (`op` is its op) or an AdamW update (`op` is 'adamw'). */
export interface StepTime {
  readonly op: string;
  /** The node's module name, or the parameter's name for an AdamW update; '' when unnamed. */
  readonly name: string;
  readonly ms: number;
}

export interface AdamWHyper {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** 1-based step number, for bias correction. */
  readonly step: number;
  /** Multiplies the gradient before use (gradient clipping, accumulation averaging). */
  readonly gradScale: number;
}

/** A plan loaded on a backend: its arena is allocated and a kernel is resolved for each step. */
export interface Executable {
  readonly backend: BackendName;
  /** Copy host data into a value (input, param or state). The length must equal the value's element count. */
  write(value: number, data: HostArray): void;
  /** Read values back to the host, in one batch. f32 values come back as Float32Array (Float64Array on a js f64 backend), i32 as Int32Array. */
  read(values: readonly number[]): Promise<HostArray[]>;
  /**
   * Run the plan's steps in order. `skip[i] = 1` skips step i (for trainable sets that change between steps);
   * the caller guarantees nothing that runs reads what a skipped step would have written.
   */
  run(skip?: Uint8Array): Promise<void>;
  /** Fused AdamW update, in place: param, m and v are updated from grad. */
  adamw(param: number, grad: number, m: number, v: number, hyper: AdamWHyper): void;
  /**
   * Start timing every step that runs (plan steps and AdamW updates) until `endProfile()`. Results do not
   * change; a profiled run may be slower (webgpu gives each step its own compute pass).
   */
  beginProfile(): void;
  /**
   * Stop timing and return the steps timed since `beginProfile()`, in the order they ran: GPU time from
   * timestamp queries on webgpu (null when the device lacks `timestamp-query`), the host clock on js and
   * wasm, whose kernels run synchronously.
   */
  endProfile(): Promise<StepTime[] | null>;
  dispose(): void;
}

/** Frozen weights given to `Backend.load`: param value id → its data (f32 values, or a compact layout's bytes). */
export type WeightSources = ReadonlyMap<number, HostArray>;

/** What a backend can hold, for estimates made before a plan is loaded. */
export interface MemoryCaps {
  /** All the bytes the backend can hold (wasm: its memory's maximum less what it already uses); undefined when unknown. */
  readonly totalBytes?: number;
  /** The largest single buffer (webgpu: the smaller of maxBufferSize and maxStorageBufferBindingSize); undefined when unbounded. */
  readonly bufferBytes?: number;
}

export interface Backend {
  readonly name: BackendName;
  /** A one-line description: adapter name, thread count, SIMD flavour. */
  describe(): string;
  /**
   * Load a plan. `weights` gives frozen weights (param value id → data) to load with it: plans loaded with
   * the same host array for a weight share one copy of it on this backend (training, evaluation and
   * generation graphs of one model), and writing a weight that another plan shares is refused.
   */
  load(plan: ExecutionPlan, weights?: WeightSources): Promise<Executable>;
  /** Limits of this backend's memory (absent: no known limit). */
  memoryCaps?(): MemoryCaps;
  /** Working memory its kernels use for a plan beyond the plan's own values (scratch, constants). */
  workspaceBytes?(plan: ExecutionPlan): number;
  /** Bytes the backend has taken from the system so far (wasm: its memory's size, which never shrinks). */
  memoryInUse?(): number;
  dispose(): void;
}

export type { Attrs, DType, NodeInfo, Shape, ValueInfo };

/** Thrown when a backend runs out of memory, so callers can tell it from other failures and advise. */
export class OutOfMemoryError extends Error {
  constructor(message: string, readonly backend: BackendName) {
    super(message);
    this.name = 'OutOfMemoryError';
  }
}
