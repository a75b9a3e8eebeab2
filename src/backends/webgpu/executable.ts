/**
 * A plan loaded on a WebGPU device: weights (the plan's params) each live in a GPUBuffer of their own, so
 * a model is limited by the device's memory rather than by one buffer's size; everything else lives in one
 * GPUBuffer (the arena). Each kernel binds sub-ranges of these, and every step's bind groups and uniforms are made once at load time, so `run()` only
 * records dispatches: one command encoder, one compute pass, one submit.
 */
import type { AdamWHyper, Executable, ExecutionPlan, HostArray, PlanStep, StepTime, WeightSources } from '../backend.js';
import { type WeightPool, sharedWriteMessage } from '../weight-pool.js';
import { stepName, valueName } from '../host-profile.js';
import { isCompact, numel, shapeStr, valueBytes, type Shape, type ValueInfo } from '../../graph/types.js';
import type { GpuContext } from './device.js';
import { WebgpuError } from './errors.js';
import { type Kernel, makeBindGroup, type OverrideValues, type PipelineCache } from './pipelines.js';

/**
 * A byte range. The arena holds, in order, the plan's values (`arena`), constants written at load
 * (`const`) and scratch memory shared by all steps (`scratch`); offsets are relative to their region until
 * binding. `uniform` is the executable's uniform buffer; `external` a buffer supplied when binding (the
 * per-call AdamW hyper-parameters); `weight` the own buffer of the weight `value` (or of the weight it
 * is a view of).
 */
export interface Range {
  readonly buffer: 'arena' | 'const' | 'scratch' | 'uniform' | 'external' | 'weight';
  readonly offset: number;
  readonly size: number;
  /** The value it belongs to; -1 for everything else. */
  readonly value: number;
  /** The kernel writes it (outputs and scratch written by a dispatch). */
  readonly written?: boolean;
}

interface PendingDispatch {
  readonly kernel: Kernel;
  readonly bindings: Readonly<Record<string, Range>>;
  readonly workgroups: readonly [number, number, number];
}

interface Dispatch {
  readonly kernel: Kernel;
  readonly bindGroup: GPUBindGroup;
  readonly workgroups: readonly [number, number, number];
}

interface AdamwEntry {
  readonly hyper: GPUBuffer;
  readonly step: LoadedStep;
  readonly encode: (h: AdamWHyper) => ArrayBuffer;
}

interface LoadedStep {
  readonly label: string;
  /** For profiles: the op ('adamw' for an update) and the node's module or the parameter's name. */
  readonly op: string;
  readonly name: string;
  readonly dispatches: Dispatch[];
}

/** Timestamp queries per query set (the WebGPU maximum is 4096 queries, two per step). */
const TIMED_STEPS_PER_SET = 2048;

const UNIFORM_ALIGN = 256;
const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

/** What a kernel implementation gets to describe the work of one plan step. */
export class StepBuilder {
  readonly dispatches: PendingDispatch[] = [];
  private scratchTop = 0;

  constructor(
    readonly plan: ExecutionPlan,
    readonly step: PlanStep,
    readonly label: string,
    private readonly loader: Loader,
  ) {}

  get attrs(): PlanStep['attrs'] { return this.step.attrs; }
  get limits(): LoadLimits { return this.loader.limits; }
  inInfo(i: number): ValueInfo { return this.info(this.step.inputs, i, 'input'); }
  outInfo(i: number): ValueInfo { return this.info(this.step.outputs, i, 'output'); }
  inShape(i: number): Shape { return this.inInfo(i).shape; }
  outShape(i: number): Shape { return this.outInfo(i).shape; }
  get inputCount(): number { return this.step.inputs.length; }

  private info(list: readonly number[], i: number, what: string): ValueInfo {
    const id = list[i];
    if (id === undefined) throw new WebgpuError(`${this.label}: has no ${what} ${i}`);
    return this.plan.values[id]!;
  }

  /** The arena range of input i. */
  input(i: number): Range { return this.loader.valueRange(this.inInfo(i).id); }
  /** The arena range of output i. */
  output(i: number): Range { return { ...this.loader.valueRange(this.outInfo(i).id), written: true }; }

  /** Data the kernel reads on every run, written into the arena once at load. */
  constant(data: ArrayBufferView): Range { return this.loader.addConstant(data); }

  /** A uniform block holding `data`, written once at load. */
  uniform(data: ArrayBuffer | ArrayBufferView): Range { return this.loader.addUniform(data); }

  /**
   * Temporary arena memory private to this step (the same memory is reused by later steps). Its content
   * is undefined when the step starts.
   */
  scratch(bytes: number): Range {
    const size = alignUp(Math.max(bytes, 16), UNIFORM_ALIGN);
    const r: Range = { buffer: 'scratch', offset: this.scratchTop, size, value: -1 };
    this.scratchTop += size;
    this.loader.scratchBytes = Math.max(this.loader.scratchBytes, this.scratchTop);
    return r;
  }

  kernel(file: string, entry = 'main', constants: OverrideValues = {}): Promise<Kernel> {
    return this.loader.kernels.kernel(file, entry, constants);
  }

  /**
   * Record a dispatch; dispatches of a step run in the order recorded. Zero-sized grids are dropped.
   * WebGPU rejects a dispatch whose writable bindings overlap (every arena binding is writable, see
   * pipelines.ts), so an operand that overlaps another binding (mul(x, x), an in-place op reading its
   * own output) is first copied to scratch and read from there.
   */
  dispatch(kernel: Kernel, bindings: Readonly<Record<string, Range>>, workgroups: readonly [number, number?, number?]): void {
    const wg: [number, number, number] = [workgroups[0], workgroups[1] ?? 1, workgroups[2] ?? 1];
    if (wg.some((n) => n === 0)) return;
    const max = this.loader.limits.maxComputeWorkgroupsPerDimension;
    if (wg.some((n) => n > max || !Number.isInteger(n))) {
      throw new WebgpuError(`${this.label}: ${kernel.label} needs a grid of ${wg.join('×')} workgroups; the device allows ${max} per dimension`);
    }
    const b: Record<string, Range> = { ...bindings };
    const names = Object.keys(b);
    const roots = this.plan.roots;
    const overlaps = (x: Range, y: Range): boolean => x.buffer === y.buffer && x.buffer !== 'uniform' && x.buffer !== 'external'
      && (x.buffer !== 'weight' || roots[x.value] === roots[y.value])
      && x.offset < y.offset + y.size && y.offset < x.offset + x.size;
    for (let i = 0; i < names.length; i++) {
      for (let j = 0; j < names.length; j++) {
        if (i === j) continue;
        const x = b[names[i]!]!, y = b[names[j]!]!;
        if (!overlaps(x, y)) continue;
        if (x.written && y.written) {
          throw new WebgpuError(`${this.label}: ${kernel.label} writes '${names[i]}' and '${names[j]}' to overlapping memory`);
        }
        const readName = x.written ? names[j]! : names[i]!;
        b[readName] = this.copyToScratch(b[readName]!);
      }
    }
    this.dispatches.push({ kernel, bindings: b, workgroups: wg });
  }

  private copyToScratch(r: Range): Range {
    const dst = this.scratch(r.size);
    const words = r.size / 4;
    const grid = this.grid(Math.ceil(words / 256));
    const u = this.uniform(new Uint32Array([words, grid[0] * 256, 0, 0]));
    this.dispatches.push({ kernel: this.loader.copyKernel, bindings: { flat: u, src: r, dst: { ...dst, written: true } }, workgroups: grid });
    return dst;
  }

  /** A 1-D grid of `groups` workgroups folded into x and y so that neither exceeds the device limit. */
  grid(groups: number): [number, number, number] {
    const max = this.loader.limits.maxComputeWorkgroupsPerDimension;
    if (groups <= max) return [groups, 1, 1];
    const y = Math.ceil(groups / max);
    return [Math.ceil(groups / y), y, 1];
  }
}

export type KernelImpl = (b: StepBuilder) => Promise<void>;

/** The device limits that decide how steps are recorded. */
export type LoadLimits = Pick<GPUSupportedLimits, 'maxComputeWorkgroupsPerDimension' | 'maxComputeWorkgroupStorageSize'>;

/** Where a loader gets compiled kernels: the pipeline cache, or a stand-in when only sizes are wanted. */
type KernelSource = Pick<PipelineCache, 'kernel'>;

/** Shared state while a plan is being loaded. */
class Loader {
  scratchBytes = 0;
  constBytes = 0;
  readonly valueBytes: number;
  /** Bytes of each weight's own buffer, by value id. */
  readonly weightBytes: Map<number, number>;
  private readonly uniformChunks: { offset: number; data: Uint8Array }[] = [];
  readonly constChunks: { offset: number; data: Uint8Array }[] = [];
  uniformBytes = 0;

  constructor(readonly limits: LoadLimits, readonly kernels: KernelSource, readonly plan: ExecutionPlan, readonly copyKernel: Kernel) {
    this.valueBytes = alignUp(plan.arenaElems * 4, UNIFORM_ALIGN);
    this.weightBytes = new Map(plan.weights.map((w) => [w.value, alignUp(Math.max(w.bytes, 16), 16)]));
  }

  get constBase(): number { return this.valueBytes; }
  get scratchBase(): number { return this.valueBytes + this.constBytes; }
  /** The arena: values, constants, scratch. */
  get arenaBytes(): number { return alignUp(Math.max(this.scratchBase + this.scratchBytes, 16), 16); }

  addConstant(data: ArrayBufferView): Range {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
    const offset = this.constBytes;
    this.constChunks.push({ offset, data: bytes });
    const size = alignUp(Math.max(bytes.byteLength, 16), 16);
    this.constBytes = alignUp(offset + size, UNIFORM_ALIGN);
    return { buffer: 'const', offset, size, value: -1 };
  }

  valueRange(id: number): Range {
    const v = this.plan.values[id];
    const root = this.plan.roots[id];
    if (v && root !== undefined && this.weightBytes.has(root)) {
      return { buffer: 'weight', offset: 0, size: alignUp(Math.max(valueBytes(v.dtype, v.shape), 16), 16), value: id };
    }
    const off = this.plan.offsets[id];
    if (!v || off === undefined || off < 0) throw new WebgpuError(`value %${id} has no place in the arena`);
    // Rounded up to 16 bytes so a value can be bound as an array of vec4; the arena's 256-byte alignment
    // keeps the rounded range clear of the next value.
    return { buffer: 'arena', offset: off * 4, size: alignUp(Math.max(numel(v.shape) * 4, 16), 16), value: id };
  }

  addUniform(data: ArrayBuffer | ArrayBufferView): Range {
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const size = alignUp(Math.max(bytes.byteLength, 16), 16);
    const offset = this.uniformBytes;
    this.uniformChunks.push({ offset, data: bytes.slice() });
    this.uniformBytes = alignUp(offset + size, UNIFORM_ALIGN);
    return { buffer: 'uniform', offset, size, value: -1 };
  }

  fillUniforms(target: ArrayBuffer): void {
    const u8 = new Uint8Array(target);
    for (const c of this.uniformChunks) u8.set(c.data, c.offset);
  }
}

export function stepLabel(plan: ExecutionPlan, step: PlanStep, index: number): string {
  const node = plan.nodes[step.node];
  const shapes = step.inputs.map((x) => shapeStr(plan.values[x]!.shape)).join(', ');
  return `${step.op} (step ${index}, node #${step.node}${node?.name ? ` ${node.name}` : ''}; inputs ${shapes})`;
}

export interface LoadOptions {
  readonly kernels: Readonly<Record<string, KernelImpl>>;
  /**
   * Records the fused AdamW update of one parameter. `adamw()` is synchronous, so this runs on a kernel
   * compiled at load (`adamwKernel`) and must record its dispatches without awaiting.
   */
  readonly adamw: (b: StepBuilder, kernel: Kernel, hyper: Range) => (h: AdamWHyper) => ArrayBuffer;
  readonly adamwHyperBytes: number;
  readonly adamwKernel: (p: PipelineCache) => Promise<Kernel>;
  /** Weight buffers shared by the plans loaded from the same host arrays (see Backend.load). */
  readonly pool?: WeightPool<GPUBuffer>;
  /** Frozen weights to load with the plan. */
  readonly weights?: WeightSources;
}

/** Record every step of the plan (the same work whether loading it or only sizing its buffers). */
async function recordSteps(loader: Loader, kernels: Readonly<Record<string, KernelImpl>>): Promise<StepBuilder[]> {
  const plan = loader.plan;
  const missing = [...new Set(plan.steps.map((s) => s.op).filter((op) => !kernels[op]))];
  if (missing.length) throw new WebgpuError(`the webgpu backend has no kernel for ${missing.join(', ')}`);
  return Promise.all(plan.steps.map(async (step, i) => {
    const label = stepLabel(plan, step, i);
    const b = new StepBuilder(plan, step, label, loader);
    try {
      await kernels[step.op]!(b);
    } catch (e) {
      if (e instanceof WebgpuError && e.message.startsWith(label)) throw e;
      throw new WebgpuError(`${label}: ${(e as Error).message}`);
    }
    return b;
  }));
}

/** The GPU buffers a loaded plan holds, in bytes. */
export interface PlanBuffers {
  /** The arena: the plan's values, then constants written at load, then scratch shared by the steps. */
  readonly arena: { readonly values: number; readonly constants: number; readonly scratch: number; readonly bytes: number };
  /** Each weight's own buffer (params, frozen or trained, compact in their layout). */
  readonly weights: readonly { readonly value: number; readonly bytes: number }[];
  /** Uniform blocks of every dispatch. */
  readonly uniforms: number;
  /** The largest single buffer, which must fit maxStorageBufferBindingSize and maxBufferSize. */
  readonly largest: number;
  /** Everything above. Not counted: per-parameter AdamW blocks (32 bytes each) and readback buffers (the size of a read). */
  readonly total: number;
}

function planBuffers(loader: Loader): PlanBuffers {
  const weights = [...loader.weightBytes].map(([value, bytes]) => ({ value, bytes }));
  const bytes = loader.arenaBytes;
  const w = weights.reduce((a, x) => a + x.bytes, 0);
  return {
    arena: { values: loader.valueBytes, constants: loader.constBytes, scratch: loader.scratchBytes, bytes },
    weights,
    uniforms: loader.uniformBytes,
    largest: Math.max(bytes, ...weights.map((x) => x.bytes)),
    total: bytes + w + loader.uniformBytes,
  };
}

/**
 * The buffers `plan` needs on a WebGPU device, exactly as loading it would allocate them, without a device:
 * the steps are recorded against stand-in kernels. `limits` defaults to WebGPU's guaranteed minimums.
 */
export async function measurePlanBuffers(plan: ExecutionPlan, kernels: Readonly<Record<string, KernelImpl>>, limits: LoadLimits = { maxComputeWorkgroupsPerDimension: 65535, maxComputeWorkgroupStorageSize: 16384 }): Promise<PlanBuffers> {
  const stub = async (file: string, entry = 'main'): Promise<Kernel> => ({ label: `${file}:${entry}`, pipeline: null!, layout: null!, slots: new Map(), workgroupSize: [1, 1, 1] });
  const loader = new Loader(limits, { kernel: stub }, plan, await stub('layout', 'copy'));
  await recordSteps(loader, kernels);
  return planBuffers(loader);
}

export async function loadPlan(ctx: GpuContext, pipelines: PipelineCache, plan: ExecutionPlan, opts: LoadOptions): Promise<WebgpuExecutable> {
  ctx.check('load');
  const loader = new Loader(ctx.limits, pipelines, plan, await pipelines.kernel('layout', 'copy'));
  const builders = await recordSteps(loader, opts.kernels);
  const adamwKernel = await opts.adamwKernel(pipelines);
  const device = ctx.device;
  const arenaBytes = loader.arenaBytes;
  const max = Math.min(ctx.limits.maxBufferSize, ctx.limits.maxStorageBufferBindingSize);
  const mib = (n: number): string => (n / 2 ** 20).toFixed(1);
  if (arenaBytes > max) {
    throw new WebgpuError(`the plan needs an arena of ${mib(arenaBytes)} MiB; this adapter allows ${mib(max)} MiB in one buffer`);
  }
  for (const [value, bytes] of loader.weightBytes) {
    if (bytes > max) throw new WebgpuError(`weight ${plan.values[value]!.name ?? `%${value}`} needs ${mib(bytes)} MiB; this adapter allows ${mib(max)} MiB in one buffer`);
  }
  return ctx.scoped('loading the plan', () => {
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const arena = device.createBuffer({ label: 'arena', size: arenaBytes, usage });
    const make = (value: number, size: number) => device.createBuffer({ label: plan.values[value]!.name ?? `weight %${value}`, size, usage });
    const fresh: number[] = [];
    const weights = new Map([...loader.weightBytes].map(([value, size]) => {
      const src = opts.weights?.get(value);
      if (!src || !opts.pool) return [value, make(value, size)];
      return [value, opts.pool.acquire(src, size, () => { fresh.push(value); return make(value, size); })];
    }));
    for (const c of loader.constChunks) device.queue.writeBuffer(arena, loader.constBase + c.offset, c.data);
    const exe = new WebgpuExecutable(ctx, plan, arena, weights, loader, opts, adamwKernel);
    // A weight given without a pool, or the first plan to load a pooled one, uploads it.
    for (const [value, src] of opts.weights ?? []) if (!opts.pool || fresh.includes(value)) exe.upload(value, src);
    exe.steps = builders.map((b) => ({ label: b.label, op: b.step.op, name: stepName(plan, b.step), dispatches: b.dispatches.map((d) => exe.bind(d, b.label)) }));
    return exe;
  });
}

export class WebgpuExecutable implements Executable {
  readonly backend = 'webgpu' as const;
  steps: LoadedStep[] = [];
  private readonly uniformBuffer: GPUBuffer | null;
  private readonly adamwSteps = new Map<string, AdamwEntry>();
  private pendingOptimizer: LoadedStep[] = [];
  /** An error of work submitted without a caller waiting (AdamW batches), thrown by the next call. */
  private deferred: Error | null = null;
  private disposed = false;
  /** While profiling: one promise per submit, resolving to its steps' GPU times. */
  private profiled: Promise<StepTime[]>[] | null = null;

  constructor(
    private readonly ctx: GpuContext,
    readonly plan: ExecutionPlan,
    readonly arena: GPUBuffer,
    /** Each weight's own buffer, by value id (views of a weight use it through plan.roots). */
    readonly weights: ReadonlyMap<number, GPUBuffer>,
    private readonly loader: Loader,
    private readonly opts: LoadOptions,
    private readonly adamwKernel: Kernel,
  ) {
    const device = ctx.device;
    if (loader.uniformBytes > 0) {
      this.uniformBuffer = device.createBuffer({ label: 'uniforms', size: loader.uniformBytes, usage: GPUBufferUsage.UNIFORM, mappedAtCreation: true });
      loader.fillUniforms(this.uniformBuffer.getMappedRange());
      this.uniformBuffer.unmap();
    } else {
      this.uniformBuffer = null;
    }
  }

  /** @internal */
  bind(d: PendingDispatch, label: string, external?: GPUBuffer): Dispatch {
    const resources: Record<string, GPUBufferBinding> = {};
    for (const [name, r] of Object.entries(d.bindings)) {
      const inArena = r.buffer === 'arena' || r.buffer === 'const' || r.buffer === 'scratch';
      const buffer = inArena ? this.arena : r.buffer === 'weight' ? this.weights.get(this.plan.roots[r.value]!) : r.buffer === 'uniform' ? this.uniformBuffer : external;
      if (!buffer) throw new WebgpuError(`${label}: no buffer for binding '${name}'`);
      const base = r.buffer === 'const' ? this.loader.constBase : r.buffer === 'scratch' ? this.loader.scratchBase : 0;
      resources[name] = { buffer, offset: base + r.offset, size: r.size };
    }
    return { kernel: d.kernel, workgroups: d.workgroups, bindGroup: makeBindGroup(this.ctx.device, d.kernel, resources, `${label} ${d.kernel.label}`) };
  }

  private check(what: string): void {
    if (this.disposed) throw new WebgpuError(`${what}: this executable was disposed`);
    this.ctx.check(what);
    const e = this.deferred;
    if (e) {
      this.deferred = null;
      throw e;
    }
  }

  private valueInfo(value: number): ValueInfo {
    const v = this.plan.values[value];
    if (!v) throw new WebgpuError(`no value %${value} in this plan`);
    return v;
  }

  private name(value: number): string {
    const v = this.plan.values[value]!;
    return `%${value}${v.name ? ` (${v.name})` : ''}`;
  }

  /** The buffer and byte offset where a value lives. */
  private location(value: number): { buffer: GPUBuffer; offset: number } {
    const weight = this.weights.get(this.plan.roots[value]!);
    return weight ? { buffer: weight, offset: 0 } : { buffer: this.arena, offset: this.plan.offsets[value]! * 4 };
  }

  write(value: number, data: HostArray): void {
    this.check('write');
    const root = this.plan.roots[value]!, src = this.opts.weights?.get(root), pool = this.opts.pool;
    if (src && pool?.owns(src, this.weights.get(root)!)) {
      const holders = pool.holders(src);
      if (holders > 1) throw new WebgpuError(sharedWriteMessage(this.name(value), holders));
      pool.forget(src);
    }
    this.upload(value, data);
  }

  /** @internal Copy host data into a value (checked for size), whether or not its buffer is shared. */
  upload(value: number, data: HostArray): void {
    const v = this.valueInfo(value);
    const compact = isCompact(v.dtype);
    const n = compact ? valueBytes(v.dtype, v.shape) : numel(v.shape);
    if (data.length !== n) throw new WebgpuError(`write to ${this.name(value)}: got ${data.length} ${compact ? 'bytes' : 'elements'}, the value ${v.dtype}${shapeStr(v.shape)} holds ${n}`);
    if (n === 0) return;
    // Queued AdamW updates read values this write may change: they go first, in call order.
    this.flushOptimizer();
    let arr: Float32Array | Int32Array | Uint8Array;
    if (compact) arr = data as Uint8Array;
    else if (v.dtype === 'i32') arr = data instanceof Int32Array ? data : Int32Array.from(data);
    else arr = data instanceof Float32Array ? data : Float32Array.from(data);
    const at = this.location(value);
    this.ctx.device.queue.writeBuffer(at.buffer, at.offset, arr.buffer, arr.byteOffset, arr.byteLength);
  }

  async read(values: readonly number[]): Promise<HostArray[]> {
    this.check('read');
    const infos = values.map((v) => this.valueInfo(v));
    const sizes = infos.map((v) => valueBytes(v.dtype, v.shape));
    const total = sizes.reduce((a, b) => a + b, 0);
    const empty = (v: ValueInfo): HostArray => (v.dtype === 'i32' ? new Int32Array(0) : isCompact(v.dtype) ? new Uint8Array(0) : new Float32Array(0));
    if (total === 0) return infos.map(empty);
    const device = this.ctx.device;
    this.flushOptimizer();
    const staging = this.ctx.readbacks.acquire(alignUp(total, 4), 'readback');
    let reusable = false;
    try {
      const enc = device.createCommandEncoder({ label: 'readback' });
      let at = 0;
      values.forEach((v, i) => {
        const from = this.location(v);
        if (sizes[i]! > 0) enc.copyBufferToBuffer(from.buffer, from.offset, staging, at, sizes[i]!);
        at += sizes[i]!;
      });
      device.queue.submit([enc.finish()]);
      try {
        await staging.mapAsync(GPUMapMode.READ);
      } catch (e) {
        this.ctx.check('read');
        throw new WebgpuError(`read: mapping the readback buffer failed: ${(e as Error).message}`);
      }
      this.ctx.check('read');
      const bytes = staging.getMappedRange(0, alignUp(total, 4)).slice(0);
      staging.unmap();
      reusable = true;
      at = 0;
      return infos.map((v, i) => {
        const n = sizes[i]! / 4;
        const out = v.dtype === 'i32' ? new Int32Array(bytes, at, n).slice() : isCompact(v.dtype) ? new Uint8Array(bytes, at, sizes[i]!).slice() : new Float32Array(bytes, at, n).slice();
        at += sizes[i]!;
        return out;
      });
    } finally {
      // A buffer whose mapping failed is not trusted again.
      if (reusable) this.ctx.readbacks.release(staging);
      else staging.destroy();
    }
  }

  private encode(pass: GPUComputePassEncoder, step: LoadedStep): void {
    for (const d of step.dispatches) {
      pass.setPipeline(d.kernel.pipeline);
      pass.setBindGroup(0, d.bindGroup);
      pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
    }
  }

  private submit(steps: readonly LoadedStep[], label: string): Promise<void> {
    const device = this.ctx.device;
    const op = (st: LoadedStep | undefined): string => st?.label.split(' (')[0] ?? '';
    this.ctx.lastWork = steps.length === 1 ? steps[0]!.label : `${label}: ${steps.length} steps, ${op(steps[0])} … ${op(steps[steps.length - 1])}`;
    return this.ctx.scoped(label, () => {
      const enc = device.createCommandEncoder({ label });
      if (this.profiled && this.ctx.timestamps) {
        const collect = this.encodeTimed(enc, steps);
        device.queue.submit([enc.finish()]);
        this.profiled.push(collect());
        return;
      }
      const pass = enc.beginComputePass({ label });
      for (const s of steps) this.encode(pass, s);
      pass.end();
      device.queue.submit([enc.finish()]);
    }).catch(async (e: Error) => {
      throw new WebgpuError(`${await this.locate(steps)}: ${e.message}`);
    });
  }

  /** Which step fails validation: each is encoded alone inside an error scope (nothing is submitted). */
  private async locate(steps: readonly LoadedStep[]): Promise<string> {
    const device = this.ctx.device;
    for (const s of steps) {
      device.pushErrorScope('validation');
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass();
      this.encode(pass, s);
      pass.end();
      enc.finish();
      const err = await device.popErrorScope();
      if (err) return `kernel ${s.label}`;
    }
    return 'run';
  }

  async run(skip?: Uint8Array): Promise<void> {
    this.check('run');
    this.flushOptimizer();
    const active = skip ? this.steps.filter((_, i) => !skip[i]) : this.steps;
    if (active.length === 0) return;
    await this.submit(active, 'run');
  }

  /**
   * Encode each step in a compute pass of its own with timestamps at its start and end, resolved into a
   * readback buffer in the same command buffer. Returns the collector to call once submitted.
   */
  private encodeTimed(enc: GPUCommandEncoder, steps: readonly LoadedStep[]): () => Promise<StepTime[]> {
    const device = this.ctx.device;
    const bytes = steps.length * 16;
    const sets: GPUQuerySet[] = [];
    const resolve = device.createBuffer({ label: 'timestamps', size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const staging = this.ctx.readbacks.acquire(bytes, 'timestamps readback');
    steps.forEach((s, i) => {
      const q = i % TIMED_STEPS_PER_SET;
      if (q === 0) sets.push(device.createQuerySet({ label: 'timestamps', type: 'timestamp', count: 2 * Math.min(TIMED_STEPS_PER_SET, steps.length - i) }));
      const pass = enc.beginComputePass({ label: s.label, timestampWrites: { querySet: sets[sets.length - 1]!, beginningOfPassWriteIndex: 2 * q, endOfPassWriteIndex: 2 * q + 1 } });
      this.encode(pass, s);
      pass.end();
    });
    sets.forEach((set, k) => enc.resolveQuerySet(set, 0, set.count, resolve, k * TIMED_STEPS_PER_SET * 16));
    enc.copyBufferToBuffer(resolve, 0, staging, 0, bytes);
    return async () => {
      let reusable = false;
      try {
        await staging.mapAsync(GPUMapMode.READ);
        const t = new BigInt64Array(staging.getMappedRange(0, bytes).slice(0));
        staging.unmap();
        reusable = true;
        // Timestamps are in nanoseconds; an implementation may report a pass that ends "before" it starts
        // (clock domains), which is clamped to zero.
        return steps.map((s, i) => ({ op: s.op, name: s.name, ms: Math.max(0, Number(t[2 * i + 1]! - t[2 * i]!)) / 1e6 }));
      } finally {
        for (const q of sets) q.destroy();
        resolve.destroy();
        if (reusable) this.ctx.readbacks.release(staging);
        else staging.destroy();
      }
    };
  }

  beginProfile(): void {
    this.check('beginProfile');
    // Updates queued before profiling are not part of it.
    this.flushOptimizer();
    this.profiled = [];
  }

  async endProfile(): Promise<StepTime[] | null> {
    this.check('endProfile');
    this.flushOptimizer();
    const pending = this.profiled;
    this.profiled = null;
    if (!this.ctx.timestamps) return null;
    if (!pending) return [];
    return (await Promise.all(pending)).flat();
  }

  adamw(param: number, grad: number, m: number, v: number, hyper: AdamWHyper): void {
    this.check('adamw');
    const key = `${param},${grad},${m},${v}`;
    let entry = this.adamwSteps.get(key);
    if (!entry) {
      for (const x of [param, grad, m, v]) {
        const info = this.valueInfo(x);
        if (info.dtype !== 'f32') throw new WebgpuError(`adamw: ${this.name(x)} is not f32`);
        if (numel(info.shape) !== numel(this.valueInfo(param).shape)) throw new WebgpuError(`adamw: ${this.name(x)} ${shapeStr(info.shape)} differs in size from the parameter ${this.name(param)}`);
      }
      entry = this.buildAdamw(param, grad, m, v);
      this.adamwSteps.set(key, entry);
    }
    // The update is queued behind the hyper-parameter write; both are ordered on the queue, so one
    // buffer per parameter suffices as long as its dispatch is submitted before the next write.
    if (this.pendingOptimizer.includes(entry.step)) this.flushOptimizer();
    this.ctx.device.queue.writeBuffer(entry.hyper, 0, entry.encode(hyper));
    this.pendingOptimizer.push(entry.step);
    if (this.pendingOptimizer.length === 1) queueMicrotask(() => this.flushOptimizer());
  }

  private buildAdamw(param: number, grad: number, m: number, v: number): AdamwEntry {
    const label = `adamw ${this.name(param)}`;
    const step: PlanStep = { node: -1, op: 'adamw', attrs: {}, inputs: [grad], outputs: [param, m, v] };
    const b = new StepBuilder(this.plan, step, label, this.loader);
    const size = this.opts.adamwHyperBytes;
    const hyper = this.ctx.device.createBuffer({ label: `${label} hyper`, size, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    const encode = this.opts.adamw(b, this.adamwKernel, { buffer: 'external', offset: 0, size, value: -1 });
    // Built after load: it may use neither the load-time uniform buffer nor scratch.
    for (const d of b.dispatches) {
      for (const r of Object.values(d.bindings)) {
        if (r.buffer === 'uniform' || r.buffer === 'scratch' || r.buffer === 'const') throw new WebgpuError(`${label}: the update may bind only plan values and its hyper-parameters`);
      }
    }
    const dispatches = b.dispatches.map((d) => this.bind(d, label, hyper));
    return { hyper, encode, step: { label, op: 'adamw', name: valueName(this.plan, param), dispatches } };
  }

  private flushOptimizer(): void {
    if (this.pendingOptimizer.length === 0 || this.disposed) return;
    const steps = this.pendingOptimizer;
    this.pendingOptimizer = [];
    this.submit(steps, 'adamw').catch((e: Error) => {
      // Surfaced by the next call on this executable.
      this.deferred ??= e;
    });
  }

  dispose(): void {
    if (this.disposed) return;
    this.flushOptimizer();
    this.disposed = true;
    this.arena.destroy();
    const pool = this.opts.pool;
    for (const [value, b] of this.weights) {
      const src = this.opts.weights?.get(value);
      if (!src || !pool?.owns(src, b) || pool.release(src)) b.destroy();
    }
    this.uniformBuffer?.destroy();
    for (const e of this.adamwSteps.values()) e.hyper.destroy();
  }
}
