/**
 * Singular value decomposition on the host, in float64, by one-sided Jacobi (Hestenes): plane rotations
 * applied to the columns of A until every pair is orthogonal; the rotations accumulate into V, the column
 * norms are the singular values and the normalised columns are U. Chosen because it is short, needs no
 * bidiagonalisation, and is accurate to the last bits for the small-to-medium matrices GaLore decomposes
 * every T steps. Its cost is O(sweeps · n² · m) for an m × n matrix (n ≤ m; about 6–10 sweeps), so it is
 * run on the side with fewer columns.
 */

export interface Svd {
  /** Rows of A. */
  m: number;
  /** Columns of A. */
  n: number;
  /** k = min(m, n). */
  k: number;
  /** Left singular vectors, row-major [m, k]: orthonormal columns. */
  u: Float64Array;
  /** Singular values, descending, length k. */
  s: Float64Array;
  /** Right singular vectors, row-major [n, k]: orthonormal columns (A = U diag(s) Vᵀ). */
  v: Float64Array;
}

const MAX_SWEEPS = 80;

/** A = U diag(s) Vᵀ for a row-major m × n matrix (thin: k = min(m, n) singular triplets). */
export function svd(a: ArrayLike<number>, m: number, n: number): Svd {
  if (!(Number.isInteger(m) && Number.isInteger(n) && m >= 1 && n >= 1)) throw new RangeError(`svd: bad shape ${m} × ${n}`);
  if (a.length !== m * n) throw new RangeError(`svd: ${a.length} values for a ${m} × ${n} matrix`);
  if (m >= n) return tallSvd(a, m, n, false);
  // A = (Aᵀ)ᵀ: decompose the tall transpose and swap the sides.
  const r = tallSvd(a, n, m, true);
  return { m, n, k: r.k, u: r.v, s: r.s, v: r.u };
}

/** One-sided Jacobi on a tall matrix (rows ≥ cols); `transposed` reads `a` as the transpose of a cols × rows matrix. */
function tallSvd(a: ArrayLike<number>, rows: number, cols: number, transposed: boolean): Svd {
  // Columns stored contiguously: w[j*rows + i] = A[i, j]; V starts as the identity, its columns contiguous too.
  const w = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) w[j * rows + i] = transposed ? a[j * rows + i]! : a[i * cols + j]!;
  const v = new Float64Array(cols * cols);
  for (let j = 0; j < cols; j++) v[j * cols + j] = 1;
  const tol = 1e-15;
  for (let sweep = 0; sweep < MAX_SWEEPS; sweep++) {
    let rotated = false;
    for (let p = 0; p < cols - 1; p++) {
      for (let q = p + 1; q < cols; q++) {
        let alpha = 0, beta = 0, gamma = 0;
        const op = p * rows, oq = q * rows;
        for (let i = 0; i < rows; i++) {
          const x = w[op + i]!, y = w[oq + i]!;
          alpha += x * x; beta += y * y; gamma += x * y;
        }
        if (gamma === 0 || Math.abs(gamma) <= tol * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        // The rotation that zeroes the off-diagonal entry of the 2 × 2 Gram matrix [[α, γ], [γ, β]].
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t), s = c * t;
        for (let i = 0; i < rows; i++) {
          const x = w[op + i]!, y = w[oq + i]!;
          w[op + i] = c * x - s * y; w[oq + i] = s * x + c * y;
        }
        const vp = p * cols, vq = q * cols;
        for (let i = 0; i < cols; i++) {
          const x = v[vp + i]!, y = v[vq + i]!;
          v[vp + i] = c * x - s * y; v[vq + i] = s * x + c * y;
        }
      }
    }
    if (!rotated) break;
  }
  const norms = Array.from({ length: cols }, (_, j) => {
    let s = 0;
    for (let i = 0; i < rows; i++) s += w[j * rows + i]! ** 2;
    return Math.sqrt(s);
  });
  const order = norms.map((_, j) => j).sort((x, y) => norms[y]! - norms[x]!);
  const k = cols;
  const u = new Float64Array(rows * k), vOut = new Float64Array(cols * k), sv = new Float64Array(k);
  const top = norms[order[0]!]!;
  const zero: number[] = [];
  order.forEach((j, c) => {
    const sigma = norms[j]!;
    sv[c] = sigma;
    for (let i = 0; i < cols; i++) vOut[i * k + c] = v[j * cols + i]!;
    // A zero (or round-off) singular value leaves its column of U undetermined: completed below.
    if (sigma === 0 || sigma <= top * 1e-13) { zero.push(c); return; }
    for (let i = 0; i < rows; i++) u[i * k + c] = w[j * rows + i]! / sigma;
  });
  for (const c of zero) completeColumn(u, rows, k, c);
  return { m: rows, n: cols, k, u, s: sv, v: vOut };
}

/** Fill column c of a row-major [rows, k] matrix with a unit vector orthogonal to its other filled columns. */
function completeColumn(u: Float64Array, rows: number, k: number, c: number): void {
  // The standard basis vector with the largest part outside the span of the other columns (at least
  // 1/√rows of it, since fewer than `rows` columns are filled), orthogonalised twice by Gram–Schmidt.
  let best: Float64Array | undefined, bestNorm = -1;
  for (let e = 0; e < rows; e++) {
    const col = new Float64Array(rows);
    col[e] = 1;
    for (let pass = 0; pass < 2; pass++) {
      for (let j = 0; j < k; j++) {
        if (j === c) continue;
        let dot = 0;
        for (let i = 0; i < rows; i++) dot += u[i * k + j]! * col[i]!;
        for (let i = 0; i < rows; i++) col[i] -= dot * u[i * k + j]!;
      }
    }
    let norm = 0;
    for (let i = 0; i < rows; i++) norm += col[i]! ** 2;
    norm = Math.sqrt(norm);
    if (norm > bestNorm) { best = col; bestNorm = norm; }
    if (norm > 0.7) break;
  }
  for (let i = 0; i < rows; i++) u[i * k + c] = best![i]! / bestNorm;
}
