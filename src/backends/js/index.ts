/**
 * The js backend: plain TypeScript kernels, the readable oracle every other backend is tested against.
 * With `precision: 'f64'` it computes in float64, which the finite-difference gradient checks use.
 */
import type { AdamWHyper, Backend, ExecutionPlan, Executable, HostArray, StepTime, WeightSources } from '../backend.js';
import { WeightPool, sharedWriteMessage } from '../weight-pool.js';
import { HostProfiler, stepName, valueName } from '../host-profile.js';
import { GraphError, isCompact, numel, shapeStr } from '../../graph/types.js';
import { adamw, jsKernels, type FloatArray, type JsData, type View } from './kernels/index.js';

export interface JsBackendOptions {
  /** Arithmetic and storage precision of f32 values: 'f32' (default, as every backend) or 'f64' (for gradient checks). */
  precision?: 'f32' | 'f64';
}

export function createJsBackend(opts: JsBackendOptions = {}): Backend {
  const precision = opts.precision ?? 'f32';
  const pool = new WeightPool<JsData>();
  return {
    name: 'js',
    describe: () => `js (plain TypeScript, ${precision})`,
    load: async (plan, weights) => new JsExecutable(plan, precision, pool, weights),
    dispose: () => {},
  };
}

class JsExecutable implements Executable {
  private readonly profiler = new HostProfiler();
  readonly backend = 'js' as const;
  private readonly views: View<JsData>[];
  /** The host array each weight loaded with `weights` came from (its key in the pool), by value id. */
  private readonly sources = new Map<number, HostArray>();
  /** Each weight's own storage (shared through the pool when loaded from the same array), by value id. */
  private readonly weightData = new Map<number, JsData>();
  private disposed = false;

  constructor(private readonly plan: ExecutionPlan, precision: 'f32' | 'f64', private readonly pool: WeightPool<JsData>, weights?: WeightSources) {
    const bytes = precision === 'f64' ? 8 : 4;
    const arena = new ArrayBuffer(plan.arenaElems * bytes);
    const float = (buf: ArrayBuffer, at: number, n: number) => (precision === 'f64' ? new Float64Array(buf, at, n) : new Float32Array(buf, at, n));
    for (const [value, data] of weights ?? []) {
      const v = plan.values[value];
      if (!v || !plan.weights.some((w) => w.value === value)) throw new GraphError(`weights: %${value} is not a weight of this plan`);
      const n = isCompact(v.dtype) ? plan.weights.find((w) => w.value === value)!.bytes : numel(v.shape);
      if (data.length !== n) throw new GraphError(`write to ${this.label(value)}: got ${data.length} elements, the value ${shapeStr(v.shape)} holds ${n}`);
    }
    // Weights own their memory (shared through the pool when loaded from the same array); a compact
    // weight is the bytes of its layout.
    const own = new Map<number, View<JsData>>(plan.weights.map((w) => {
      const v = plan.values[w.value]!;
      const make = (): JsData => (isCompact(v.dtype) ? new Uint8Array(w.bytes) : float(new ArrayBuffer(numel(v.shape) * bytes), 0, numel(v.shape)));
      const src = weights?.get(w.value);
      let data: JsData;
      if (src) {
        this.sources.set(w.value, src);
        data = pool.acquire(src, w.bytes, () => {
          const d = make();
          d.set(src);
          return d;
        });
      } else data = make();
      this.weightData.set(w.value, data);
      return [w.value, { data, shape: v.shape, dtype: v.dtype }];
    }));
    this.views = plan.values.map((v) => {
      const n = numel(v.shape);
      const home = own.get(plan.roots[v.id]!);
      if (home) return { data: home.data instanceof Uint8Array ? home.data : home.data.subarray(0, n), shape: v.shape, dtype: v.dtype };
      const at = plan.offsets[v.id]! * bytes;
      const data = v.dtype === 'i32' ? new Int32Array(arena, at, n) : float(arena, at, n);
      return { data, shape: v.shape, dtype: v.dtype };
    });
    for (const s of plan.steps) {
      if (!jsKernels[s.op]) throw new GraphError(`node #${s.node} ${s.op}: the js backend has no kernel for this op`);
    }
  }

  write(value: number, data: HostArray): void {
    const view = this.view(value);
    if (data.length !== view.data.length) {
      throw new GraphError(`write to ${this.label(value)}: got ${data.length} elements, the value ${shapeStr(view.shape)} holds ${view.data.length}`);
    }
    const root = this.plan.roots[value]!, src = this.sources.get(root);
    if (src && this.pool.owns(src, this.weightData.get(root)!)) {
      const holders = this.pool.holders(src);
      if (holders > 1) throw new GraphError(sharedWriteMessage(this.label(value), holders));
      this.pool.forget(src);
    }
    view.data.set(data);
  }

  async read(values: readonly number[]): Promise<HostArray[]> {
    return values.map((v) => this.view(v).data.slice());
  }

  async run(skip?: Uint8Array): Promise<void> {
    const { steps } = this.plan;
    for (let i = 0; i < steps.length; i++) {
      if (skip?.[i]) continue;
      const s = steps[i]!;
      this.profiler.time(s.op, stepName(this.plan, s), () => jsKernels[s.op]!(s.inputs.map((x) => this.views[x]!), s.outputs.map((x) => this.views[x]! as View), s.attrs));
    }
  }

  adamw(param: number, grad: number, m: number, v: number, hyper: AdamWHyper): void {
    const [p, g, mm, vv] = [param, grad, m, v].map((x) => this.view(x).data as FloatArray);
    this.profiler.time('adamw', valueName(this.plan, param), () => adamw(p!, g!, mm!, vv!, hyper));
  }

  beginProfile(): void { this.profiler.begin(); }
  async endProfile(): Promise<StepTime[]> { return this.profiler.end(); }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const [value, src] of this.sources) if (this.pool.owns(src, this.weightData.get(value)!)) this.pool.release(src);
  }

  private view(value: number): View<JsData> {
    const v = this.views[value];
    if (!v) throw new GraphError(`no value %${value} in this plan`);
    return v;
  }

  private label(value: number): string {
    const v = this.plan.values[value]!;
    return `%${value}${v.name ? ` (${v.name})` : ''}`;
  }
}
