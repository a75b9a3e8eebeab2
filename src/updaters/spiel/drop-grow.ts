// SpIEL's index update (Ansell et al., 2024, "Scaling Sparse Fine-Tuning to Large Language Models") as pure
// code on one tensor: drop the active entries whose delta |Δ| is smallest, grow the same number of inactive
// entries with the largest growth score (|mean accumulated gradient|, or the SM3 row × column product).
// `SparseAdam` here zeroes regrown entries' moments; the Updater (index.ts, `SpielAdam`) seeds them from the
// accumulated gradients, as the reference trainer does.
import type { TensorOptimizer, TensorOptimizerHyper } from '../types.js';

/** How many entries to swap at this update: rate·(1 − step/totalSteps)·active, the linear decay. */
export function reselectionCount(active: number, step: number, totalSteps: number, rate = 0.2): number {
  if (!(rate >= 0 && rate <= 1)) throw new Error(`reselection rate must be in [0, 1], got ${rate}`);
  return Math.floor(active * rate * Math.max(0, 1 - step / totalSteps));
}

/** Initial active indices: k distinct random flat indices of a tensor of `size` entries, sorted. */
export function randomIndices(size: number, k: number, rng: () => number): Int32Array {
  if (k > size) throw new Error(`cannot choose ${k} entries of a tensor of ${size}`);
  const chosen = new Set<number>();
  while (chosen.size < k) chosen.add(Math.floor(rng() * size));
  return Int32Array.from([...chosen].sort((a, b) => a - b));
}

/** SM3's growth score for a rows×cols gradient accumulation: row max of g² times column max of g². */
export function sm3Score(gradSq: Float32Array, rows: number, cols: number): Float32Array {
  const r = new Float32Array(rows), c = new Float32Array(cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) {
    const g = gradSq[i * cols + j];
    if (g > r[i]) r[i] = g;
    if (g > c[j]) c[j] = g;
  }
  const s = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) s[i * cols + j] = r[i] * c[j];
  return s;
}

export interface DropGrowResult {
  indices: Int32Array;
  values: Float32Array;
  /** For each new position, the old position it came from, or -1 for a regrown entry. */
  from: Int32Array;
}

/** Swap `n` entries: drop the n smallest |values| among active, grow the n largest `score` among inactive. */
export function dropGrow(indices: Int32Array, values: Float32Array, score: Float32Array, n: number): DropGrowResult {
  const active = new Set(indices);
  const byDelta = [...indices.keys()].sort((a, b) => Math.abs(values[a]) - Math.abs(values[b]));
  const dropped = new Set(byDelta.slice(0, n));
  const inactive: number[] = [];
  for (let k = 0; k < score.length; k++) if (!active.has(k)) inactive.push(k);
  inactive.sort((a, b) => Math.abs(score[b]) - Math.abs(score[a]));
  const grown = inactive.slice(0, n);
  const rows: [number, number, number][] = [];
  for (let p = 0; p < indices.length; p++) if (!dropped.has(p)) rows.push([indices[p], values[p], p]);
  for (const k of grown) rows.push([k, 0, -1]);
  rows.sort((a, b) => a[0] - b[0]);
  return { indices: Int32Array.from(rows, (r) => r[0]), values: Float32Array.from(rows, (r) => r[1]), from: Int32Array.from(rows, (r) => r[2]) };
}

/** Adam on the active entries only; the tensor's other entries never move. */
export class SparseAdam implements TensorOptimizer {
  m: Float32Array;
  v: Float32Array;
  constructor(public indices: Int32Array) {
    this.m = new Float32Array(indices.length);
    this.v = new Float32Array(indices.length);
  }
  /** Switch to new indices after dropGrow, carrying moments of retained entries and zeroing regrown ones. */
  reindex(r: DropGrowResult): void {
    const m = new Float32Array(r.indices.length), v = new Float32Array(r.indices.length);
    for (let p = 0; p < r.from.length; p++) if (r.from[p] >= 0) { m[p] = this.m[r.from[p]]; v[p] = this.v[r.from[p]]; }
    this.indices = r.indices; this.m = m; this.v = v;
  }
  update(param: Float32Array, grad: Float32Array, h: TensorOptimizerHyper): void {
    const bc1 = 1 - h.beta1 ** h.step, bc2 = 1 - h.beta2 ** h.step;
    for (let p = 0; p < this.indices.length; p++) {
      const k = this.indices[p];
      const g = grad[k] * h.gradScale;
      this.m[p] = h.beta1 * this.m[p] + (1 - h.beta1) * g;
      this.v[p] = h.beta2 * this.v[p] + (1 - h.beta2) * g * g;
      param[k] -= h.lr * ((this.m[p] / bc1) / (Math.sqrt(this.v[p] / bc2) + h.eps) + h.weightDecay * param[k]);
    }
  }
  stateBytes(): number { return this.indices.byteLength + this.m.byteLength + this.v.byteLength; }
}
