/**
 * Distribution nudging (Kang et al., 2024, "Get more for less", GOT-D): the optimal-transport distance from
 * the candidate set to the target set, both as uniform distributions over their embeddings; the dual
 * potential of each candidate is the gradient of that distance with respect to the candidate's weight.
 * Candidates with the most negative calibrated gradient are the ones whose extra weight moves the candidate
 * distribution fastest towards the target: those are kept. Entropic OT (Sinkhorn) stands in for the exact
 * solver. See README.md.
 */
import { fmt, type ItemSignals, sqDist } from '../common/index.js';
import { checkKeep, type Selection } from '../common/selection.js';

export interface NudgeOptions {
  keep: number;
  /** Entropic regularisation as a fraction of the mean cost (default 0.05). */
  epsilon?: number;
  iterations?: number;
}

/**
 * Log-domain Sinkhorn between uniform weights on rows and columns of cost C [n, m]; returns the candidate
 * potentials f (length n), calibrated to f_i − mean(f), and the transport cost.
 */
export function sinkhornPotentials(C: readonly Float64Array[], eps: number, iterations: number): { f: Float64Array; cost: number } {
  const n = C.length, m = C[0]!.length;
  const f = new Float64Array(n), g = new Float64Array(m);
  const la = -Math.log(n), lb = -Math.log(m);
  const lse = (xs: Float64Array): number => { let mx = -Infinity; for (const x of xs) mx = Math.max(mx, x); let s = 0; for (const x of xs) s += Math.exp(x - mx); return mx + Math.log(s); };
  const row = new Float64Array(m), col = new Float64Array(n);
  for (let it = 0; it < iterations; it++) {
    for (let i = 0; i < n; i++) { for (let j = 0; j < m; j++) row[j] = (g[j]! - C[i]![j]!) / eps + lb; f[i] = -eps * lse(row); }
    for (let j = 0; j < m; j++) { for (let i = 0; i < n; i++) col[i] = (f[i]! - C[i]![j]!) / eps + la; g[j] = -eps * lse(col); }
  }
  let cost = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) cost += Math.exp((f[i]! + g[j]! - C[i]![j]!) / eps + la + lb) * C[i]![j]!;
  const mf = f.reduce((a, b) => a + b, 0) / n;
  return { f: f.map((x) => x - mf), cost };
}

export function selectNudge(signals: readonly ItemSignals[], target: readonly ItemSignals[], o: NudgeOptions): Selection {
  checkKeep(o.keep, signals.length);
  if (target.length === 0) throw new RangeError('nudge: the target set is empty');
  const C = signals.map((s) => Float64Array.from(target, (t) => Math.sqrt(sqDist(s.embedding, t.embedding))));
  let meanCost = 0;
  for (const r of C) for (const c of r) meanCost += c / (C.length * r.length);
  const eps = (o.epsilon ?? 0.05) * Math.max(meanCost, 1e-12);
  const { f, cost } = sinkhornPotentials(C, eps, o.iterations ?? 200);
  const order = signals.map((_, i) => i).sort((a, b) => f[a]! - f[b]! || a - b);
  const kept = order.slice(0, o.keep).sort((a, b) => a - b);
  const report = [
    `OT distance (Euclidean cost, entropic ε = ${fmt(eps, 6)}) from ${signals.length} candidates to ${target.length} target examples: ${fmt(cost)}`,
    ...order.slice(0, o.keep).map((i) => `#${i + 1} kept: calibrated OT gradient ${fmt(f[i]!)}`),
  ];
  return { method: 'nudge', kept, report, summary: { otDistance: cost, epsilon: eps, gradients: kept.map((i) => ({ index: i, gradient: f[i] })) } };
}
