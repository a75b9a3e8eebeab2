// GaLore: the host SVD against planted decompositions; GaLore's projected Adam at full rank equals AdamW run
// in the rotated basis of its projector (the only sense in which the two agree: see below), on a planted
// quadratic and through trainBaseWeights on stories260K against gradients computed without the trainer; a
// lower rank keeps every update inside the subspace; option checks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createJsBackend } from '../../src/backends/js/index.js';
import { batchAt } from '../../src/data/dataset.js';
import { seededRandom, gaussian } from '../../src/util/random.js';
import { galoreUpdater, isProjectedWeight } from '../../src/updaters/galore/index.js';
import { GaLoreAdam } from '../../src/updaters/galore/projected-adam.js';
import { RANDOMIZED_FROM, leadingRightVectors, svd } from '../../src/linalg/svd.js';
import { trainBaseWeights } from '../../src/updaters/train.js';
import type { TensorOptimizerHyper, UpdaterContext } from '../../src/updaters/types.js';
import { adamwRef, baseGradients, maxAbsDiff, storyData, valuesOf } from './helpers.js';

const rand = seededRandom(11);
const randn = (n: number): Float64Array => Float64Array.from({ length: n }, () => gaussian(rand));

/** A random orthogonal n × n matrix (Gram–Schmidt of a Gaussian one), row-major. */
function orthogonal(n: number): Float64Array {
  const q = randn(n * n);
  for (let c = 0; c < n; c++) {
    for (let pass = 0; pass < 2; pass++) for (let j = 0; j < c; j++) {
      let d = 0;
      for (let i = 0; i < n; i++) d += q[i * n + c]! * q[i * n + j]!;
      for (let i = 0; i < n; i++) q[i * n + c] -= d * q[i * n + j]!;
    }
    let s = 0;
    for (let i = 0; i < n; i++) s += q[i * n + c]! ** 2;
    for (let i = 0; i < n; i++) q[i * n + c] /= Math.sqrt(s);
  }
  return q;
}

/** Largest |XᵀX − I| over the k columns of a row-major [rows, k] matrix. */
function orthoError(x: Float64Array, rows: number, k: number): number {
  let e = 0;
  for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) {
    let d = 0;
    for (let i = 0; i < rows; i++) d += x[i * k + a]! * x[i * k + b]!;
    e = Math.max(e, Math.abs(d - (a === b ? 1 : 0)));
  }
  return e;
}

function reconstruct(d: ReturnType<typeof svd>): Float64Array {
  const out = new Float64Array(d.m * d.n);
  for (let i = 0; i < d.m; i++) for (let j = 0; j < d.n; j++) {
    let s = 0;
    for (let c = 0; c < d.k; c++) s += d.u[i * d.k + c]! * d.s[c]! * d.v[j * d.k + c]!;
    out[i * d.n + j] = s;
  }
  return out;
}

test('svd: U Σ Vᵀ reconstructs A within 1e-9, orthonormal U and V, planted singular values recovered', () => {
  for (const [m, n] of [[7, 5], [5, 7], [20, 20], [1, 6], [6, 1], [64, 172], [40, 16]] as const) {
    const k = Math.min(m, n);
    // A = Q₁[:, :k] diag(σ) Q₂[:, :k]ᵀ with planted σ (distinct, descending, spread over 4 decades).
    const q1 = orthogonal(m), q2 = orthogonal(n);
    const sigma = Array.from({ length: k }, (_, c) => 10 ** (2 - (4 * c) / Math.max(1, k)) * (1 + 0.01 * rand()));
    sigma.sort((a, b) => b - a);
    const a = new Float64Array(m * n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
      let s = 0;
      for (let c = 0; c < k; c++) s += q1[i * m + c]! * sigma[c]! * q2[j * n + c]!;
      a[i * n + j] = s;
    }
    const d = svd(a, m, n);
    assert.is(d.k, k);
    const err = maxAbsDiff(reconstruct(d), a);
    assert.ok(err < 1e-9, `${m}×${n}: reconstruction error ${err}`);
    assert.ok(orthoError(d.u, m, k) < 1e-12, `${m}×${n}: UᵀU`);
    assert.ok(orthoError(d.v, n, k) < 1e-12, `${m}×${n}: VᵀV`);
    for (let c = 0; c < k; c++) assert.ok(Math.abs(d.s[c]! - sigma[c]!) < 1e-10 * sigma[0]!, `${m}×${n}: σ${c} ${d.s[c]} vs ${sigma[c]}`);
  }
});

test('svd: a rank-deficient matrix (and the zero matrix) still gets orthonormal U and V and reconstructs', () => {
  const m = 10, n = 8;
  // Rank 3: three outer products.
  const a = new Float64Array(m * n);
  for (let t = 0; t < 3; t++) {
    const x = randn(m), y = randn(n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) a[i * n + j] += x[i]! * y[j]!;
  }
  for (const [mat, mm, nn] of [[a, m, n], [new Float64Array(6 * 4), 6, 4]] as const) {
    const d = svd(mat, mm, nn);
    assert.ok(maxAbsDiff(reconstruct(d), mat) < 1e-9);
    assert.ok(orthoError(d.u, mm, d.k) < 1e-12, 'UᵀU');
    assert.ok(orthoError(d.v, nn, d.k) < 1e-12, 'VᵀV');
  }
  assert.ok(svd(a, m, n).s[3]! < 1e-12 * svd(a, m, n).s[0]!, 'rank 3');
  assert.throws(() => svd(new Float64Array(5), 2, 3), /5 values for a 2 × 3 matrix/);
});

/** ‖P₁P₁ᵀ − P₂P₂ᵀ‖ (largest entry) for two [n, r] orthonormal bases: 0 when they span the same subspace. */
function subspaceGap(a: Float64Array, b: Float64Array, n: number, r: number): number {
  let worst = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    let x = 0, y = 0;
    for (let c = 0; c < r; c++) { x += a[i * r + c]! * a[j * r + c]!; y += b[i * r + c]! * b[j * r + c]!; }
    worst = Math.max(worst, Math.abs(x - y));
  }
  return worst;
}

test('leading vectors of a large matrix (randomised range finder) span the exact SVD\'s leading subspace', () => {
  const rows = 400, cols = RANDOMIZED_FROM + 16, r = 24, k = cols;
  // Planted spectrum: 24 leading values from 10 down to 5, then a tail from 1 down (a gradient-like gap).
  const q1 = orthogonal(rows).subarray(0, rows * rows), q2 = orthogonal(cols);
  const sigma = Array.from({ length: k }, (_, c) => (c < r ? 10 - (5 * c) / r : 1 / (1 + 0.05 * (c - r))));
  const a = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let c = 0; c < k; c++) {
    const u = q1[i * rows + c]! * sigma[c]!;
    for (let j = 0; j < cols; j++) a[i * cols + j] += u * q2[j * cols + c]!;
  }
  const fast = leadingRightVectors(a, rows, cols, r);
  const exact = svd(a, rows, cols);
  const top = new Float64Array(cols * r);
  for (let j = 0; j < cols; j++) for (let c = 0; c < r; c++) top[j * r + c] = exact.v[j * exact.k + c]!;
  assert.ok(orthoError(fast, cols, r) < 1e-10, 'orthonormal');
  const gap = subspaceGap(fast, top, cols, r);
  // (σ_{r+11}/σ_r)^9 ≈ (0.65/5)^9: far below the tolerance.
  assert.ok(gap < 1e-6, `subspace gap ${gap}`);
  // The planted subspace itself, for the exact SVD (an independent check of the reference).
  const planted = new Float64Array(cols * r);
  for (let j = 0; j < cols; j++) for (let c = 0; c < r; c++) planted[j * r + c] = q2[j * cols + c]!;
  assert.ok(subspaceGap(top, planted, cols, r) < 1e-9);
  // A rank-deficient large matrix (rank 5 < r + 10) still gets an orthonormal basis holding its row space.
  const low = new Float64Array(rows * cols);
  for (let t = 0; t < 5; t++) { const x = randn(rows), y = randn(cols); for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) low[i * cols + j] += x[i]! * y[j]!; }
  const lv = leadingRightVectors(low, rows, cols, r);
  assert.ok(orthoError(lv, cols, r) < 1e-10, 'orthonormal (rank-deficient)');
  const lowExact = svd(low, rows, cols), row5 = new Float64Array(cols * 5);
  for (let j = 0; j < cols; j++) for (let c = 0; c < 5; c++) row5[j * 5 + c] = lowExact.v[j * lowExact.k + c]!;
  const first5 = new Float64Array(cols * 5);
  for (let j = 0; j < cols; j++) for (let c = 0; c < 5; c++) first5[j * 5 + c] = lv[j * r + c]!;
  assert.ok(subspaceGap(first5, row5, cols, 5) < 1e-8, 'the first 5 span the row space');
});

const hyper = (step: number, o: Partial<TensorOptimizerHyper> = {}): TensorOptimizerHyper => ({ lr: 0.01, step, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, gradScale: 1, ...o });

// Why "GaLore at full rank equals AdamW" needs a basis: at full rank the projector P is orthogonal, so no
// gradient information is lost, but Adam's second moment is elementwise, and elementwise in P's basis is
// not elementwise in the weight's basis (unless P is a signed permutation, which an SVD of a gradient is
// not). What holds exactly: with scale 1 and the subspace fixed (T longer than the run), GaLore on W is
// AdamW on the rotated weight W̃ = W Pᵀ (right) or Pᵀ W (left), whose gradient is G Pᵀ (or Pᵀ G), rotated
// back. Decoupled weight decay commutes with the rotation, so it is included.
test('full rank, scale 1, fixed subspace: GaLore equals AdamW in the projector\'s basis, step for step (1e-5)', () => {
  for (const [m, n] of [[12, 7], [5, 9], [6, 6]] as const) {
    // A loss with a gradient that depends on W: L = ½‖A W − B‖² + Σ tanh(W)·C.
    const A = randn(m * m), B = randn(m * n), C = randn(m * n);
    const gradAt = (w: ArrayLike<number>): Float64Array => {
      const r = new Float64Array(m * n), g = new Float64Array(m * n);
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
        let s = -B[i * n + j]!;
        for (let k = 0; k < m; k++) s += A[i * m + k]! * w[k * n + j]!;
        r[i * n + j] = s;
      }
      for (let k = 0; k < m; k++) for (let j = 0; j < n; j++) {
        let s = 0;
        for (let i = 0; i < m; i++) s += A[i * m + k]! * r[i * n + j]!;
        g[k * n + j] = s + C[k * n + j]! * (1 - Math.tanh(w[k * n + j]!) ** 2);
      }
      return g;
    };
    const w0 = randn(m * n);
    const opt = new GaLoreAdam(m, n, { rank: 1000, interval: 1000, scale: 1 });
    assert.is(opt.rank, Math.min(m, n));
    assert.is(opt.side, m >= n ? 'right' : 'left');
    const param = Float32Array.from(w0);
    const steps = 6;
    for (let s = 1; s <= steps; s++) opt.update(param, Float32Array.from(gradAt(param)), hyper(s));
    assert.is(opt.svds, 1);
    // The projector GaLore used (f32), square and orthogonal at full rank.
    const P = Float64Array.from(opt.projector()!), d = Math.min(m, n);
    const right = opt.side === 'right';
    const rotate = (x: ArrayLike<number>): Float64Array => {
      const out = new Float64Array(m * n);
      if (right) { for (let i = 0; i < m; i++) for (let c = 0; c < n; c++) { let s = 0; for (let j = 0; j < n; j++) s += x[i * n + j]! * P[c * n + j]!; out[i * n + c] = s; } }
      else { for (let c = 0; c < m; c++) for (let j = 0; j < n; j++) { let s = 0; for (let i = 0; i < m; i++) s += P[i * d + c]! * x[i * n + j]!; out[c * n + j] = s; } }
      return out;
    };
    const unrotate = (x: ArrayLike<number>): Float64Array => {
      const out = new Float64Array(m * n);
      if (right) { for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) { let s = 0; for (let c = 0; c < n; c++) s += x[i * n + c]! * P[c * n + j]!; out[i * n + j] = s; } }
      else { for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) { let s = 0; for (let c = 0; c < m; c++) s += P[i * d + c]! * x[c * n + j]!; out[i * n + j] = s; } }
      return out;
    };
    const wt = rotate(w0), mm = new Float64Array(m * n), vv = new Float64Array(m * n);
    for (let s = 1; s <= steps; s++) adamwRef(wt, rotate(gradAt(unrotate(wt))), mm, vv, { lr: 0.01, step: s, wd: 0.1 });
    const want = unrotate(wt);
    const diff = maxAbsDiff(param, want), moved = maxAbsDiff(param, w0);
    assert.ok(diff < 1e-5, `${m}×${n}: GaLore vs rotated AdamW ${diff}`);
    assert.ok(moved > 0.03, `${m}×${n}: the weight moved (${moved})`);
    // And it is not elementwise AdamW: the basis matters.
    const pe = Float64Array.from(w0), me = new Float64Array(m * n), ve = new Float64Array(m * n);
    for (let s = 1; s <= steps; s++) adamwRef(pe, gradAt(pe), me, ve, { lr: 0.01, step: s, wd: 0.1 });
    assert.ok(maxAbsDiff(param, pe) > 1e-3, `${m}×${n}: elementwise AdamW differs (${maxAbsDiff(param, pe)})`);
  }
});

test('rank r < min(m, n): each step moves the weight only inside the r-dimensional subspace; a new SVD every T steps', () => {
  const m = 9, n = 14, r = 3;
  const opt = new GaLoreAdam(m, n, { rank: r, interval: 2, scale: 0.25 });
  assert.is(opt.side, 'left');
  const param = Float32Array.from(randn(m * n));
  for (let s = 1; s <= 5; s++) {
    const before = Float64Array.from(param);
    opt.update(param, Float32Array.from(randn(m * n)), hyper(s, { weightDecay: 0 }));
    // The step Δ = W' − W lies in span(P): (I − P Pᵀ) Δ = 0 (P: m × r, orthonormal columns, f32).
    const P = opt.projector()!;
    const delta = Float64Array.from(param, (x, i) => x - before[i]!);
    let outside = 0, size = 0;
    for (let j = 0; j < n; j++) for (let i = 0; i < m; i++) {
      let proj = 0;
      for (let c = 0; c < r; c++) { let dot = 0; for (let k = 0; k < m; k++) dot += P[k * r + c]! * delta[k * n + j]!; proj += P[i * r + c]! * dot; }
      outside = Math.max(outside, Math.abs(delta[i * n + j]! - proj));
      size = Math.max(size, Math.abs(delta[i * n + j]!));
    }
    assert.ok(outside < 1e-5 * Math.max(size, 1e-3) + 1e-7, `step ${s}: ${outside} of the step outside the subspace (step ${size})`);
    assert.ok(size > 1e-4, 'the weight moved');
  }
  // Steps 1, 3, 5 took an SVD (T = 2).
  assert.is(opt.svds, 3);
  // Moments of r × n, and the m × r projector, all f32.
  assert.is(opt.stateBytes(), 4 * (2 * r * n + m * r));
});

// Through the trainer, the gradients of a rank-deficient batch (fewer distinct contexts than the model's
// width) have null directions whose projected entries are round-off; Adam's first step turns any value
// above eps into ±lr, so two independently computed gradients would disagree there by sign. Hence the
// check in two parts: each step's gradients (read in beforeUpdate) equal an independent autodiff of the
// same values; and the updates equal float64 AdamW, rotated for the projected weights, on those gradients.
test('through trainBaseWeights on stories260K: GaLore at full rank equals AdamW in each projector\'s basis (1e-5), AdamW elsewhere', async () => {
  const { ckpt, train } = await storyData();
  const LR = 1e-3, Bt = 2, steps = 3;
  const names = [...ckpt.tensors.keys()];
  const seen: { values: Map<string, Float32Array>; grads: Map<string, Float32Array> }[] = [];
  const galore = galoreUpdater({ rank: 1000, interval: 100, scale: 1 });
  const up = { ...galore, beforeUpdate: async (ctx: UpdaterContext) => { seen.push({ values: await ctx.values(names), grads: await ctx.gradients(names) }); } };
  const r = await trainBaseWeights(up, { checkpoint: ckpt, backend: createJsBackend(), data: train, steps, batch: Bt, lr: LR, decay: 'constant', weightDecay: 0.05 });
  const shapes = new Map([...ckpt.tensors].map(([n, t]) => [n, t.shape]));
  const projected = names.filter((n) => isProjectedWeight(n, shapes.get(n)!));
  assert.is(projected.length, 7 * ckpt.config.nLayers);
  assert.equal([...galore.optimizers.keys()].sort(), [...projected].sort());
  // The gradients the optimizers saw, against autodiff of a graph built without the trainer at the same values.
  for (let s = 1; s <= steps; s++) {
    const b = batchAt(train, (s - 1) * Bt, Bt);
    const { loss, grads } = await baseGradients(ckpt, seen[s - 1]!.values, names, b.ids, b.targets, Bt, train.seq);
    assert.ok(Math.abs(loss - r.losses[s - 1]!) < 1e-5, `step ${s}: loss ${r.losses[s - 1]} vs ${loss}`);
    for (const n of names) {
      const g = grads.get(n)!, scale = Math.max(...g.map(Math.abs));
      assert.ok(maxAbsDiff(seen[s - 1]!.grads.get(n)!, g) <= 1e-4 * scale + 1e-9, `step ${s}: gradient of ${n}`);
    }
  }
  // Reference: float64 AdamW on every tensor, projected ones in the basis of GaLore's (fixed) projector.
  const vals = valuesOf(ckpt);
  const basis = (n: string) => {
    const o = galore.optimizers.get(n)!, [m, k] = shapes.get(n)!, P = Float64Array.from(o.projector()!), d = Math.min(m!, k!);
    const rot = (x: ArrayLike<number>, back: boolean): Float64Array => {
      const out = new Float64Array(m! * k!);
      for (let i = 0; i < m!; i++) for (let j = 0; j < k!; j++) {
        let s = 0;
        if (o.side === 'right') for (let c = 0; c < k!; c++) s += back ? x[i * k! + c]! * P[c * k! + j]! : x[i * k! + c]! * P[j * k! + c]!;
        else for (let c = 0; c < m!; c++) s += back ? P[i * d + c]! * x[c * k! + j]! : P[c * d + i]! * x[c * k! + j]!;
        out[i * k! + j] = s;
      }
      return out;
    };
    return { to: (x: ArrayLike<number>) => rot(x, false), from: (x: ArrayLike<number>) => rot(x, true) };
  };
  const bases = new Map(projected.map((n) => [n, basis(n)]));
  const p = new Map(names.map((n) => [n, bases.has(n) ? bases.get(n)!.to(vals.get(n)!) : Float64Array.from(vals.get(n)!)]));
  const mo = new Map(names.map((n) => [n, new Float64Array(vals.get(n)!.length)]));
  const ve = new Map(names.map((n) => [n, new Float64Array(vals.get(n)!.length)]));
  const weightsOf = (n: string) => (bases.has(n) ? bases.get(n)!.from(p.get(n)!) : p.get(n)!);
  for (let s = 1; s <= steps; s++) {
    const grads = seen[s - 1]!.grads;
    for (const n of names) adamwRef(p.get(n)!, bases.has(n) ? bases.get(n)!.to(grads.get(n)!) : grads.get(n)!, mo.get(n)!, ve.get(n)!, { lr: LR, step: s, wd: 0.05 });
  }
  let worst = 0, moved = 0;
  for (const n of names) {
    const got = (r.checkpoint.tensors.get(n) as { data: Float32Array }).data;
    worst = Math.max(worst, maxAbsDiff(got, weightsOf(n)));
    if (bases.has(n)) moved = Math.max(moved, maxAbsDiff(got, vals.get(n)!));
  }
  assert.ok(worst < 1e-5, `worst parameter difference ${worst}`);
  assert.ok(moved > 1e-3, `the projected weights moved (${moved})`);
  assert.is(r.summary.galoreSvds, projected.length);
  // State: each projected weight's square projector and two moments of its size (f32); AdamW's two moments elsewhere.
  const elems = (n: string) => shapes.get(n)!.reduce((a, x) => a * x, 1);
  const side = (n: string) => Math.min(...shapes.get(n)!);
  const want = names.reduce((a, n) => a + (bases.has(n) ? 4 * (side(n) ** 2 + 2 * elems(n)) : 8 * elems(n)), 0);
  assert.is(r.optimizerStateBytes, want);
});

test('the projected weights: 2-D weights of decoder blocks (Llama-style and GPT-2 names), not embeddings, head or norms', () => {
  assert.ok(isProjectedWeight('model.layers.3.mlp.down_proj.weight', [64, 172]));
  assert.ok(isProjectedWeight('transformer.h.0.attn.c_attn.weight', [64, 192]));
  assert.not.ok(isProjectedWeight('model.layers.3.input_layernorm.weight', [64]));
  assert.not.ok(isProjectedWeight('transformer.h.0.attn.c_attn.bias', [192]));
  assert.not.ok(isProjectedWeight('model.embed_tokens.weight', [512, 64]));
  assert.not.ok(isProjectedWeight('lm_head.weight', [512, 64]));
  assert.not.ok(isProjectedWeight('transformer.wte.weight', [512, 64]));
});

test('bad settings are refused by name', () => {
  assert.throws(() => galoreUpdater({ rank: 0 }), /galore: rank must be an integer ≥ 1 \(got 0\)/);
  assert.throws(() => galoreUpdater({ interval: 1.5 }), /galore: interval \(T\) must be an integer ≥ 1/);
  assert.throws(() => galoreUpdater({ scale: -1 }), /galore: scale must be > 0/);
  assert.throws(() => new GaLoreAdam(4, 4, { rank: 2, interval: 1, scale: 1 }).update(new Float32Array(3), new Float32Array(16), hyper(1)), /4 × 4 weight was given 3 values/);
});

test.run();
