/**
 * LT-SFT (Ansell et al., 2022) as an Updater. Both phases run inside one `trainBaseWeights` run with every
 * base tensor trainable and updated by a host optimizer (LtSftAdam below): phase 1 (steps 1…N1) is dense
 * AdamW with an optional L1 pull toward θ₀; after step N1 the top-K |θ₁ − θ₀| entries over all tensors are
 * chosen, and the next update first resets every entry to θ₀ (and zeroes the moments) and from then on
 * updates the chosen entries only. The optimizer owns θ₀ (a copy taken at its first update), so the reset
 * needs nothing from the trainer: see README.md for why this shape rather than a two-run orchestration.
 */
import type { SparseDelta } from '../sparse/delta.js';
import type { UpdaterEntry } from '../registry-types.js';
import type { TensorOptimizer, TensorOptimizerHyper, Updater, UpdaterContext } from '../types.js';
import { l1TowardBase, topKDelta } from './select.js';

/** AdamW over a whole tensor (phase 1, with L1 toward θ₀), then over a mask of it from θ₀ again (phase 2). */
export class LtSftAdam implements TensorOptimizer {
  base: Float32Array | undefined;
  m: Float32Array;
  v: Float32Array;
  /** Phase 2's entries (sorted); undefined while phase 1 runs. */
  mask: Int32Array | undefined;
  /** Set when the mask is chosen: the next update resets to θ₀ first. */
  private resetPending = false;
  /** Step count at the reset (phase 2's Adam bias correction restarts). */
  private phase2Since = 0;
  /** The last update's L1 term λ·Σ|θ − θ₀| (before the update). */
  lastL1 = 0;
  constructor(size: number, private readonly lambda: number) {
    this.m = new Float32Array(size);
    this.v = new Float32Array(size);
  }
  startPhase2(mask: Int32Array): void {
    this.mask = mask;
    this.resetPending = true;
  }
  update(param: Float32Array, grad: Float32Array, h: TensorOptimizerHyper): void {
    if (!this.base) this.base = Float32Array.from(param);
    if (this.resetPending) {
      param.set(this.base);
      this.m = new Float32Array(this.mask!.length);
      this.v = new Float32Array(this.mask!.length);
      this.phase2Since = h.step - 1;
      this.resetPending = false;
    }
    if (!this.mask) {
      for (let i = 0; i < grad.length; i++) grad[i] *= h.gradScale;
      // The L1 subgradient joins the gradient after clipping: it is a regulariser, not part of the task loss.
      this.lastL1 = this.lambda > 0 ? l1TowardBase(param, this.base, grad, this.lambda) : 0;
      const bc1 = 1 - h.beta1 ** h.step, bc2 = 1 - h.beta2 ** h.step;
      for (let i = 0; i < param.length; i++) {
        const g = grad[i];
        this.m[i] = h.beta1 * this.m[i] + (1 - h.beta1) * g;
        this.v[i] = h.beta2 * this.v[i] + (1 - h.beta2) * g * g;
        param[i] -= h.lr * ((this.m[i] / bc1) / (Math.sqrt(this.v[i] / bc2) + h.eps) + h.weightDecay * param[i]);
      }
      return;
    }
    const t = h.step - this.phase2Since;
    const bc1 = 1 - h.beta1 ** t, bc2 = 1 - h.beta2 ** t;
    for (let p = 0; p < this.mask.length; p++) {
      const k = this.mask[p];
      const g = grad[k] * h.gradScale;
      this.m[p] = h.beta1 * this.m[p] + (1 - h.beta1) * g;
      this.v[p] = h.beta2 * this.v[p] + (1 - h.beta2) * g * g;
      param[k] -= h.lr * ((this.m[p] / bc1) / (Math.sqrt(this.v[p] / bc2) + h.eps) + h.weightDecay * param[k]);
    }
  }
  stateBytes(): number {
    return this.m.byteLength + this.v.byteLength + (this.base?.byteLength ?? 0) + (this.mask?.byteLength ?? 0);
  }
}

export interface LtSftOptions {
  /** N1: steps of the full fine-tune; the run's remaining steps are phase 2. */
  phase1Steps: number;
  /** K as a fraction of all trainable entries (used when `count` is absent). */
  density?: number;
  /** K as a number of entries. */
  count?: number;
  /** λ of the L1 pull toward θ₀ in phase 1 (0: none). */
  l1?: number;
}

export function ltSftUpdater(o: LtSftOptions): Updater & { readonly optimizers: ReadonlyMap<string, LtSftAdam>; kept(): number } {
  if (!(Number.isInteger(o.phase1Steps) && o.phase1Steps >= 1)) throw new RangeError(`lt-sft: phase-1 steps must be an integer ≥ 1 (got ${o.phase1Steps})`);
  if (o.count !== undefined && !(Number.isInteger(o.count) && o.count >= 1)) throw new RangeError(`lt-sft: count (K) must be an integer ≥ 1 (got ${o.count})`);
  const density = o.density ?? 0.01;
  if (!(density > 0 && density <= 1)) throw new RangeError(`lt-sft: density must be in (0, 1] (got ${density})`);
  const lambda = o.l1 ?? 0;
  if (!(lambda >= 0 && Number.isFinite(lambda))) throw new RangeError(`lt-sft: l1 must be ≥ 0 (got ${lambda})`);
  const optimizers = new Map<string, LtSftAdam>();
  let k = 0, total = 0, chosen: SparseDelta | undefined;

  /** The global top-K of |θ − θ₀| over every tensor: phase 2's masks. */
  const choose = async (ctx: UpdaterContext): Promise<SparseDelta> => {
    const names = [...optimizers.keys()];
    const tuned = await ctx.values(names);
    const base = new Map(names.map((n) => [n, optimizers.get(n)!.base ?? tuned.get(n)!]));
    total = names.reduce((a, n) => a + tuned.get(n)!.length, 0);
    k = o.count ?? Math.max(1, Math.round(density * total));
    if (k > total) throw new RangeError(`lt-sft: K = ${k} exceeds the ${total} trainable entries`);
    return topKDelta(base, tuned, k);
  };

  return {
    method: 'lt-sft',
    optimizers,
    kept: () => k,
    initialTrainable: (ctx) => ctx.tensors.map((t) => t.name),
    tensorOptimizer: (name, shape) => {
      const opt = new LtSftAdam(shape.reduce((a, b) => a * b, 1), lambda);
      optimizers.set(name, opt);
      return opt;
    },
    afterStep: async (ctx) => {
      if (ctx.step <= o.phase1Steps && lambda > 0) {
        let l1 = 0;
        for (const opt of optimizers.values()) l1 += opt.lastL1;
        ctx.log(`lt-sft: step ${ctx.step} l1 ${l1.toPrecision(6)}`);
      }
      if (ctx.step === o.phase1Steps) {
        chosen = await choose(ctx);
        for (const [n, opt] of optimizers) opt.startPhase2(chosen.get(n)?.indices ?? new Int32Array(0));
        ctx.log(`lt-sft: step ${ctx.step}: kept the top ${k} |θ₁ − θ₀| entries; every weight reset to θ₀, phase 2 retrains those only`);
      }
      return undefined;
    },
    // The run's trainableFraction counts whole tensors (every one is host-updated); phase 2 moves K of them.
    summary: () => ({ ltsftPhase1Steps: o.phase1Steps, ltsftK: k, ltsftKeptFraction: total ? k / total : 0, ltsftL1: lambda }),
    sparseDelta: async (ctx) => {
      // afterStep never runs after the last step, so a chosen mask means phase 2 ran at least once; a run of
      // N1 steps or fewer never reached phase 2, and its delta is the phase-1 top-K.
      if (!chosen) return choose(ctx);
      const names = [...chosen.keys()];
      const now = await ctx.values(names);
      const out: SparseDelta = new Map();
      for (const n of names) {
        const { indices } = chosen.get(n)!;
        const base = optimizers.get(n)!.base!, cur = now.get(n)!;
        out.set(n, { indices, values: Float32Array.from(indices, (i) => cur[i] - base[i]) });
      }
      return out;
    },
  };
}

export const LT_SFT: UpdaterEntry = {
  help: 'LT-SFT: full fine-tune for N1 steps, keep the top-K |θ₁ − θ₀|, reset to θ₀ and retrain only those entries (a sparse delta)',
  options: {
    'ltsft-phase1': { type: 'int', help: 'N1: steps of the full fine-tune (phase 1; default half of --steps); the remaining --steps retrain the kept entries (phase 2)', range: { integer: true, min: 1 } },
    'ltsft-density': { type: 'number', help: 'K as a fraction of all trainable weights', default: 0.01, range: { above: 0, max: 1 } },
    'ltsft-count': { type: 'int', help: 'K as a number of weights (overrides --ltsft-density)', range: { integer: true, min: 1 } },
    'ltsft-l1': { type: 'number', help: 'λ of the L1 pull toward the base in phase 1, logged beside the loss as l1 (0: none)', default: 0, range: { min: 0 } },
  },
  create: (v, _model, run) => {
    // Default: half the run in each phase (50 when the run's length is not known).
    const phase1Steps = v['ltsft-phase1'] !== undefined ? Number(v['ltsft-phase1']) : run?.steps !== undefined ? Math.max(1, Math.floor(run.steps / 2)) : 50;
    if (run?.steps !== undefined && phase1Steps >= run.steps) throw new RangeError(`--ltsft-phase1 ${phase1Steps} leaves no phase-2 step of the run's ${run.steps} (--steps must exceed it)`);
    return ltSftUpdater({
    phase1Steps,
    density: Number(v['ltsft-density'] ?? 0.01),
    ...(v['ltsft-count'] !== undefined ? { count: Number(v['ltsft-count']) } : {}),
    l1: Number(v['ltsft-l1'] ?? 0),
    });
  },
};
