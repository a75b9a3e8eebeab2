/**
 * TriAdaptLoRA's rank growth (the authors' RankAllocator): every `increInterval` steps after `initWarmup`,
 * while the total rank is below the budget b = referenceRank × modules,
 *   importance   s_k = ‖C_k‖_F / n_k − (the same at the previous check),  n_k = C_k's growth blocks
 *                (the change of the normalised Frobenius norm of the transformation matrix),
 *   count        K(t) = ⌊(b − Σr)·p⌋ (linear) or ⌊(b − Σr)^p⌋ (exponential), p = (t − t_w)/(T − t_w), K ≥ 1,
 *   threshold    the K-th largest importance; the K modules at or above it grow by increRankNum
 *                (never past maxRank or the budget).
 * The code grows every module at or above the threshold, so ties can let more than K grow; here exactly the
 * K most important grow (ties by module order), so a step never grows more modules than the schedule allows.
 */
import { type AdapterState, restoreArray, type TrainingController } from '../types.js';
import type { TriAdaptConfig } from './config.js';
import { activeRank, triKeys, triMasks, triScaling } from './layer.js';

/** How many modules may grow at 1-based step t with `remaining` rank left in the budget. */
export function growthCount(step: number, c: Pick<TriAdaptConfig, 'initWarmup' | 'rankGrowth'>, total: number, remaining: number): number {
  const p = (step - c.initWarmup) / (total - c.initWarmup);
  const k = c.rankGrowth === 'linear' ? Math.floor(remaining * p) : Math.floor(Math.exp(p * Math.log(remaining)));
  return Math.max(1, k);
}

export function triAdaptController(adapter: AdapterState<TriAdaptConfig>, o: { totalSteps: number }): TrainingController {
  const c = adapter.config;
  // A loaded adapter keeps the ranks it was saved with.
  if (c.rankPattern && adapter.modules.every((m) => adapter.params.get(triKeys(m.name).maskRank)!.data.length === c.rankPattern![m.name])) return {};
  const total = c.totalStep ?? o.totalSteps;
  if (c.initWarmup >= total) throw new Error(`triadaptlora: initWarmup (${c.initWarmup}) leaves no growth phase in ${total} steps`);
  c.totalStep = total;
  const mods = adapter.modules.map((m) => ({ m, k: triKeys(m.name), R: adapter.params.get(triKeys(m.name).maskRank)!.data.length, r: activeRank(adapter.params, m.name), blocks: 1, prev: 0 }));
  const budget = c.referenceRank * mods.length;
  const pattern = () => { c.rankPattern = Object.fromEntries(mods.map((x) => [x.m.name, x.r])); };
  pattern();
  return {
    // Ranks live in the mask parameters; the growth blocks and the last norms are the controller's own.
    exportState() {
      return new Map([['blocks', Float64Array.from(mods, (x) => x.blocks)], ['prev', Float64Array.from(mods, (x) => x.prev)]]);
    },
    importState(state) {
      const blocks = new Float64Array(mods.length), prev = new Float64Array(mods.length);
      restoreArray(state, 'blocks', blocks, 'triadaptlora');
      restoreArray(state, 'prev', prev, 'triadaptlora');
      mods.forEach((x, i) => { x.blocks = blocks[i]!; x.prev = prev[i]!; });
    },
    async afterUpdate(step, t) {
      const used = mods.reduce((a, x) => a + x.r, 0);
      if (used >= budget || step <= c.initWarmup || step % c.increInterval !== 0) return;
      const values = await t.values(mods.flatMap((x) => [x.k.lower, x.k.upper]));
      const scores = mods.map((x) => {
        const L = values.get(x.k.lower)!, U = values.get(x.k.upper)!;
        let s2 = 0;
        for (let i = 0; i < x.r; i++) for (let j = 0; j < x.r; j++) s2 += (j <= i ? L : U)[i * x.R + j]! ** 2;
        const norm = Math.sqrt(s2) / x.blocks, score = norm - x.prev;
        x.prev = norm;
        return score;
      });
      const K = Math.min(mods.length, growthCount(step, c, total, budget - used));
      const order = mods.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]! || a - b).slice(0, K);
      let left = budget - used;
      for (const i of order) {
        const x = mods[i]!, add = Math.min(c.increRankNum, x.R - x.r, left);
        if (add <= 0) continue;
        x.r += add; x.blocks++; left -= add;
        const masks = triMasks(x.r, x.R, triScaling(c, x.r));
        t.write(x.k.maskLower, masks.lower);
        t.write(x.k.maskUpper, masks.upper);
        t.write(x.k.maskRank, masks.rank);
        adapter.params.get(x.k.maskLower)!.data.set(masks.lower);
        adapter.params.get(x.k.maskUpper)!.data.set(masks.upper);
        adapter.params.get(x.k.maskRank)!.data.set(masks.rank);
      }
      pattern();
    },
  };
}
