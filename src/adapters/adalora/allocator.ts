/**
 * AdaLoRA's rank allocator (§3.2–3.3, Algorithm 1). Each step, before the optimizer update:
 *   sensitivity    I(w) = |w · ∂L/∂w|                       for every entry of P, Λ, Q
 *   smoothed       Ī⁽ᵗ⁾ = β₁ Ī⁽ᵗ⁻¹⁾ + (1 − β₁) I⁽ᵗ⁾
 *   uncertainty    Ū⁽ᵗ⁾ = β₂ Ū⁽ᵗ⁻¹⁾ + (1 − β₂) |I⁽ᵗ⁾ − Ī⁽ᵗ⁾|
 *   score          s⁽ᵗ⁾(w) = Ī⁽ᵗ⁾ · Ū⁽ᵗ⁾
 *   triplet i      S_{k,i} = s(λ_{k,i}) + mean_j s(P_{k,ji}) + mean_j s(Q_{k,ij})
 * and after it, when the schedule says so, every λ outside the top b(t) triplets (over all modules) is set
 * to zero. Between allocations pruned triplets still train and may come back, as in the paper. The budget
 * follows the cubic schedule of §3.3 (see `adaloraBudget`). The current allocation is kept in the config as
 * PEFT's rank_pattern (`<module>.lora_E` → kept flags).
 */
import { seededRandom } from '../../util/random.js';
import { type AdapterState, restoreArray, type TrainerAccess, type TrainingController } from '../types.js';
import type { AdaloraConfig } from './config.js';
import { adaloraKeys } from './layer.js';

/**
 * b(t) for 1-based step t: the initial budget b⁽⁰⁾ while t ≤ t_i; then
 * b⁽ᵀ⁾ + (b⁽⁰⁾ − b⁽ᵀ⁾)(1 − (t − t_i)/(T − t_i − t_f))³, floored, with an allocation every ΔT steps; the
 * final budget b⁽ᵀ⁾ (allocated every step, masks fixed) once t > T − t_f.
 */
export function adaloraBudget(step: number, c: Required<Pick<AdaloraConfig, 'tinit' | 'tfinal' | 'deltaT'>>, total: number, initial: number, target: number): { budget: number; allocate: boolean } {
  if (step <= c.tinit) return { budget: initial, allocate: false };
  if (step > total - c.tfinal) return { budget: target, allocate: true };
  const progress = 1 - (step - c.tinit) / (total - c.tfinal - c.tinit);
  return { budget: Math.floor((initial - target) * progress ** 3 + target), allocate: step % c.deltaT === 0 };
}

interface Ema { ipt: Float64Array; unc: Float64Array }

/**
 * t_i, t_f and ΔT for a run of `total` steps: those the config sets, the others in the proportions of the
 * AdaLoRA authors' MNLI example (init_warmup 8000, final_warmup 50000, mask_interval 100 in 7 epochs of
 * 12,272 steps: 9%, 58% and 0.1% of the run), rounded to 10%, 60% and 0.1% (ΔT at least 1). PEFT's fixed
 * defaults (0, 0, 1) start pruning at step 1, before the importance averages mean anything, which on a short
 * run leaves the adapter barely trained.
 */
export function adaloraSchedule(c: Pick<AdaloraConfig, 'tinit' | 'tfinal' | 'deltaT'>, total: number): Required<Pick<AdaloraConfig, 'tinit' | 'tfinal' | 'deltaT'>> {
  return {
    tinit: c.tinit ?? Math.round(0.1 * total),
    tfinal: c.tfinal ?? Math.round(0.6 * total),
    deltaT: c.deltaT ?? Math.max(1, Math.round(0.001 * total)),
  };
}

export function adaloraController(adapter: AdapterState<AdaloraConfig>, o: { totalSteps: number }): TrainingController {
  const c = adapter.config;
  // A loaded adapter already cut to its rank pattern keeps its ranks.
  if (adapter.modules.some((m) => adapter.params.get(adaloraKeys(m.name).e)!.data.length !== c.initR)) return {};
  const total = c.totalStep ?? o.totalSteps;
  const schedule = adaloraSchedule(c, total);
  if (schedule.tinit >= total - schedule.tfinal) throw new Error(`adalora: tinit (${schedule.tinit}) + tfinal (${schedule.tfinal}) leave no budgeting phase in ${total} steps`);
  // The resolved schedule is the config from now on: checkpoints and the saved adapter record it.
  Object.assign(c, schedule, { totalStep: total });
  const keys = adapter.modules.map((m) => adaloraKeys(m.name));
  const all = keys.flatMap((k) => [k.a, k.e, k.b]);
  const initial = c.initR * keys.length, target = c.targetR * keys.length;
  const ema = new Map<string, Ema>();
  const fixedFrom = total - schedule.tfinal;

  const updateImportance = async (t: TrainerAccess): Promise<void> => {
    const [values, grads] = await Promise.all([t.values(all), t.gradients(all)]);
    for (const key of all) {
      const w = values.get(key)!, g = grads.get(key)!;
      let e = ema.get(key);
      if (!e) { e = { ipt: new Float64Array(w.length), unc: new Float64Array(w.length) }; ema.set(key, e); }
      for (let i = 0; i < w.length; i++) {
        const ipt = Math.abs(w[i]! * g[i]!);
        e.ipt[i] = c.beta1 * e.ipt[i]! + (1 - c.beta1) * ipt;
        e.unc[i] = c.beta2 * e.unc[i]! + (1 - c.beta2) * Math.abs(ipt - e.ipt[i]!);
      }
    }
  };

  const tripletScores = (): Float64Array[] => keys.map((k, mi) => {
    const m = adapter.modules[mi]!, r = c.initR, n = m.inFeatures, out = m.outFeatures;
    const s = (key: string, i: number): number => { const e = ema.get(key)!; return e.ipt[i]! * e.unc[i]!; };
    return Float64Array.from({ length: r }, (_, q) => {
      let a = 0, b = 0;
      for (let j = 0; j < n; j++) a += s(k.a, q * n + j);
      for (let i = 0; i < out; i++) b += s(k.b, i * r + q);
      return s(k.e, q) + a / n + b / out;
    });
  });

  // Triplets whose singular value is zeroed at the next mask although the pattern keeps them (Lingo's
  // re-introduced ones start again from zero, as in its reference code).
  let restart: Record<string, boolean[]> | undefined;

  /**
   * Keep the `budget` highest-scoring triplets over all modules (ties broken by module order, then index).
   * With rank sampling p (Lingo), each pruned triplet is kept anyway with probability p, its singular value
   * restarting from zero, and each kept one is dropped with probability p; the draws are seeded by the step.
   */
  const allocate = (budget: number, step: number): void => {
    const scores = tripletScores();
    const ranked = scores.flatMap((s, mi) => Array.from(s, (v, q) => ({ v, mi, q }))).sort((x, y) => y.v - x.v || x.mi - y.mi || x.q - y.q);
    const pattern: Record<string, boolean[]> = {};
    keys.forEach((k) => { pattern[k.e] = new Array<boolean>(c.initR).fill(false); });
    for (const { mi, q } of ranked.slice(0, budget)) pattern[keys[mi]!.e]![q] = true;
    const p = c.rankSampling ?? 0;
    if (p > 0) {
      const rand = seededRandom(step * 7919 + 17);
      restart = {};
      for (const k of keys) {
        const row = pattern[k.e]!, again = (restart[k.e] = new Array<boolean>(c.initR).fill(false));
        for (let q = 0; q < c.initR; q++) {
          const back = rand() < p, drop = rand() < p;
          if (!row[q] && back) { row[q] = true; again[q] = true; } else if (row[q] && drop) row[q] = false;
        }
      }
    }
    c.rankPattern = pattern;
  };

  const applyMask = async (t: TrainerAccess): Promise<void> => {
    const pattern = c.rankPattern!;
    const values = await t.values(keys.map((k) => k.e));
    for (const k of keys) {
      const e = values.get(k.e)!, keep = pattern[k.e]!, again = restart?.[k.e];
      t.write(k.e, e.map((v, q) => (keep[q] && !again?.[q] ? v : 0)));
    }
    restart = undefined;
  };

  return {
    async beforeUpdate(step, t) {
      if (step <= fixedFrom) await updateImportance(t);
    },
    // The smoothed importance and uncertainty of every entry (before the first update: none).
    exportState() {
      const out = new Map<string, Float64Array>();
      for (const [key, e] of ema) { out.set(`ipt/${key}`, e.ipt); out.set(`unc/${key}`, e.unc); }
      return out;
    },
    importState(state) {
      ema.clear();
      if (state.size === 0) return;
      for (const key of all) {
        const n = adapter.params.get(key)!.data.length;
        const e = { ipt: new Float64Array(n), unc: new Float64Array(n) };
        restoreArray(state, `ipt/${key}`, e.ipt, 'adalora');
        restoreArray(state, `unc/${key}`, e.unc, 'adalora');
        ema.set(key, e);
      }
    },
    async afterUpdate(step, t) {
      const { budget, allocate: scheduled } = adaloraBudget(step, schedule, total, initial, target);
      // Allocation happens on schedule until T − t_f, and always at T − t_f (where b(t) reaches the target);
      // from then on that pattern is fixed and re-applied every step.
      const due = scheduled || step === fixedFrom;
      if (due && step <= fixedFrom) allocate(budget, step);
      if (c.rankPattern && (due || step === o.totalSteps)) await applyMask(t);
    },
  };
}
