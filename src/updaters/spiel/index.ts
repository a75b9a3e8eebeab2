/**
 * SpIEL (Ansell et al., 2024): sparse fine-tuning of the base model's 2-D weights at a fixed number of active
 * entries, whose positions are re-chosen every `interval` steps by drop (smallest |Δ|) and grow (largest
 * |mean g| over the `accumulate` steps before, or SM3's row × column product). The entries update with Adam
 * on the host (only the active ones move; every other entry keeps its base value bit for bit).
 */
import type { UpdaterEntry } from '../registry-types.js';
import type { SparseDelta } from '../sparse/delta.js';
import type { TensorOptimizer, TensorOptimizerHyper, Updater, UpdaterContext } from '../types.js';
import { dropGrow, randomIndices, reselectionCount, sm3Score } from './drop-grow.js';

export interface SpielOptions {
  /** Active entries over ALL base parameters (norms included in the count), spread over the 2-D weights (default 0.01). */
  density?: number;
  /** Steps between reselections (default 20). */
  interval?: number;
  /** Steps before each reselection whose gradients are accumulated for the growth score (default 5; at most interval). */
  accumulate?: number;
  /** Initial reselection rate ρ, decaying linearly to 0 at the last step (default 0.2). */
  rate?: number;
  /** Grow by SM3's row × column accumulators of g² instead of |mean g|. */
  sm3?: boolean;
  /** The run's total optimizer steps T (for the decay of ρ). */
  steps: number;
}

export function checkSpielOptions(o: SpielOptions): void {
  const d = o.density ?? 0.01, i = o.interval ?? 20, a = o.accumulate ?? 5, r = o.rate ?? 0.2;
  if (!(d > 0 && d <= 1)) throw new RangeError(`spiel: density must be in (0, 1] (got ${d})`);
  if (!(Number.isInteger(i) && i >= 1)) throw new RangeError(`spiel: interval must be an integer ≥ 1 (got ${i})`);
  if (!(Number.isInteger(a) && a >= 1 && a <= i)) throw new RangeError(`spiel: accumulate must be an integer in [1, interval = ${i}] (got ${a})`);
  if (!(r >= 0 && r <= 1)) throw new RangeError(`spiel: reselection rate must be in [0, 1] (got ${r})`);
  if (!(Number.isInteger(o.steps) && o.steps >= 1)) throw new RangeError(`spiel: steps must be an integer ≥ 1 (got ${o.steps})`);
}

/**
 * Adam on one tensor's active entries, with the reference's per-entry step count ("age") for bias correction
 * so that regrown entries, seeded from the accumulated gradients, correct as if they had trained that long.
 * Weight decay pulls the delta (not the weight) toward zero, as the reference decays its delta values.
 */
export class SpielAdam implements TensorOptimizer {
  m: Float32Array;
  v: Float32Array;
  age: Float32Array;
  /** Base value at each active index (recorded when the entry becomes active); NaN until the first update. */
  base: Float32Array;
  /** Current Δ = θ − θ₀ at each active index (after the last update). */
  delta: Float32Array;
  /** A reselection to carry out at the next update: dropped indices reset to base, new entries seeded. */
  private pending?: { indices: Int32Array; from: Int32Array; m: Float32Array; v: Float32Array; age: Float32Array; dropped: Int32Array; droppedBase: Float32Array };
  constructor(public indices: Int32Array) {
    const n = indices.length;
    this.m = new Float32Array(n); this.v = new Float32Array(n); this.age = new Float32Array(n);
    this.base = new Float32Array(n).fill(Number.NaN); this.delta = new Float32Array(n);
  }

  /** Schedule a drop/grow: `seed(k)` gives a regrown index's initial moments and age. Takes effect at the next update. */
  reselect(n: number, growScore: Float32Array, seed: (k: number) => { m: number; v: number; age: number }): number {
    if (n <= 0) return 0;
    const r = dropGrow(this.indices, this.delta, growScore, n);
    const len = r.indices.length;
    const m = new Float32Array(len), v = new Float32Array(len), age = new Float32Array(len);
    for (let p = 0; p < len; p++) {
      const f = r.from[p]!;
      if (f >= 0) { m[p] = this.m[f]!; v[p] = this.v[f]!; age[p] = this.age[f]!; continue; }
      const s = seed(r.indices[p]!);
      m[p] = s.m; v[p] = s.v; age[p] = s.age;
    }
    const kept = new Set(r.indices);
    const dropped: number[] = [], droppedBase: number[] = [];
    this.indices.forEach((k, p) => { if (!kept.has(k)) { dropped.push(k); droppedBase.push(this.base[p]!); } });
    this.pending = { indices: r.indices, from: r.from, m, v, age, dropped: Int32Array.from(dropped), droppedBase: Float32Array.from(droppedBase) };
    return dropped.length;
  }

  update(param: Float32Array, grad: Float32Array, h: TensorOptimizerHyper): void {
    if (this.pending) {
      const q = this.pending;
      this.pending = undefined;
      // A dropped entry returns to its base value: θ = θ₀ + scatter(ι, Δ) with the entry no longer in ι.
      for (let i = 0; i < q.dropped.length; i++) param[q.dropped[i]!] = q.droppedBase[i]!;
      const base = new Float32Array(q.indices.length);
      for (let p = 0; p < q.indices.length; p++) base[p] = q.from[p]! >= 0 ? this.base[q.from[p]!]! : param[q.indices[p]!]!;
      this.indices = q.indices; this.m = q.m; this.v = q.v; this.age = q.age; this.base = base;
      this.delta = new Float32Array(q.indices.length);
    }
    for (let p = 0; p < this.indices.length; p++) {
      const k = this.indices[p]!;
      if (Number.isNaN(this.base[p]!)) this.base[p] = param[k]!;
      const g = grad[k]! * h.gradScale;
      const m = (this.m[p] = h.beta1 * this.m[p]! + (1 - h.beta1) * g);
      const v = (this.v[p] = h.beta2 * this.v[p]! + (1 - h.beta2) * g * g);
      const age = (this.age[p] = this.age[p]! + 1);
      const c1 = 1 - h.beta1 ** age, c2 = 1 - h.beta2 ** age;
      const d = param[k]! - this.base[p]!;
      param[k] = param[k]! - h.lr * ((m / c1) / (Math.sqrt(v / c2) + h.eps) + h.weightDecay * d);
      this.delta[p] = param[k]! - this.base[p]!;
    }
  }

  stateBytes(): number {
    return this.indices.byteLength + this.m.byteLength + this.v.byteLength + this.age.byteLength + this.base.byteLength + this.delta.byteLength;
  }
}

/** How many active entries each tensor gets: d·(all parameters), spread over `sizes` in proportion to their size. */
export function spreadDensity(sizes: readonly number[], totalParams: number, density: number): number[] {
  const trainable = sizes.reduce((a, b) => a + b, 0);
  const want = Math.round(density * totalParams);
  if (want > trainable) throw new RangeError(`spiel: density ${density} asks for ${want} active entries, the 2-D weights have only ${trainable}`);
  if (want < 1) throw new RangeError(`spiel: density ${density} of ${totalParams} parameters leaves no active entry`);
  // Largest-remainder rounding: the counts sum to `want` exactly.
  const exact = sizes.map((s) => (want * s) / trainable);
  const out = exact.map(Math.floor);
  let left = want - out.reduce((a, b) => a + b, 0);
  const order = exact.map((e, i) => [e - Math.floor(e), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const [, i] of order) { if (left <= 0) break; if (out[i]! < sizes[i]!) { out[i]!++; left--; } }
  return out;
}

export function spielUpdater(o: SpielOptions): Updater {
  checkSpielOptions(o);
  const density = o.density ?? 0.01, interval = o.interval ?? 20, accumulate = o.accumulate ?? 5, rate = o.rate ?? 0.2;
  const opts = new Map<string, SpielAdam>();
  const shapes = new Map<string, readonly number[]>();
  // Accumulated Σg and Σg² over the window before a reselection (dense, freed after it).
  let sumG = new Map<string, Float32Array>(), sumG2 = new Map<string, Float32Array>(), samples = 0;
  let swaps = 0, reselections = 0, active = 0, totalParams = 1;

  const reselect = (ctx: UpdaterContext, t: number): void => {
    let n = 0;
    for (const [name, opt] of opts) {
      const g = sumG.get(name)!, g2 = sumG2.get(name)!;
      const count = reselectionCount(opt.indices.length, t, o.steps, rate);
      if (count === 0) continue;
      const shape = shapes.get(name)!;
      const meanG2 = g2.map((x) => x / samples);
      const score = o.sm3 ? sm3Score(meanG2, shape[0]!, shape[1]!) : g.map((x) => Math.abs(x / samples));
      // Seeded as the reference does: first moment the mean gradient, second the mean g², age the steps accumulated.
      n += opt.reselect(count, score, (k) => ({ m: g[k]! / samples, v: meanG2[k]!, age: samples }));
    }
    swaps += n; reselections++;
    ctx.log(`spiel: step ${t}: ${n} of ${active} active entries dropped and regrown (${o.sm3 ? 'SM3 score' : '|mean g|'} over ${samples} steps)`);
  };

  return {
    method: 'spiel',
    initialTrainable(ctx) {
      const chosen = ctx.tensors.filter((t) => t.shape.length === 2);
      const total = ctx.tensors.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
      const sizes = chosen.map((t) => t.shape[0]! * t.shape[1]!);
      const counts = spreadDensity(sizes, total, density);
      chosen.forEach((t, i) => {
        if (counts[i] === 0) return;
        opts.set(t.name, new SpielAdam(randomIndices(sizes[i]!, counts[i]!, () => ctx.rng())));
        shapes.set(t.name, t.shape);
      });
      active = counts.reduce((a, b) => a + b, 0);
      totalParams = total;
      ctx.log(`spiel: ${active} active entries (density ${density} of ${total} parameters) over ${opts.size} 2-D weights`);
      return [...opts.keys()];
    },
    tensorOptimizer(name) {
      const opt = opts.get(name);
      if (!opt) throw new Error(`spiel: ${name} has no active entries`);
      return opt;
    },
    async beforeUpdate(ctx) {
      const t = ctx.step + 1, phase = t % interval;
      if (phase === 0 && samples > 0 && t < o.steps) reselect(ctx, t);
      if (phase === 0) { sumG = new Map(); sumG2 = new Map(); samples = 0; }
      if (phase < interval - accumulate) return;
      const grads = await ctx.gradients([...opts.keys()]);
      for (const [name, g] of grads) {
        const s = sumG.get(name) ?? new Float32Array(g.length), s2 = sumG2.get(name) ?? new Float32Array(g.length);
        for (let i = 0; i < g.length; i++) { s[i]! += g[i]!; s2[i]! += g[i]! * g[i]!; }
        sumG.set(name, s); sumG2.set(name, s2);
      }
      samples++;
    },
    async sparseDelta(ctx) {
      const values = await ctx.values([...opts.keys()]);
      const out: SparseDelta = new Map();
      for (const [name, opt] of opts) {
        const now = values.get(name)!;
        // Never-updated entries (base still NaN) have Δ = 0.
        out.set(name, { indices: Int32Array.from(opt.indices), values: Float32Array.from(opt.indices, (k, p) => (Number.isNaN(opt.base[p]!) ? 0 : now[k]! - opt.base[p]!)) });
      }
      return out;
    },
    // The entries that train, not the tensors that hold them (trainBaseWeights counts whole tensors).
    summary: () => ({ trainableFraction: active / totalParams, spielDensity: density, spielActive: active, spielReselections: reselections, spielSwapped: swaps, spielGrowth: o.sm3 ? 'sm3' : 'gradient' }),
  };
}

export const SPIEL: UpdaterEntry = {
  help: 'SpIEL sparse fine-tuning: a fixed density of base-weight entries trains; drop smallest |Δ|, grow largest gradient every K steps; saves a sparse delta',
  options: {
    'spiel-density': { type: 'number', help: 'active entries over all parameters, spread over the 2-D weights', default: 0.01, range: { above: 0, max: 1 } },
    'spiel-interval': { type: 'int', help: 'steps between drop/grow reselections', default: 20, range: { integer: true, min: 1 } },
    'spiel-accumulate': { type: 'int', help: 'steps before each reselection whose gradients score the growth (at most --spiel-interval)', default: 5, range: { integer: true, min: 1 } },
    'spiel-rate': { type: 'number', help: 'initial reselection rate, decaying linearly to 0 at the last step', default: 0.2, range: { min: 0, max: 1 } },
    'spiel-sm3': { type: 'bool', help: "grow by the product of SM3's row and column accumulators of g² instead of |mean g|" },
  },
  create: (v, _model, run) => {
    const interval = Number(v['spiel-interval'] ?? 20), accumulate = Number(v['spiel-accumulate'] ?? 5);
    if (accumulate > interval) throw new RangeError(`--spiel-accumulate ${accumulate} exceeds --spiel-interval ${interval}`);
    return spielUpdater({
      density: Number(v['spiel-density'] ?? 0.01), interval, accumulate, rate: Number(v['spiel-rate'] ?? 0.2),
      sm3: v['spiel-sm3'] === true, steps: run?.steps ?? 1,
    });
  },
};
