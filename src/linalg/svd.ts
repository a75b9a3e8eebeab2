/**
 * Singular value decomposition on the host, in float64, by one-sided Jacobi (Hestenes): plane rotations
 * applied to the columns of A until every pair is orthogonal; the rotations accumulate into V, the column
 * norms are the singular values and the normalised columns are U. Chosen because it is short, needs no
 * bidiagonalisation, and is accurate to the last bits for the layer-sized matrices it serves: data- and
 * weight-driven initialisations (PiSSA, LaMDA++ spectra, EVA, CorDA), intruder analysis, and GaLore's
 * projections every T steps. Its cost is O(sweeps · n² · m) for an m × n matrix (n ≤ m; about 6–10 sweeps), so it is
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
  /** Vᵀ, row-major [k, n]: the right singular vectors as rows. */
  vt: Float64Array;
}

const MAX_SWEEPS = 80;

/** A = U diag(s) Vᵀ for a row-major m × n matrix (thin: k = min(m, n) singular triplets). */
export function svd(a: ArrayLike<number>, m: number, n: number): Svd {
  if (!(Number.isInteger(m) && Number.isInteger(n) && m >= 1 && n >= 1)) throw new RangeError(`svd: bad shape ${m} × ${n}`);
  if (a.length !== m * n) throw new RangeError(`svd: ${a.length} values for a ${m} × ${n} matrix`);
  if (m >= n) return withVt(tallSvd(a, m, n, false));
  // A = (Aᵀ)ᵀ: decompose the tall transpose and swap the sides.
  const r = tallSvd(a, n, m, true);
  return withVt({ m, n, k: r.k, u: r.v, s: r.s, v: r.u });
}

function withVt(d: Omit<Svd, 'vt'>): Svd {
  const vt = new Float64Array(d.k * d.n);
  for (let j = 0; j < d.n; j++) for (let c = 0; c < d.k; c++) vt[c * d.n + j] = d.v[j * d.k + c]!;
  return { ...d, vt };
}

/** One-sided Jacobi on a tall matrix (rows ≥ cols); `transposed` reads `a` as the transpose of a cols × rows matrix. */
function tallSvd(a: ArrayLike<number>, rows: number, cols: number, transposed: boolean): Omit<Svd, 'vt'> {
  // Columns stored contiguously: w[j*rows + i] = A[i, j]; V starts as the identity, its columns contiguous too.
  const w = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) w[j * rows + i] = transposed ? a[j * rows + i]! : a[i * cols + j]!;
  const v = new Float64Array(cols * cols);
  for (let j = 0; j < cols; j++) v[j * cols + j] = 1;
  // Two columns count as orthogonal at |γ| ≤ rows · ε · √(αβ) (LAPACK's one-sided Jacobi criterion).
  const tol = rows * 2.22e-16;
  // A column below 1e-12 of ‖A‖_F is round-off: it is not rotated further (its U column is completed
  // below). Without this, pairs of round-off columns of a rank-deficient matrix never settle.
  let frob2 = 0;
  for (let i = 0; i < w.length; i++) frob2 += w[i]! * w[i]!;
  const negligible = 1e-24 * frob2;
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
        if (gamma === 0 || alpha <= negligible || beta <= negligible || Math.abs(gamma) <= tol * Math.sqrt(alpha * beta)) continue;
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
  const zero: number[] = [];
  order.forEach((j, c) => {
    const sigma = norms[j]!;
    sv[c] = sigma;
    for (let i = 0; i < cols; i++) vOut[i * k + c] = v[j * cols + i]!;
    // A zero (or round-off) singular value leaves its column of U undetermined: completed below.
    if (sigma === 0 || sigma * sigma <= negligible) { zero.push(c); return; }
    for (let i = 0; i < rows; i++) u[i * k + c] = w[j * rows + i]! / sigma;
  });
  completeColumns(u, rows, k, zero);
  return { m: rows, n: cols, k, u, s: sv, v: vOut };
}

/**
 * Fill the listed (zero) columns of a row-major [rows, k] matrix with unit vectors orthogonal to every other
 * column. Candidates are standard basis vectors, orthogonalised twice by Gram–Schmidt; with f columns filled
 * their parts outside the span have squared norms summing to rows − f, so some candidate has at least the
 * mean (rows − f)/rows, and the first with half of it is taken. The scan resumes where the last one stopped
 * (the basis vectors already used lie in the span).
 */
function completeColumns(u: Float64Array, rows: number, k: number, cols: readonly number[]): void {
  let filled = k - cols.length, e = 0;
  for (const c of cols) {
    const enough = (0.5 * (rows - filled)) / rows;
    let best: Float64Array | undefined, bestNorm = -1;
    for (let tried = 0; tried < rows; tried++, e = (e + 1) % rows) {
      const col = new Float64Array(rows);
      col[e] = 1;
      for (let pass = 0; pass < 2; pass++) {
        for (let j = 0; j < k; j++) {
          if (j === c) continue;
          let dot = 0;
          for (let i = 0; i < rows; i++) dot += u[i * k + j]! * col[i]!;
          if (dot !== 0) for (let i = 0; i < rows; i++) col[i] -= dot * u[i * k + j]!;
        }
      }
      let norm2 = 0;
      for (let i = 0; i < rows; i++) norm2 += col[i]! ** 2;
      if (norm2 > bestNorm) { best = col; bestNorm = norm2; }
      if (norm2 >= enough) break;
    }
    const norm = Math.sqrt(bestNorm);
    for (let i = 0; i < rows; i++) u[i * k + c] = best![i]! / norm;
    filled++;
  }
}

/** Extra dimensions of the randomised range finder beyond r, and its power iterations. */
const OVERSAMPLE = 10, POWER_ITERATIONS = 4;
/** Below this smaller side (or when r + OVERSAMPLE exceeds half of it) the exact Jacobi SVD is used. */
export const RANDOMIZED_FROM = 256;

/**
 * The r leading right singular vectors of a row-major tall matrix A (rows ≥ cols), as the columns of a
 * row-major [cols, r] matrix, orthonormal and ordered by singular value. Small or nearly square problems
 * take the exact SVD; large ones a randomised range finder with power iterations (Halko, Martinsson and
 * Tropp 2011, algorithm 4.4): Q spans A Ω (Ω Gaussian, cols × (r + 10)), refined by alternating
 * orthonormalisation of Aᵀ Q and A Z four times; the SVD of the small B = Qᵀ A gives the vectors. Its
 * error falls as (σ_{r+11}/σ_r)^9; its cost is 10 · rows · cols · (r + 10) instead of Jacobi's
 * sweeps · rows · cols². Ω comes from a fixed seed, so the result depends on A only.
 */
export function leadingRightVectors(a: ArrayLike<number>, rows: number, cols: number, r: number): Float64Array {
  if (rows < cols) throw new RangeError(`leadingRightVectors: a tall matrix is expected (got ${rows} × ${cols})`);
  if (!(Number.isInteger(r) && r >= 1 && r <= cols)) throw new RangeError(`leadingRightVectors: rank ${r} for ${cols} columns`);
  const l = r + OVERSAMPLE;
  if (cols < RANDOMIZED_FROM || 2 * l > cols) {
    const d = svd(a, rows, cols);
    const out = new Float64Array(cols * r);
    for (let j = 0; j < cols; j++) for (let c = 0; c < r; c++) out[j * r + c] = d.v[j * d.k + c]!;
    return out;
  }
  const omega = new Float64Array(cols * l);
  let s = 0x9e3779b9;
  // A small xorshift with a fixed seed and Box–Muller: Gaussian Ω, the same for every call.
  const uniform = (): number => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return (s + 0.5) / 4294967296; };
  for (let i = 0; i < omega.length; i++) omega[i] = Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  let q = orthonormalize(multiply(a, rows, cols, omega, l, false), rows, l);
  for (let it = 0; it < POWER_ITERATIONS; it++) {
    const z = orthonormalize(multiply(a, rows, cols, q, l, true), cols, l);
    q = orthonormalize(multiply(a, rows, cols, z, l, false), rows, l);
  }
  // B = Qᵀ A (l × cols): its right singular vectors approximate A's leading ones.
  const bt = multiply(a, rows, cols, q, l, true); // Aᵀ Q = Bᵀ, cols × l
  const b = new Float64Array(l * cols);
  for (let j = 0; j < cols; j++) for (let c = 0; c < l; c++) b[c * cols + j] = bt[j * l + c]!;
  const d = svd(b, l, cols);
  const out = new Float64Array(cols * r);
  for (let j = 0; j < cols; j++) for (let c = 0; c < r; c++) out[j * r + c] = d.v[j * d.k + c]!;
  return out;
}

/** A X (rows × l) for X cols × l, or Aᵀ X (cols × l) for X rows × l when `transposeA`; all row-major. */
function multiply(a: ArrayLike<number>, rows: number, cols: number, x: Float64Array, l: number, transposeA: boolean): Float64Array {
  const out = new Float64Array((transposeA ? cols : rows) * l);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const aij = a[i * cols + j]!;
      if (aij === 0) continue;
      const src = transposeA ? i * l : j * l, dst = transposeA ? j * l : i * l;
      for (let c = 0; c < l; c++) out[dst + c] += aij * x[src + c]!;
    }
  }
  return out;
}

/**
 * Orthonormal columns spanning those of a row-major [n, l] matrix (modified Gram–Schmidt, twice), in place.
 * A column (nearly) inside the span of the previous ones, as when A has rank below l, is replaced by the
 * first standard basis vector that is not.
 */
function orthonormalize(x: Float64Array, n: number, l: number): Float64Array {
  const project = (c: number): number => {
    for (let pass = 0; pass < 2; pass++) {
      for (let j = 0; j < c; j++) {
        let dot = 0;
        for (let i = 0; i < n; i++) dot += x[i * l + j]! * x[i * l + c]!;
        for (let i = 0; i < n; i++) x[i * l + c] -= dot * x[i * l + j]!;
      }
    }
    let norm = 0;
    for (let i = 0; i < n; i++) norm += x[i * l + c]! ** 2;
    return Math.sqrt(norm);
  };
  for (let c = 0; c < l; c++) {
    let before = 0;
    for (let i = 0; i < n; i++) before += x[i * l + c]! ** 2;
    let norm = project(c);
    for (let e = 0; !(norm > 1e-10 * Math.sqrt(before)) || norm === 0; e++) {
      if (e >= n) throw new Error('orthonormalize: no direction left');
      for (let i = 0; i < n; i++) x[i * l + c] = i === e ? 1 : 0;
      before = 1;
      norm = project(c);
      if (norm < 0.5) norm = 0;
    }
    for (let i = 0; i < n; i++) x[i * l + c] /= norm;
  }
  return x;
}
