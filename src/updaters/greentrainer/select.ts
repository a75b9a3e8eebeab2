/**
 * GreenTrainer's tensor selection: with tensors numbered from the output (0) to the input, choose the set m
 * that maximises the importance it brings, Σ_{i ∈ m} I_i, within a budget of backward operations:
 *
 *     cost(m) = Σ_{j ≤ k} dy_j + Σ_{i ∈ m} dw_i ≤ budget,      k = max m (the deepest tensor that trains)
 *
 * The deepest tensor fixes how far back the backward pass must carry activation gradients (dy up to k);
 * every other tensor above it only adds its weight gradient. So for each candidate deepest tensor k the
 * rest is a 0/1 knapsack over the tensors above k with capacity budget − Σ_{j ≤ k} dy_j − dw_k. The
 * knapsack over tensors 0…k−1 is grown one tensor at a time, so every k is answered in one pass:
 * O(N · units) time and N · units bits to read the chosen set back.
 */

export interface SelectionProblem {
  /** Weight-gradient cost of each tensor, output first. */
  dw: readonly number[];
  /** Activation-gradient cost to reach each tensor from the one above it. */
  dy: readonly number[];
  /** Importance of each tensor (any sign). */
  importance: readonly number[];
  /** Backward operations allowed. */
  budget: number;
}

export interface Selection {
  /** Chosen tensor indices, ascending (output first); never empty. */
  selected: number[];
  /** Σ of their importances. */
  importance: number;
  /** Their backward cost, in the problem's units (not rounded). */
  cost: number;
}

/** Cost of a set (indices), as the formula above; the set must not be empty. */
export function costOf(p: Pick<SelectionProblem, 'dw' | 'dy'>, selected: readonly number[]): number {
  const deepest = Math.max(...selected);
  let c = 0;
  for (let j = 0; j <= deepest; j++) c += p.dy[j]!;
  for (const i of selected) c += p.dw[i]!;
  return c;
}

function check(p: SelectionProblem): number {
  const n = p.dw.length;
  if (p.dy.length !== n || p.importance.length !== n) throw new RangeError(`greentrainer: dw, dy and importance must have one entry per tensor (got ${n}, ${p.dy.length}, ${p.importance.length})`);
  for (const [what, xs] of [['dw', p.dw], ['dy', p.dy]] as const) {
    xs.forEach((x, i) => { if (!(Number.isFinite(x) && x >= 0)) throw new RangeError(`greentrainer: ${what}[${i}] must be a finite cost ≥ 0 (got ${x})`); });
  }
  p.importance.forEach((x, i) => { if (!Number.isFinite(x)) throw new RangeError(`greentrainer: importance[${i}] is not finite (${x})`); });
  if (!(Number.isFinite(p.budget) && p.budget >= 0)) throw new RangeError(`greentrainer: the budget must be a finite number ≥ 0 (got ${p.budget})`);
  return n;
}

/**
 * The best selection by dynamic programming, or undefined when not even one tensor fits the budget.
 * Costs are counted in whole units: exactly when every cost and the budget are integers and the budget is
 * at most `units`; otherwise in units of budget/`units`, each cost rounded up, so the selection returned
 * always fits the budget (it may miss a set that fits only by less than the rounding).
 */
export function selectTensors(p: SelectionProblem, o: { units?: number } = {}): Selection | undefined {
  const n = check(p);
  const units = o.units ?? 4096;
  if (!(Number.isInteger(units) && units >= 1)) throw new RangeError(`greentrainer: units must be a positive integer (got ${units})`);
  const integral = p.budget === 0 || ([...p.dw, ...p.dy, p.budget].every(Number.isInteger) && p.budget <= units);
  const unit = integral ? 1 : p.budget / units;
  const cap = integral ? p.budget : units;
  // Rounded up (a hair of floating-point slack in the scaled case, so an exact multiple stays put).
  const q = (x: number): number => (integral ? x : Math.ceil(x / unit - 1e-9));
  const dw = p.dw.map(q), dy = p.dy.map(q);
  // best[b]: most importance of a subset of the tensors seen so far with Σ dw ≤ b; took[i·(cap+1) + b]: whether tensor i is in it.
  const best = new Float64Array(cap + 1);
  const took = new Uint8Array(n * (cap + 1));
  let reach = 0, top: { k: number; rest: number; value: number } | undefined;
  for (let k = 0; k < n; k++) {
    reach += dy[k]!;
    // k as the deepest tensor: what is left for the tensors above it.
    const rest = cap - reach - dw[k]!;
    if (rest >= 0) {
      const value = p.importance[k]! + best[rest]!;
      if (!top || value > top.value) top = { k, rest, value };
    }
    // Then k joins the knapsack for the tensors below it (only if it can add importance).
    const w = dw[k]!, v = p.importance[k]!;
    if (v > 0 && w <= cap) {
      for (let b = cap; b >= w; b--) {
        const withK = best[b - w]! + v;
        if (withK > best[b]!) { best[b] = withK; took[k * (cap + 1) + b] = 1; }
      }
    }
  }
  if (!top) return undefined;
  const selected = [top.k];
  for (let i = top.k - 1, b = top.rest; i >= 0; i--) {
    if (took[i * (cap + 1) + b]) { selected.push(i); b -= dw[i]!; }
  }
  selected.sort((a, b) => a - b);
  return { selected, importance: selected.reduce((s, i) => s + p.importance[i]!, 0), cost: costOf(p, selected) };
}

/** The best selection by trying every non-empty subset (for tests; n ≤ 20), or undefined when none fits. */
export function bruteForceSelect(p: SelectionProblem): Selection | undefined {
  const n = check(p);
  if (n > 20) throw new RangeError(`bruteForceSelect: ${n} tensors is too many to enumerate (at most 20)`);
  let top: Selection | undefined;
  for (let mask = 1; mask < 2 ** n; mask++) {
    const selected: number[] = [];
    for (let i = 0; i < n; i++) if (mask & (1 << i)) selected.push(i);
    const cost = costOf(p, selected);
    if (cost > p.budget) continue;
    const importance = selected.reduce((s, i) => s + p.importance[i]!, 0);
    if (!top || importance > top.importance) top = { selected, importance, cost };
  }
  return top;
}
