/**
 * GaLore's update rule for one 2-D weight, on the host: the gradient G (m × n) is projected onto a rank-r
 * subspace found by the SVD of G every T steps, Adam's moments live in that r-dimensional space, and the
 * normalised update is projected back and scaled. The side follows the reference projector's 'std' type:
 * m ≥ n projects on the right (R = G Pᵀ with P = the first r rows of Vᵀ, r × n), m < n on the left
 * (R = Pᵀ G with P = the first r columns of U, m × r): the projector spans the smaller side, and the
 * moments are r × the larger side (m × r or r × n) instead of m × n.
 */
import type { TensorOptimizer, TensorOptimizerHyper } from '../types.js';
import { leadingRightVectors } from '../../linalg/svd.js';

export interface GaLoreSettings {
  /** r: rank of the projection (capped by min(m, n)). */
  rank: number;
  /** T: steps between two SVDs of the gradient. */
  interval: number;
  /** α: the back-projected update is multiplied by this. */
  scale: number;
}

export const GALORE_DEFAULTS: GaLoreSettings = { rank: 128, interval: 200, scale: 0.25 };

export type ProjectionSide = 'left' | 'right';

export class GaLoreAdam implements TensorOptimizer {
  readonly side: ProjectionSide;
  readonly rank: number;
  /** The projector used: right, r × n (rows of Vᵀ); left, m × r (columns of U). Row-major. */
  protected proj: Float32Array | undefined;
  /** Adam moments of the projected gradient: right, m × r; left, r × n. */
  readonly m: Float32Array;
  readonly v: Float32Array;
  /** SVDs taken so far. */
  svds = 0;
  /** Steps between SVDs (Q-GaLore lengthens it). */
  interval: number;
  /** This tensor's step at the last SVD. */
  private lastSvd = 0;

  constructor(readonly rows: number, readonly cols: number, readonly settings: GaLoreSettings) {
    if (!(Number.isInteger(rows) && Number.isInteger(cols) && rows >= 1 && cols >= 1)) throw new RangeError(`galore: a projected weight must be 2-D (got ${rows} × ${cols})`);
    checkSettings(settings);
    // The reference's 'std' rule: right when there are at least as many rows as columns.
    this.side = rows >= cols ? 'right' : 'left';
    this.rank = Math.min(settings.rank, rows, cols);
    this.interval = settings.interval;
    const low = this.side === 'right' ? rows * this.rank : this.rank * cols;
    this.m = new Float32Array(low);
    this.v = new Float32Array(low);
  }

  /** The projector as applied (Q-GaLore: dequantised from INT4), row-major; undefined before the first step. */
  projector(): Float32Array | undefined { return this.proj; }

  update(param: Float32Array, grad: Float32Array, h: TensorOptimizerHyper): void {
    const { rows, cols } = this;
    if (param.length !== rows * cols || grad.length !== rows * cols) throw new RangeError(`galore: a ${rows} × ${cols} weight was given ${param.length} values and ${grad.length} gradients`);
    const g = new Float64Array(grad.length);
    for (let i = 0; i < g.length; i++) g[i] = grad[i]! * h.gradScale;
    // Step 1 (and every `interval` steps after the last SVD): a new subspace from this gradient. The
    // moments are kept across a change, as the reference does.
    if (this.svds === 0 || h.step <= this.lastSvd || h.step - this.lastSvd >= this.interval) {
      this.newSubspace(g);
      this.lastSvd = h.step;
    }
    const p = this.projector()!;
    const low = this.project(g, p);
    const bc1 = 1 - h.beta1 ** h.step, bc2 = 1 - h.beta2 ** h.step;
    const dir = new Float64Array(low.length);
    for (let i = 0; i < low.length; i++) {
      const mi = h.beta1 * this.m[i]! + (1 - h.beta1) * low[i]!;
      const vi = h.beta2 * this.v[i]! + (1 - h.beta2) * low[i]! * low[i]!;
      this.m[i] = mi; this.v[i] = vi;
      dir[i] = (mi / bc1) / (Math.sqrt(vi / bc2) + h.eps);
    }
    const update = this.projectBack(dir, p);
    const s = this.settings.scale;
    for (let i = 0; i < update.length; i++) update[i] *= s;
    this.apply(param, update, h);
  }

  /** Write the step into the weight: decoupled weight decay as AdamW applies it, then −lr · update. */
  protected apply(param: Float32Array, update: Float64Array, h: TensorOptimizerHyper): void {
    const decay = 1 - h.lr * h.weightDecay;
    for (let i = 0; i < param.length; i++) param[i] = param[i]! * decay - h.lr * update[i]!;
  }

  /** The projector of the r leading singular vectors of the (clipped) gradient. */
  protected newSubspace(g: Float64Array): void {
    const { rows: m, cols: n, rank: r } = this;
    let p: Float64Array;
    if (this.side === 'right') {
      // The first r rows of Vᵀ: the leading right singular vectors, one per row.
      const v = leadingRightVectors(g, m, n, r);
      p = new Float64Array(r * n);
      for (let j = 0; j < n; j++) for (let c = 0; c < r; c++) p[c * n + j] = v[j * r + c]!;
    } else {
      // The first r columns of U: the leading right singular vectors of Gᵀ (n × m, tall), already m × r.
      const gt = new Float64Array(n * m);
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) gt[j * m + i] = g[i * n + j]!;
      p = leadingRightVectors(gt, n, m, r);
    }
    canonicalSigns(p, this.side === 'right' ? r : this.rows, this.side === 'right' ? this.cols : r, this.side === 'right');
    this.svds++;
    this.adopt(p);
  }

  /** Keep a new projector (float64, row-major); GaLore stores it as f32. */
  protected adopt(p: Float64Array): void {
    this.proj = Float32Array.from(p);
  }

  /** The first singular vector of a projector (row 0 on the right, column 0 on the left). */
  protected leadingVector(p: ArrayLike<number>): Float64Array {
    if (this.side === 'right') return Float64Array.from({ length: this.cols }, (_, j) => p[j]!);
    return Float64Array.from({ length: this.rows }, (_, i) => p[i * this.rank]!);
  }

  /** R = G Pᵀ (m × r) on the right, Pᵀ G (r × n) on the left. */
  project(g: ArrayLike<number>, p: ArrayLike<number> = this.projector()!): Float64Array {
    const { rows: m, cols: n, rank: r } = this;
    if (this.side === 'right') {
      const out = new Float64Array(m * r);
      for (let i = 0; i < m; i++) for (let c = 0; c < r; c++) {
        let s = 0;
        for (let j = 0; j < n; j++) s += g[i * n + j]! * p[c * n + j]!;
        out[i * r + c] = s;
      }
      return out;
    }
    const out = new Float64Array(r * n);
    for (let i = 0; i < m; i++) for (let c = 0; c < r; c++) {
      const pic = p[i * r + c]!;
      if (pic === 0) continue;
      for (let j = 0; j < n; j++) out[c * n + j] += pic * g[i * n + j]!;
    }
    return out;
  }

  /** N P (m × n) on the right, P N on the left. */
  projectBack(low: ArrayLike<number>, p: ArrayLike<number> = this.projector()!): Float64Array {
    const { rows: m, cols: n, rank: r } = this;
    const out = new Float64Array(m * n);
    if (this.side === 'right') {
      for (let i = 0; i < m; i++) for (let c = 0; c < r; c++) {
        const x = low[i * r + c]!;
        if (x === 0) continue;
        for (let j = 0; j < n; j++) out[i * n + j] += x * p[c * n + j]!;
      }
      return out;
    }
    for (let i = 0; i < m; i++) for (let c = 0; c < r; c++) {
      const pic = p[i * r + c]!;
      if (pic === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j] += pic * low[c * n + j]!;
    }
    return out;
  }

  /** The projector (f32) and the two moments (f32). */
  stateBytes(): number {
    return (this.proj?.byteLength ?? 0) + this.m.byteLength + this.v.byteLength;
  }
}

/**
 * Give each singular vector of a projector (a row when `rows`, else a column) the sign that makes its
 * largest-magnitude entry positive. An SVD fixes each vector only up to sign, and the one it returns can
 * flip with a rounding-level change of the gradient (a Jacobi rotation's direction turns on a sign); since
 * the moments carry over into a new subspace, a flipped vector would reverse the momentum along it. With
 * a fixed convention the projector depends continuously on the gradient.
 */
export function canonicalSigns(p: Float64Array, rows: number, cols: number, byRow: boolean): void {
  const count = byRow ? rows : cols, len = byRow ? cols : rows;
  const at = (c: number, e: number): number => (byRow ? c * cols + e : e * cols + c);
  for (let c = 0; c < count; c++) {
    let big = 0;
    for (let e = 0; e < len; e++) if (Math.abs(p[at(c, e)]!) > Math.abs(big)) big = p[at(c, e)]!;
    if (big < 0) for (let e = 0; e < len; e++) p[at(c, e)] = -p[at(c, e)]!;
  }
}

export function checkSettings(s: GaLoreSettings, method = 'galore'): void {
  if (!(Number.isInteger(s.rank) && s.rank >= 1)) throw new RangeError(`${method}: rank must be an integer ≥ 1 (got ${s.rank})`);
  if (!(Number.isInteger(s.interval) && s.interval >= 1)) throw new RangeError(`${method}: interval (T) must be an integer ≥ 1 (got ${s.interval})`);
  if (!(Number.isFinite(s.scale) && s.scale > 0)) throw new RangeError(`${method}: scale must be > 0 (got ${s.scale})`);
}
