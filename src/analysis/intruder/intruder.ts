/**
 * Intruder dimensions (Shuttleworth et al., "LoRA vs Full Fine-tuning: An Illusion of Equivalence", 2024) and
 * the effective rank of a weight update (Roy & Vetterli, 2007), for one weight matrix.
 *
 * Let W₀ = U₀ Σ₀ V₀ᵀ be the pre-trained weight and W = U Σ Vᵀ the fine-tuned one (thin SVDs). The j-th left
 * singular vector y_j of W (j < k, largest singular values first) is an *intruder dimension* when
 *
 *     max_i |cos(y_j, x_i)| < ε        over every left singular vector x_i of W₀,
 *
 * i.e. fine-tuning created a high-ranking direction that no pre-trained direction resembles. The paper's code
 * uses k = 10 and ε = 0.5. The singular vectors are unit length, so the cosine is a dot product.
 *
 * The update ΔW = W − W₀ is described by its singular values σ: the effective rank exp(−Σ pᵢ ln pᵢ) with
 * pᵢ = σᵢ / Σσ, and the numerical rank. A merged adapter is stored in float32, so ΔW carries rounding noise of
 * W's size (about 2⁻²⁴ · |W| per entry) in every direction; singular values at or below
 * max(rows, cols) · 2⁻²³ · σ_max(W) are that noise, and both ranks count only the values above it (float64
 * inputs have far smaller noise, which the same threshold also removes).
 */
import { svd } from '../../linalg/svd.js';

export interface IntruderOptions {
  /** Top singular vectors of the fine-tuned weight examined (capped by the matrix's smaller dimension). */
  k?: number;
  /** A vector whose largest |cosine| to every pre-trained singular vector is below this is an intruder. */
  epsilon?: number;
}

/** The paper's code's values. */
export const INTRUDER_DEFAULTS = Object.freeze({ k: 10, epsilon: 0.5 });

export interface IntruderResult {
  /** The k actually examined (the requested k capped by the smaller dimension). */
  k: number;
  /** Indices j < k of the intruder vectors (0 = the largest singular value), ascending. */
  intruders: number[];
  /** For each j < k, max_i |cos(y_j, x_i)|: enough to recount the intruders for any ε. */
  maxCosine: Float64Array;
  /** The fine-tuned weight's top-k singular values. */
  tunedSingularValues: Float64Array;
}

export interface ModuleAnalysis extends IntruderResult {
  rows: number;
  cols: number;
  /** Singular values of ΔW above the float32 noise threshold, descending. */
  deltaSingularValues: Float64Array;
  /** exp(entropy) of ΔW's normalised singular values (those above the threshold); 0 when ΔW = 0. */
  deltaEffectiveRank: number;
  /** The number of ΔW's singular values above the threshold. */
  deltaRank: number;
  /** ‖ΔW‖_F. */
  deltaNorm: number;
  /** ‖ΔW‖_F / ‖W₀‖_F. */
  relativeChange: number;
}

function checkMatrix(a: ArrayLike<number>, rows: number, cols: number, what: string): void {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1) throw new Error(`intruder dimensions: ${rows}×${cols} is not a matrix shape`);
  if (a.length !== rows * cols) throw new Error(`intruder dimensions: the ${what} weight's ${a.length} values do not make a ${rows}×${cols} matrix`);
}

/** The options with defaults filled in; out-of-range values are refused by name. */
export function resolveOptions(o: IntruderOptions): { k: number; epsilon: number } {
  const k = o.k ?? INTRUDER_DEFAULTS.k, epsilon = o.epsilon ?? INTRUDER_DEFAULTS.epsilon;
  if (!Number.isInteger(k) || k < 1) throw new Error(`intruder dimensions: k must be an integer ≥ 1 (got ${k})`);
  if (!(epsilon > 0 && epsilon <= 1)) throw new Error(`intruder dimensions: epsilon must be in (0, 1] (got ${epsilon})`);
  return { k, epsilon };
}

/** Intruders among the top-k left singular vectors of `tuned` against those of `base` (both rows × cols, row-major). */
export function intruderDimensions(base: ArrayLike<number>, tuned: ArrayLike<number>, rows: number, cols: number, o: IntruderOptions = {}): IntruderResult {
  checkMatrix(base, rows, cols, 'pre-trained');
  checkMatrix(tuned, rows, cols, 'fine-tuned');
  const { k: wantK, epsilon } = resolveOptions(o);
  return compare(svd(base, rows, cols), svd(tuned, rows, cols), wantK, epsilon);
}

function compare(b: ReturnType<typeof svd>, t: ReturnType<typeof svd>, wantK: number, epsilon: number): IntruderResult {
  const m = t.m, k = Math.min(wantK, t.k);
  const maxCosine = new Float64Array(k);
  for (let j = 0; j < k; j++) {
    let best = 0;
    for (let i = 0; i < b.k; i++) {
      let dot = 0;
      for (let r = 0; r < m; r++) dot += t.u[r * t.k + j]! * b.u[r * b.k + i]!;
      best = Math.max(best, Math.abs(dot));
    }
    maxCosine[j] = best;
  }
  const intruders: number[] = [];
  maxCosine.forEach((c, j) => { if (c < epsilon) intruders.push(j); });
  return { k, intruders, maxCosine, tunedSingularValues: t.s.slice(0, k) };
}

/** Roy & Vetterli's effective rank: exp(−Σ pᵢ ln pᵢ), pᵢ = σᵢ / Σσ (zeros contribute nothing); 0 for no mass. */
export function effectiveRank(sigma: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < sigma.length; i++) sum += sigma[i]!;
  if (!(sum > 0)) return 0;
  let h = 0;
  for (let i = 0; i < sigma.length; i++) {
    const p = sigma[i]! / sum;
    if (p > 0) h -= p * Math.log(p);
  }
  return Math.exp(h);
}

/** The number of singular values above `tol` (absolute). */
export function numericalRank(sigma: ArrayLike<number>, tol: number): number {
  let n = 0;
  for (let i = 0; i < sigma.length; i++) if (sigma[i]! > tol) n++;
  return n;
}

/** Intruder dimensions of one fine-tuned weight and the spectrum of its update ΔW = tuned − base. */
export function analyzeWeight(base: ArrayLike<number>, tuned: ArrayLike<number>, rows: number, cols: number, o: IntruderOptions = {}): ModuleAnalysis {
  checkMatrix(base, rows, cols, 'pre-trained');
  checkMatrix(tuned, rows, cols, 'fine-tuned');
  const { k, epsilon } = resolveOptions(o);
  const delta = new Float64Array(rows * cols);
  let deltaSq = 0, baseSq = 0;
  for (let i = 0; i < delta.length; i++) {
    const d = tuned[i]! - base[i]!;
    delta[i] = d;
    deltaSq += d * d;
    baseSq += base[i]! * base[i]!;
  }
  const t = svd(tuned, rows, cols);
  const result = compare(svd(base, rows, cols), t, k, epsilon);
  const noise = Math.max(rows, cols) * 2 ** -23 * (t.s[0] ?? 0);
  const deltaNorm = Math.sqrt(deltaSq);
  const kept = deltaNorm === 0 ? new Float64Array(0) : svd(delta, rows, cols).s.filter((s) => s > noise);
  return {
    ...result,
    rows,
    cols,
    deltaSingularValues: kept,
    deltaEffectiveRank: effectiveRank(kept),
    deltaRank: kept.length,
    deltaNorm,
    relativeChange: baseSq > 0 ? deltaNorm / Math.sqrt(baseSq) : 0,
  };
}
