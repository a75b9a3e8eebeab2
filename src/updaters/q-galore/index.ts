/**
 * Q-GaLore: GaLore with its weights held as INT8 (stochastic rounding after every update), its projection
 * matrices as INT4 (groups of 256), and lazy subspace updates: a weight whose leading singular vector keeps
 * pointing the same way across SVDs doubles its interval between SVDs.
 *
 * The training graph computes with f32 values, so each projected weight's optimizer holds the INT8 codes and
 * writes their dequantised value into the graph's parameter after every update: the forward pass sees
 * exactly the INT8 weight, and the codes are the weight's state.
 */
import { GALORE_DEFAULTS, GaLoreAdam, type GaLoreSettings, checkSettings } from '../galore/projected-adam.js';
import { isProjectedWeight } from '../galore/index.js';
import type { UpdaterEntry, UpdaterOption } from '../registry-types.js';
import type { TensorOptimizerHyper, Updater } from '../types.js';
import { Int4Matrix, Int8Weights, QUANT_GROUP } from './quant.js';

export interface LazySettings {
  /** Cosine similarity of consecutive leading singular vectors at or above which a subspace counts as stable. */
  cosThreshold: number;
  /** Consecutive stable comparisons (the last decompositions) that double the interval. */
  window: number;
}

export const LAZY_DEFAULTS: LazySettings = { cosThreshold: 0.4, window: 5 };

/**
 * The interval rule on its own: each new leading singular vector is compared with the previous one by
 * |cos| (a singular vector's sign is arbitrary); when the last `window` comparisons are all ≥ the
 * threshold, the interval doubles. The window is not cleared by a doubling: a subspace that stays put
 * doubles again at its next decomposition.
 */
export class LazyInterval {
  private previous: Float64Array | undefined;
  private readonly recent: number[] = [];
  doublings = 0;

  constructor(public interval: number, readonly settings: LazySettings = LAZY_DEFAULTS) {}

  /** Record a decomposition's leading vector; returns the cosine with the previous one (undefined for the first). */
  observe(vector: ArrayLike<number>): number | undefined {
    const v = Float64Array.from(vector);
    const prev = this.previous;
    this.previous = v;
    if (!prev) return undefined;
    if (prev.length !== v.length) throw new RangeError(`lazy interval: a vector of ${v.length} after one of ${prev.length}`);
    let dot = 0, a = 0, b = 0;
    for (let i = 0; i < v.length; i++) { dot += prev[i]! * v[i]!; a += prev[i]! ** 2; b += v[i]! ** 2; }
    const cos = a > 0 && b > 0 ? Math.abs(dot) / Math.sqrt(a * b) : 0;
    this.recent.push(cos);
    if (this.recent.length > this.settings.window) this.recent.shift();
    if (this.recent.length === this.settings.window && this.recent.every((c) => c >= this.settings.cosThreshold)) {
      this.interval *= 2;
      this.doublings++;
    }
    return cos;
  }

  /** The previous vector (f64). */
  bytes(): number { return this.previous?.byteLength ?? 0; }
}

export interface QGaLoreSettings extends GaLoreSettings, LazySettings {}

export class QGaLoreAdam extends GaLoreAdam {
  private weights: Int8Weights | undefined;
  private int4: Int4Matrix | undefined;
  readonly lazy: LazyInterval;

  constructor(rows: number, cols: number, readonly q: QGaLoreSettings, private readonly rng: () => number) {
    super(rows, cols, q);
    checkLazy(q);
    this.lazy = new LazyInterval(q.interval, q);
  }

  /** The projector, dequantised from its INT4 codes for this use (not kept). */
  override projector(): Float32Array | undefined {
    return this.int4?.dequantize();
  }

  /** The weight as INT8 (undefined before the first update). */
  int8(): Int8Weights | undefined { return this.weights; }

  protected override adopt(p: Float64Array): void {
    // The lazy rule compares the float singular vectors, before quantisation (as the reference does).
    this.lazy.observe(this.leadingVector(p));
    this.interval = this.lazy.interval;
    this.int4 = new Int4Matrix(p, QUANT_GROUP);
  }

  protected override apply(param: Float32Array, update: Float64Array, h: TensorOptimizerHyper): void {
    // The first update starts from the loaded weight rounded to the nearest INT8 code.
    this.weights ??= Int8Weights.nearest(param, QUANT_GROUP);
    const w = this.weights, decay = 1 - h.lr * h.weightDecay;
    const next = new Float64Array(param.length);
    for (let i = 0; i < next.length; i++) next[i] = w.value(i) * decay - h.lr * update[i]!;
    w.store(next, this.rng);
    w.dequantize(param);
  }

  /** INT8 codes and scales, INT4 projector, f32 moments and the lazy rule's previous vector. */
  override stateBytes(): number {
    return (this.weights?.bytes() ?? 0) + (this.int4?.bytes() ?? 0) + this.m.byteLength + this.v.byteLength + this.lazy.bytes();
  }
}

function checkLazy(s: LazySettings, method = 'q-galore'): void {
  if (!(Number.isFinite(s.cosThreshold) && s.cosThreshold >= 0 && s.cosThreshold <= 1)) throw new RangeError(`${method}: cos threshold must be in [0, 1] (got ${s.cosThreshold})`);
  if (!(Number.isInteger(s.window) && s.window >= 1)) throw new RangeError(`${method}: window must be an integer ≥ 1 (got ${s.window})`);
}

export function qGaLoreUpdater(o: Partial<QGaLoreSettings> = {}): Updater & { optimizers: Map<string, QGaLoreAdam> } {
  const settings: QGaLoreSettings = { ...GALORE_DEFAULTS, ...LAZY_DEFAULTS, ...o };
  checkSettings(settings, 'q-galore');
  checkLazy(settings);
  const optimizers = new Map<string, QGaLoreAdam>();
  // The run's seeded draws, for stochastic rounding (set before any optimizer exists: initialTrainable runs first).
  let rng: (() => number) | undefined;
  return {
    method: 'q-galore',
    optimizers,
    initialTrainable: (ctx) => { rng = () => ctx.rng(); return ctx.tensors.map((t) => t.name); },
    tensorOptimizer: (name, shape) => {
      if (!isProjectedWeight(name, shape)) return undefined;
      if (!rng) throw new Error('q-galore: an optimizer was asked for before the run started');
      const opt = new QGaLoreAdam(shape[0]!, shape[1]!, settings, rng);
      optimizers.set(name, opt);
      return opt;
    },
    summary: () => {
      const all = [...optimizers.values()];
      const intervals = all.map((x) => x.interval);
      return {
        qgaloreRank: settings.rank, qgaloreInterval: settings.interval, qgaloreScale: settings.scale,
        qgaloreProjected: all.length, qgaloreSvds: all.reduce((a, x) => a + x.svds, 0),
        qgaloreDoublings: all.reduce((a, x) => a + x.lazy.doublings, 0),
        qgaloreLongestInterval: intervals.length ? Math.max(...intervals) : settings.interval,
        qgaloreInt8Bytes: all.reduce((a, x) => a + (x.int8()?.bytes() ?? 0), 0),
      };
    },
  };
}

export const QGALORE_OPTIONS: Readonly<Record<string, UpdaterOption>> = {
  'qgalore-rank': { type: 'int', help: 'r: rank of the gradient projection of each 2-D decoder weight (capped by its smaller side)', default: GALORE_DEFAULTS.rank, range: { integer: true, min: 1 } },
  'qgalore-interval': { type: 'int', help: 'T: starting steps between SVDs of the gradient (doubled per weight while its subspace stays put)', default: GALORE_DEFAULTS.interval, range: { integer: true, min: 1 } },
  'qgalore-scale': { type: 'number', help: 'α: scale of the projected-back update', default: GALORE_DEFAULTS.scale, range: { above: 0 } },
  'qgalore-cos-threshold': { type: 'number', help: '|cos| of consecutive leading singular vectors that counts as a stable subspace', default: LAZY_DEFAULTS.cosThreshold, range: { min: 0, max: 1 } },
  'qgalore-window': { type: 'int', help: 'consecutive stable decompositions that double a weight\'s interval', default: LAZY_DEFAULTS.window, range: { integer: true, min: 1 } },
};

export const QGALORE: UpdaterEntry = {
  help: 'Q-GaLore: GaLore with INT8 weights (stochastic rounding), INT4 projectors and an SVD interval that doubles while a weight\'s subspace stays put',
  options: QGALORE_OPTIONS,
  create: (v) => qGaLoreUpdater({
    rank: Number(v['qgalore-rank'] ?? GALORE_DEFAULTS.rank),
    interval: Number(v['qgalore-interval'] ?? GALORE_DEFAULTS.interval),
    scale: Number(v['qgalore-scale'] ?? GALORE_DEFAULTS.scale),
    cosThreshold: Number(v['qgalore-cos-threshold'] ?? LAZY_DEFAULTS.cosThreshold),
    window: Number(v['qgalore-window'] ?? LAZY_DEFAULTS.window),
  }),
};
