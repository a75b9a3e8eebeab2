/**
 * Thin SVD of a small dense matrix by one-sided Jacobi rotations (Hestenes), in float64. Used by
 * data- and weight-driven adapter initialisations (PiSSA, LaMDA++ spectra, EVA, CorDA), where the
 * matrices are a layer's size at most.
 */
export interface Svd {
  /** U [m, k] row-major, k = min(m, n). */
  u: Float64Array;
  /** Singular values, descending. */
  s: Float64Array;
  /** Vᵀ [k, n] row-major. */
  vt: Float64Array;
  m: number;
  n: number;
  k: number;
}

export function svd(a: ArrayLike<number>, m: number, n: number, opts: { maxSweeps?: number; tol?: number } = {}): Svd {
  if (a.length !== m * n) throw new Error(`svd: ${a.length} values do not make a ${m}×${n} matrix`);
  // Work on the orientation with fewer columns: orthogonalise the columns of X (rows p ≥ cols q).
  const tall = m >= n;
  const p = tall ? m : n, q = tall ? n : m;
  const x = new Float64Array(p * q); // column-major columns of X
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    const v = a[i * n + j]!;
    if (tall) x[j * p + i] = v; else x[i * p + j] = v;
  }
  const v = new Float64Array(q * q);
  for (let i = 0; i < q; i++) v[i * q + i] = 1;
  const tol = opts.tol ?? 1e-15, sweeps = opts.maxSweeps ?? 60;
  for (let sweep = 0; sweep < sweeps; sweep++) {
    let off = 0;
    for (let i = 0; i < q - 1; i++) for (let j = i + 1; j < q; j++) {
      let alpha = 0, beta = 0, gamma = 0;
      for (let r = 0; r < p; r++) { const xi = x[i * p + r]!, xj = x[j * p + r]!; alpha += xi * xi; beta += xj * xj; gamma += xi * xj; }
      if (Math.abs(gamma) <= tol * Math.sqrt(alpha * beta) || gamma === 0) continue;
      off = Math.max(off, Math.abs(gamma) / Math.sqrt(alpha * beta));
      const zeta = (beta - alpha) / (2 * gamma);
      const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
      const c = 1 / Math.sqrt(1 + t * t), s = c * t;
      for (let r = 0; r < p; r++) { const xi = x[i * p + r]!, xj = x[j * p + r]!; x[i * p + r] = c * xi - s * xj; x[j * p + r] = s * xi + c * xj; }
      for (let r = 0; r < q; r++) { const vi = v[i * q + r]!, vj = v[j * q + r]!; v[i * q + r] = c * vi - s * vj; v[j * q + r] = s * vi + c * vj; }
    }
    if (off <= tol) break;
  }
  const norms = Array.from({ length: q }, (_, j) => { let s2 = 0; for (let r = 0; r < p; r++) s2 += x[j * p + r]! ** 2; return Math.sqrt(s2); });
  const order = norms.map((_, j) => j).sort((i, j) => norms[j]! - norms[i]!);
  const k = q;
  // X = L Σ Rᵀ with L's columns x_j/σ_j and R = V. For a tall A: U = L, Vᵀ = Rᵀ; for a wide one A = Xᵀ.
  const left = new Float64Array(p * k), right = new Float64Array(q * k), s = new Float64Array(k);
  order.forEach((j, c) => {
    s[c] = norms[j]!;
    for (let r = 0; r < p; r++) left[r * k + c] = norms[j]! > 0 ? x[j * p + r]! / norms[j]! : 0;
    for (let r = 0; r < q; r++) right[r * k + c] = v[j * q + r]!;
  });
  const transposeTo = (src: Float64Array, rows: number): Float64Array => {
    const out = new Float64Array(k * rows);
    for (let r = 0; r < rows; r++) for (let c = 0; c < k; c++) out[c * rows + r] = src[r * k + c]!;
    return out;
  };
  return tall
    ? { u: left, s, vt: transposeTo(right, q), m, n, k }
    : { u: right, s, vt: transposeTo(left, p), m, n, k };
}
