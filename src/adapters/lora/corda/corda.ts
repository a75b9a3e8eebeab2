/**
 * CorDA (Yang et al., 2024, "CorDA: Context-Oriented Decomposition Adaptation of Large Language Models for
 * Task-Aware Parameter-Efficient Fine-tuning"): the SVD of W·C, C the covariance of the module's inputs on a
 * data sample, gives A and B; the base becomes the residual. See README.md beside this file.
 */
import { svd } from '../../../linalg/svd.js';
import type { InitSample, ModuleInfo, PrepareContext } from '../../types.js';

/**
 * Per module, C = mean over the sample's rows of XᵀX, each row's inputs X [tokens, in] divided by |max X| first
 * (as PEFT's calib_cov_distribution, one row per forward pass). Modules sharing an input share one C.
 */
export function cordaCovariances(modules: readonly ModuleInfo[], sample: InitSample, linearInputs: PrepareContext['linearInputs']): Map<string, Float64Array> {
  const targeted = new Set(modules.map((m) => m.name));
  for (const m of modules) if (m.kind === 'embedding') throw new Error(`lora: init 'corda' adapts linear modules only, not the embedding ${m.name}`);
  const cov = new Map<string, Float64Array>();
  let count = 0;
  for (let row = 0; row < sample.rows.length; row++) {
    const present = sample.present[row]!;
    let len = 0;
    for (let t = 0; t < present.length; t++) if (present[t]) len = t + 1;
    if (!len) continue;
    count++;
    linearInputs(Array.from(sample.rows[row]!.subarray(0, len)), (names, x, n, d) => {
      const mine = names.filter((nm) => targeted.has(nm));
      if (!mine.length) return;
      let c = cov.get(mine[0]!);
      if (!c) { c = new Float64Array(d * d); for (const nm of mine) cov.set(nm, c); }
      let max = -Infinity;
      for (let i = 0; i < n * d; i++) if (x[i]! > max) max = x[i]!;
      const scale = 1 / (Math.abs(max) || 1);
      for (let t = 0; t < n; t++) {
        if (!present[t]) continue;
        for (let i = 0; i < d; i++) {
          const xi = x[t * d + i]! * scale;
          if (xi === 0) continue;
          for (let j = 0; j < d; j++) c[i * d + j]! += xi * x[t * d + j]! * scale;
        }
      }
    });
  }
  if (!count) throw new Error("lora: init 'corda': the data sample has no tokens");
  const seen = new Set<Float64Array>();
  for (const c of cov.values()) {
    if (seen.has(c)) continue;
    seen.add(c);
    for (let i = 0; i < c.length; i++) c[i]! /= count;
  }
  return cov;
}

/** The inverse of a square matrix [n, n] by Gauss–Jordan elimination with partial pivoting, in float64. */
export function invert(a: Float64Array, n: number): Float64Array {
  const m = Float64Array.from(a), inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) inv[i * n + i] = 1;
  for (let col = 0; col < n; col++) {
    let piv = col;
    for (let i = col + 1; i < n; i++) if (Math.abs(m[i * n + col]!) > Math.abs(m[piv * n + col]!)) piv = i;
    if (m[piv * n + col] === 0) throw new Error('invert: the matrix is singular');
    if (piv !== col) {
      for (let j = 0; j < n; j++) {
        [m[col * n + j], m[piv * n + j]] = [m[piv * n + j]!, m[col * n + j]!];
        [inv[col * n + j], inv[piv * n + j]] = [inv[piv * n + j]!, inv[col * n + j]!];
      }
    }
    const p = 1 / m[col * n + col]!;
    for (let j = 0; j < n; j++) { m[col * n + j]! *= p; inv[col * n + j]! *= p; }
    for (let i = 0; i < n; i++) {
      if (i === col) continue;
      const f = m[i * n + col]!;
      if (f === 0) continue;
      for (let j = 0; j < n; j++) { m[i * n + j]! -= f * m[col * n + j]!; inv[i * n + j]! -= f * inv[col * n + j]!; }
    }
  }
  return inv;
}

/**
 * The damped covariance C' = C + damp·mean(diag C)·I and its inverse, damp starting at 0.01 and doubling
 * until ‖C'·C'⁻¹ − I‖_F < 0.05 (PEFT's collect_eigens_for_layer).
 */
export function dampedInverse(c: Float64Array, n: number): { damped: Float64Array; inverse: Float64Array } {
  let meanDiag = 0;
  for (let i = 0; i < n; i++) meanDiag += c[i * n + i]! / n;
  for (let damp = 0.01; ; damp *= 2) {
    const damped = Float64Array.from(c);
    for (let i = 0; i < n; i++) damped[i * n + i]! += meanDiag * damp;
    let inverse: Float64Array;
    try { inverse = invert(damped, n); } catch { if (damp > 1e6) throw new Error('lora: init corda: the input covariance is zero'); continue; }
    let err = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < n; k++) s += damped[i * n + k]! * inverse[k * n + j]!;
        err += (s - (i === j ? 1 : 0)) ** 2;
      }
    }
    if (Math.sqrt(err) < 0.05 || damp > 1e6) return { damped, inverse };
  }
}

/**
 * A [r, in] and B [out, r] of one module: W·C' = U·S·Vᵀ, the adapter's directions Vᵀ·C'⁻¹ (so that
 * U·S·Vᵀ·C'⁻¹ = W), IPM the r largest singular values, KPM the r smallest; s·B·A = U_r·S_r·(Vᵀ C'⁻¹)_r with
 * B = U_r·√(S_r/s), A = √(S_r/s)·(Vᵀ C'⁻¹)_r, as PiSSA splits its triplets.
 */
export function cordaFactors(w: Float32Array, cov: Float64Array, out: number, inF: number, r: number, s: number, mode: 'ipm' | 'kpm', name: string): { a: Float32Array; b: Float32Array } {
  const { damped, inverse } = dampedInverse(cov, inF);
  const wc = new Float64Array(out * inF);
  for (let i = 0; i < out; i++) {
    for (let k = 0; k < inF; k++) {
      const x = w[i * inF + k]!;
      if (x === 0) continue;
      for (let j = 0; j < inF; j++) wc[i * inF + j]! += x * damped[k * inF + j]!;
    }
  }
  const d = svd(wc, out, inF);
  if (r > d.k) throw new Error(`lora: rank ${r} exceeds ${name}'s smaller dimension ${d.k}`);
  const a = new Float32Array(r * inF), b = new Float32Array(out * r);
  for (let q = 0; q < r; q++) {
    const idx = mode === 'ipm' ? q : d.k - r + q, root = Math.sqrt(d.s[idx]! / s);
    for (let j = 0; j < inF; j++) {
      let v = 0;
      for (let k = 0; k < inF; k++) v += d.vt[idx * inF + k]! * inverse[k * inF + j]!;
      a[q * inF + j] = root * v;
    }
    for (let i = 0; i < out; i++) b[i * r + q] = root * d.u[i * d.k + idx]!;
  }
  return { a, b };
}
