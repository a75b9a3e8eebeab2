/**
 * The wasm backend: AssemblyScript kernels compiled to WebAssembly SIMD (relaxed SIMD where the engine
 * validates it), on a worker pool over one shared memory where threads are available. The plan's arena
 * lives in the wasm memory, so kernels read and write values in place.
 */
import type { AdamWHyper, Backend, ExecutionPlan, Executable, HostArray, StepTime, WeightSources } from '../backend.js';
import { WeightPool, sharedWriteMessage } from '../weight-pool.js';
import { HostProfiler, stepName, valueName } from '../host-profile.js';
import { GraphError, isCompact, numel, shapeStr, valueBytes } from '../../graph/types.js';
import { adamwKernel, wasmKernels, type KernelContext } from './kernels.js';
import { JOB_ATTENTION, JOB_ATTENTION_BACKWARD, JOB_MATMUL, WasmRuntime, type WasmRuntimeOptions } from './runtime.js';

export type WasmBackendOptions = WasmRuntimeOptions;

export async function createWasmBackend(opts: WasmBackendOptions = {}): Promise<Backend> {
  const rt = await WasmRuntime.create(opts);
  const pool = new WeightPool<number>();
  return {
    name: 'wasm',
    describe: () => rt.describe(),
    load: async (plan, weights) => new WasmExecutable(rt, plan, pool, weights),
    // What is free: the memory's maximum less static data and the blocks live plans already hold.
    memoryCaps: () => ({ totalBytes: rt.maxBytes - rt.heap.start - rt.heap.usedBytes }),
    workspaceBytes: (plan) => wasmWorkspaceBytes(rt, plan),
    memoryInUse: () => rt.memory.buffer.byteLength,
    dispose: () => rt.dispose(),
  };
}

/**
 * The kernels' scratch for a plan: one region per thread, sized by the hungriest step (the matmul's packed
 * panels, attention's score rows over the key length).
 */
function wasmWorkspaceBytes(rt: WasmRuntime, plan: ExecutionPlan): number {
  let perThread = 0;
  for (const s of plan.steps) {
    if (s.op === 'matmul') perThread = Math.max(perThread, rt.exports.scratchBytes(JOB_MATMUL, 0));
    else if (s.op === 'attention' || s.op === 'attention_backward') {
      const keys = plan.values[s.inputs[1]!]!.shape[1]!;
      perThread = Math.max(perThread, rt.exports.scratchBytes(s.op === 'attention' ? JOB_ATTENTION : JOB_ATTENTION_BACKWARD, keys));
    }
  }
  return perThread * rt.threads;
}

class WasmExecutable implements Executable {
  readonly backend = 'wasm' as const;
  private readonly arena: number;
  /** Heap block of each weight (params live outside the arena), by value id. */
  private readonly weightPtrs = new Map<number, number>();
  /** The host array each weight loaded with `weights` came from (its key in the pool), by value id. */
  private readonly sources = new Map<number, HostArray>();
  private readonly runners: (() => void)[];
  private disposed = false;
  private readonly profiler = new HostProfiler();

  constructor(private readonly rt: WasmRuntime, private readonly plan: ExecutionPlan, private readonly pool: WeightPool<number>, weights?: WeightSources) {
    for (const s of plan.steps) {
      if (!wasmKernels[s.op]) throw new GraphError(`node #${s.node} ${s.op}: the wasm backend has no kernel for this op`);
    }
    for (const [value, data] of weights ?? []) {
      if (!plan.weights.some((w) => w.value === value)) throw new GraphError(`weights: ${this.label(value)} is not a weight of this plan`);
      this.checkLength(value, data);
    }
    this.arena = rt.heap.alloc(plan.arenaElems * 4);
    for (const w of plan.weights) {
      const src = weights?.get(w.value);
      if (!src) {
        this.weightPtrs.set(w.value, rt.heap.alloc(w.bytes));
        continue;
      }
      this.sources.set(w.value, src);
      this.weightPtrs.set(w.value, pool.acquire(src, w.bytes, () => {
        const p = rt.heap.alloc(w.bytes);
        this.weightPtrs.set(w.value, p);
        this.view(w.value).set(src);
        return p;
      }));
    }
    const ctx: KernelContext = { rt, ptr: (v) => this.ptr(v), shape: (v) => plan.values[v]!.shape, dtype: (v) => plan.values[v]!.dtype };
    this.runners = plan.steps.map((s) => {
      try {
        return wasmKernels[s.op]!(ctx, s);
      } catch (e) {
        const name = plan.nodes[s.node]?.name;
        throw new GraphError(`node #${s.node} ${s.op}${name ? ` (${name})` : ''}: ${(e as Error).message}`);
      }
    });
  }

  write(value: number, data: HostArray): void {
    this.checkLength(value, data);
    const root = this.plan.roots[value]!, src = this.sources.get(root);
    if (src && this.pool.owns(src, this.weightPtrs.get(root)!)) {
      const holders = this.pool.holders(src);
      if (holders > 1) throw new GraphError(sharedWriteMessage(this.label(value), holders));
      this.pool.forget(src);
      this.sources.delete(root);
    }
    this.view(value).set(data);
  }

  private checkLength(value: number, data: HostArray): void {
    const info = this.plan.values[value];
    const n = info && isCompact(info.dtype) ? valueBytes(info.dtype, info.shape) : this.size(value);
    if (data.length !== n) {
      throw new GraphError(`write to ${this.label(value)}: got ${data.length} elements, the value ${shapeStr(this.plan.values[value]!.shape)} holds ${n}`);
    }
  }

  async read(values: readonly number[]): Promise<HostArray[]> {
    return values.map((v) => this.view(v).slice());
  }

  async run(skip?: Uint8Array): Promise<void> {
    if (this.disposed) throw new Error('wasm executable used after dispose()');
    const runners = this.runners;
    for (let i = 0; i < runners.length; i++) {
      if (skip?.[i]) continue;
      const s = this.plan.steps[i]!;
      this.profiler.time(s.op, stepName(this.plan, s), runners[i]!);
    }
  }

  adamw(param: number, grad: number, m: number, v: number, h: AdamWHyper): void {
    const n = this.size(param);
    for (const x of [grad, m, v]) {
      if (this.size(x) !== n) throw new GraphError(`adamw: ${this.label(x)} has ${this.size(x)} elements, the parameter ${n}`);
    }
    this.profiler.time('adamw', valueName(this.plan, param), () => adamwKernel(this.rt, this.ptr(param), this.ptr(grad), this.ptr(m), this.ptr(v), n, h));
  }

  beginProfile(): void { this.profiler.begin(); }
  async endProfile(): Promise<StepTime[]> { return this.profiler.end(); }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.rt.heap.release(this.arena);
    for (const [value, p] of this.weightPtrs) {
      const src = this.sources.get(value);
      if (!src || !this.pool.owns(src, p) || this.pool.release(src)) this.rt.heap.release(p);
    }
  }

  /** Byte address of a value: in its weight's own block, or in the arena. */
  private ptr(value: number): number {
    const off = this.plan.offsets[value];
    if (off === undefined) throw new GraphError(`no value %${value} in this plan`);
    const weight = this.weightPtrs.get(this.plan.roots[value]!);
    return weight ?? this.arena + off * 4;
  }

  private size(value: number): number {
    const v = this.plan.values[value];
    if (!v) throw new GraphError(`no value %${value} in this plan`);
    return numel(v.shape);
  }

  /** A view over the value's memory; made fresh each time since a grown memory detaches old views. */
  private view(value: number): Float32Array | Int32Array | Uint8Array {
    const v = this.plan.values[value]!;
    if (isCompact(v.dtype)) return new Uint8Array(this.rt.memory.buffer, this.ptr(value), valueBytes(v.dtype, v.shape));
    const n = this.size(value);
    return v.dtype === 'i32' ? this.rt.i32(this.ptr(value), n) : this.rt.f32(this.ptr(value), n);
  }

  private label(value: number): string {
    const v = this.plan.values[value]!;
    return `%${value}${v.name ? ` (${v.name})` : ''}`;
  }
}
