/**
 * Two-objective Pareto dominance over (held-out loss, trainable parameters), both minimised: the front, the
 * non-dominated sorting that successive halving ranks by, and the rule that picks one point of the front.
 */

export interface Objectives {
  /** Held-out next-token cross-entropy (lower is better). */
  loss: number;
  /** Trainable parameters of the adapter (fewer is better). */
  params: number;
}

/** a dominates b: no worse in both objectives and better in at least one. */
export function dominates(a: Objectives, b: Objectives): boolean {
  return a.loss <= b.loss && a.params <= b.params && (a.loss < b.loss || a.params < b.params);
}

/** Indices of the points no other point dominates (ties in both objectives all stay), in input order. */
export function paretoFront(points: readonly Objectives[]): number[] {
  return points.map((_, i) => i).filter((i) => !points.some((q, j) => j !== i && dominates(q, points[i]!)));
}

/**
 * Non-dominated sorting: 0 for the front, 1 for the front of what remains, and so on. O(n²) per layer; the
 * search never holds more than a few hundred candidates.
 */
export function paretoRanks(points: readonly Objectives[]): number[] {
  const rank = new Array<number>(points.length).fill(-1);
  let left = points.map((_, i) => i), layer = 0;
  while (left.length) {
    const front = left.filter((i) => !left.some((j) => j !== i && dominates(points[j]!, points[i]!)));
    for (const i of front) rank[i] = layer;
    left = left.filter((i) => rank[i] < 0);
    layer++;
  }
  return rank;
}

/**
 * Order for keeping candidates: Pareto layer first, then held-out loss, then fewer parameters, then the
 * index (so equal points keep a fixed order and a run is reproducible).
 */
export function multiObjectiveOrder(points: readonly Objectives[]): number[] {
  const rank = paretoRanks(points);
  return points.map((_, i) => i).sort((a, b) => rank[a]! - rank[b]! || points[a]!.loss - points[b]!.loss || points[a]!.params - points[b]!.params || a - b);
}

/**
 * The chosen point of a front: the one with the fewest trainable parameters whose held-out loss is within
 * `tolerance` (relative, e.g. 0.01 for 1%) of the front's best loss. With tolerance 0 it is the
 * lowest-loss point (the smaller one among equal losses).
 */
export function chooseFromFront(points: readonly Objectives[], front: readonly number[], tolerance: number): number {
  if (!front.length) throw new RangeError('chooseFromFront: the front is empty');
  if (!(tolerance >= 0)) throw new RangeError(`chooseFromFront: tolerance must be ≥ 0 (got ${tolerance})`);
  const best = Math.min(...front.map((i) => points[i]!.loss));
  const within = front.filter((i) => points[i]!.loss <= best + tolerance * Math.abs(best));
  return within.sort((a, b) => points[a]!.params - points[b]!.params || points[a]!.loss - points[b]!.loss || a - b)[0]!;
}
