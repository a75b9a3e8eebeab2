// Intruder dimensions and the effective rank (src/analysis/intruder/intruder.ts) on matrices built with a
// known answer: W = U·diag(s)·Vᵀ with random orthonormal U, V (from the SVD of a Gaussian matrix) and
// well-separated singular values, so the base's singular vectors are known exactly.
// - ΔW = 0: every top-k vector of W is one of the base's (max |cos| = 1 within 1e-9), no intruder.
// - A rank-1 update σ·u·vᵀ with σ = 3·s₀ along u orthogonal to the base's top 10 left singular vectors (the
//   normalised sum of the other 22) is found as the one intruder, at index 0; its max |cos| to the base is
//   below 0.3 (1/√22 ≈ 0.21 for u itself). The same update along the base's top vector makes none.
// - A tall 24×12 weight: an update along a direction outside the base's column space is the one intruder.
// - Rank-r ΔW with equal singular values: effective rank r within 1e-9 (float64 data) and within 1e-3 when
//   the weights are float32 (rounding noise in ΔW); the numerical rank is r in both. Unequal values: the
//   entropy formula by hand.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { analyzeWeight, effectiveRank, INTRUDER_DEFAULTS, intruderDimensions, numericalRank } from '../../src/analysis/intruder/intruder.js';
import { svd } from '../../src/linalg/svd.js';
import { randn } from '../helpers.js';

const M = 32, N = 32;

/** The columns of an orthonormal m×m matrix (the left singular vectors of a Gaussian matrix). */
function orthonormal(m: number, seed: number): Float64Array[] {
  const q = svd(randn(m * m, seed), m, m);
  return Array.from({ length: m }, (_, c) => Float64Array.from({ length: m }, (_, r) => q.u[r * m + c]!));
}

const U = orthonormal(M, 1), V = orthonormal(N, 2);
const S = Array.from({ length: M }, (_, i) => 10 * 0.85 ** i);

/** Σ_i s_i · a_i b_iᵀ, row-major. */
function outer(terms: [number, Float64Array, Float64Array][], rows = M, cols = N): Float64Array {
  const w = new Float64Array(rows * cols);
  for (const [s, a, b] of terms) for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) w[r * cols + c]! += s * a[r]! * b[c]!;
  return w;
}
const add = (a: Float64Array, b: Float64Array): Float64Array => a.map((v, i) => v + b[i]!);
const unit = (v: Float64Array): Float64Array => { const n = Math.hypot(...v); return v.map((x) => x / n); };

const BASE = outer(S.map((s, i) => [s, U[i]!, V[i]!]));

test('defaults are the authors\' (k = 10, ε = 0.5)', () => {
  assert.equal({ ...INTRUDER_DEFAULTS }, { k: 10, epsilon: 0.5 });
});

test('ΔW = 0: no intruder, every top-k vector is one of the base\'s; ΔW has effective rank 0', () => {
  const r = analyzeWeight(BASE, BASE, M, N);
  assert.is(r.k, 10);
  assert.equal(r.intruders, []);
  for (const c of r.maxCosine) assert.ok(Math.abs(c - 1) < 1e-9, `max |cos| ${c}`);
  assert.is(r.deltaEffectiveRank, 0);
  assert.is(r.deltaRank, 0);
  assert.is(r.deltaNorm, 0);
});

test('a planted rank-1 update orthogonal to the top-10 base directions is the one intruder, at index 0', () => {
  const u = unit(U.slice(10).reduce((acc, x) => add(acc, x), new Float64Array(M)));
  for (let i = 0; i < 10; i++) assert.ok(Math.abs(U[i]!.reduce((s, x, r) => s + x * u[r]!, 0)) < 1e-12);
  const v = unit(randn(N, 3));
  const tuned = add(BASE, outer([[3 * S[0]!, u, v]]));
  const r = intruderDimensions(BASE, tuned, M, N);
  assert.equal(r.intruders, [0]);
  assert.ok(r.maxCosine[0]! < 0.3, `intruder's max |cos| ${r.maxCosine[0]}`);
  for (let j = 1; j < r.k; j++) assert.ok(r.maxCosine[j]! >= 0.5, `vector ${j}: max |cos| ${r.maxCosine[j]}`);
  // The same update along the base's leading direction only stretches it: nothing intrudes.
  const aligned = intruderDimensions(BASE, add(BASE, outer([[3 * S[0]!, U[0]!, V[0]!]])), M, N);
  assert.equal(aligned.intruders, []);
  // With a stricter threshold than the intruder's cosine it is not counted; with k = 1 only it is examined.
  assert.equal(intruderDimensions(BASE, tuned, M, N, { epsilon: r.maxCosine[0]! * 0.99 }).intruders, []);
  assert.is(intruderDimensions(BASE, tuned, M, N, { k: 1 }).maxCosine.length, 1);
});

test('a tall weight: an update in the base\'s left null space (orthogonal to every base vector) is the one intruder', () => {
  const rows = 24, cols = 12;
  const Q = orthonormal(rows, 5);
  const base = outer(Array.from({ length: cols }, (_, i) => [S[i]!, Q[i]!, orthonormal(cols, 6)[i]!] as [number, Float64Array, Float64Array]), rows, cols);
  const u = Q[rows - 1]!, v = unit(randn(cols, 7));
  const r = intruderDimensions(base, add(base, outer([[5 * S[0]!, u, v]], rows, cols)), rows, cols);
  assert.equal(r.intruders, [0]);
  // u itself has |cos| 0 with the base; the top vector leans toward W's range through W·v (measured 0.10).
  assert.ok(r.maxCosine[0]! < 0.2, `max |cos| ${r.maxCosine[0]}`);
});

test('effective rank (Roy & Vetterli) of a planted rank-r ΔW with equal singular values is r; numerical rank r', () => {
  for (const rank of [1, 3, 8]) {
    const delta = outer(Array.from({ length: rank }, (_, i) => [0.7, U[5 + i]!, V[9 + i]!] as [number, Float64Array, Float64Array]));
    const r = analyzeWeight(BASE, add(BASE, delta), M, N);
    assert.ok(Math.abs(r.deltaEffectiveRank - rank) < 1e-9, `rank ${rank}: effective rank ${r.deltaEffectiveRank}`);
    assert.is(r.deltaRank, rank);
    // As float32 weights (a merged adapter is stored so), ΔW carries rounding noise of W's size.
    const base32 = Float32Array.from(BASE), tuned32 = Float32Array.from(add(BASE, delta));
    const r32 = analyzeWeight(base32, tuned32, M, N);
    assert.ok(Math.abs(r32.deltaEffectiveRank - rank) < 1e-3, `rank ${rank} (float32): effective rank ${r32.deltaEffectiveRank}`);
    assert.is(r32.deltaRank, rank);
  }
});

test('effective rank of unequal singular values, and the numerical rank, by hand', () => {
  const expected = Math.exp(-(0.75 * Math.log(0.75) + 0.25 * Math.log(0.25)));
  assert.ok(Math.abs(effectiveRank([3, 1, 0]) - expected) < 1e-15);
  assert.ok(Math.abs(effectiveRank([2, 2, 2, 2]) - 4) < 1e-12);
  assert.is(effectiveRank([0, 0]), 0);
  assert.is(numericalRank([5, 1e-3, 1e-9], 1e-6), 2);
});

test('bad input is refused, naming the problem', () => {
  assert.throws(() => intruderDimensions(BASE, BASE.subarray(1), M, N), /fine-tuned.*1023 values do not make a 32×32/);
  assert.throws(() => intruderDimensions(BASE, BASE, M, N, { k: 0 }), /k must be an integer ≥ 1/);
  assert.throws(() => intruderDimensions(BASE, BASE, M, N, { epsilon: 1.5 }), /epsilon must be in \(0, 1\]/);
});

test.run();
