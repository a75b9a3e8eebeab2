// CorDA (Yang et al. 2024) on the real stories260K model: A and B from the SVD of W·C', C' the damped input
// covariance on a data sample, the base replaced by the residual. Checked: residual + adapter = W (float64,
// 1e-6 relative) and the base model's logits at init; s·B·A·C' is W·C' projected on B's columns, and its
// singular values are the largest (IPM) or smallest (KPM) of W·C' found by power iteration on the covariance
// recomputed here; the plain LoRA of rank 2r saved on the original base gives the trained residual model's
// weights (1e-5) and logits after a few training steps.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { initSampleFromBlocks } from '../../src/adapters/init-sample.js';
import { fromPeftLoraConfig, loraScaling } from '../../src/adapters/lora/config.js';
import { loraDelta } from '../../src/adapters/lora/layer.js';
import { loadPeft, savePeft } from '../../src/adapters/peft.js';
import { tensorF32 } from '../../src/formats/checkpoint.js';
import { hostLinearInputs } from '../../src/model/host-forward.js';
import { maxRelErr } from '../helpers.js';
import { forwardLogits, heroBlocks, stories, trainHero } from '../methods/helpers.js';
import { peftConfigErrors } from './peft-rules.js';

const ckpt = await stories();
const sample = initSampleFromBlocks(heroBlocks(ckpt, 24, 24), { batchRows: 4, rows: 8 });
const V = ckpt.config.vocabSize;
const ids = Int32Array.from({ length: 2 * 8 }, (_, i) => (i * 37 + 11) % V);
const options = { r: 3, alpha: 6, init: 'corda', targetModules: ['q_proj', 'o_proj'], layersToTransform: [1] };
const Q = 'model.layers.1.self_attn.q_proj';

/** The damped covariance C' of Q's inputs on the sample, computed here from the rows as the method describes. */
function dampedCovariance(): { c: Float64Array; n: number } {
  let c: Float64Array | undefined, d = 0, rows = 0;
  for (let row = 0; row < sample.rows.length; row++) {
    const len = sample.present[row]!.lastIndexOf(1) + 1;
    rows++;
    hostLinearInputs(ckpt, Array.from(sample.rows[row]!.subarray(0, len)), (names, x, n, dim) => {
      if (!names.includes(Q)) return;
      d = dim;
      c ??= new Float64Array(d * d);
      const top = Math.abs(Math.max(...x));
      for (let t = 0; t < n; t++) for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) c[i * d + j]! += (x[t * d + i]! / top) * (x[t * d + j]! / top);
    });
  }
  let mean = 0;
  for (let i = 0; i < d; i++) mean += c![i * d + i]! / rows / d;
  return { c: c!.map((v, k) => v / rows + (k % (d + 1) === 0 ? 0.01 * mean : 0)), n: d };
}

const matmul = (a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number): Float64Array => {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) { const x = a[i * k + p]!; for (let j = 0; j < n; j++) out[i * n + j]! += x * b[p * n + j]!; }
  return out;
};
const transpose = (a: ArrayLike<number>, m: number, n: number): Float64Array => Float64Array.from({ length: m * n }, (_, k) => a[(k % m) * n + Math.floor(k / m)]!);

/** Largest eigenvalue of a symmetric positive semi-definite [n, n] matrix by power iteration. */
function topEigen(s: Float64Array, n: number): number {
  let v = Float64Array.from({ length: n }, (_, i) => Math.sin(i + 1)), lambda = 0;
  for (let it = 0; it < 3000; it++) {
    const w = matmul(s, v, n, n, 1), norm = Math.hypot(...w);
    lambda = norm;
    v = w.map((x) => x / norm);
  }
  return lambda;
}

/** Smallest eigenvalue of a symmetric positive definite [n, n] matrix by inverse iteration with a Cholesky solve. */
function smallestEigen(s: Float64Array, n: number): number {
  const L = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let t = s[i * n + j]!;
      for (let k = 0; k < j; k++) t -= L[i * n + k]! * L[j * n + k]!;
      L[i * n + j] = i === j ? Math.sqrt(t) : t / L[j * n + j]!;
    }
  }
  let v = Float64Array.from({ length: n }, (_, i) => Math.cos(i + 1)), lambda = 0;
  for (let it = 0; it < 200; it++) {
    const y = new Float64Array(n), w = new Float64Array(n);
    for (let i = 0; i < n; i++) { let t = v[i]!; for (let k = 0; k < i; k++) t -= L[i * n + k]! * y[k]!; y[i] = t / L[i * n + i]!; }
    for (let i = n - 1; i >= 0; i--) { let t = y[i]!; for (let k = i + 1; k < n; k++) t -= L[k * n + i]! * w[k]!; w[i] = t / L[i * n + i]!; }
    const norm = Math.hypot(...w);
    lambda = 1 / norm;
    v = w.map((x) => x / norm);
  }
  return lambda;
}

test('CorDA at init: residual base + s·B·A = W, and the model computes the base model\'s logits', async () => {
  const base = await forwardLogits(new AdaptedModel(ckpt), ids, 2, 8);
  for (const mode of ['ipm', 'kpm']) {
    const model = new AdaptedModel(ckpt);
    const a = model.addAdapter('t', 'lora', { ...options, cordaMode: mode }, { sample });
    const eff = model.effectiveCheckpoint();
    for (const m of a.modules) {
      const W = tensorF32(ckpt.tensors.get(`${m.name}.weight`)!), R = tensorF32(eff.tensors.get(`${m.name}.weight`)!), d = loraDelta(a.params, m, a.config as never);
      const back = Float64Array.from(R, (x, i) => x + d[i]!);
      assert.ok(maxRelErr(back, W) < 1e-6, `${mode} ${m.name}: ${maxRelErr(back, W)}`);
      let dd = 0;
      for (const x of d) dd += x * x;
      assert.ok(dd > 1e-8, `${mode} ${m.name}: the adapter took nothing from W`);
    }
    assert.ok(maxRelErr(await forwardLogits(model, ids, 2, 8), base) < 1e-4, `${mode}: logits moved at init`);
  }
});

test('CorDA factors: s·B·A·C\' is W·C\' projected on B; IPM takes the largest singular values, KPM the smallest', () => {
  const { c, n } = dampedCovariance();
  const W = tensorF32(ckpt.tensors.get(`${Q}.weight`)!), out = W.length / n;
  const wc = matmul(W, c, out, n, n);
  const gram = matmul(transpose(wc, out, n), wc, n, n, n); // (W C')ᵀ(W C'), eigenvalues σ²
  const sigmaMax = Math.sqrt(topEigen(gram, n));
  const sigmaMin = Math.sqrt(smallestEigen(gram, n));
  const bOf: Record<string, Float64Array> = {};
  for (const mode of ['ipm', 'kpm']) {
    const model = new AdaptedModel(ckpt);
    const a = model.addAdapter('t', 'lora', { ...options, cordaMode: mode }, { sample });
    const r = 3, s = loraScaling({ alpha: 6, r, useRslora: false });
    const A = a.params.get(`${Q}.lora_A.weight`)!.data, B = a.params.get(`${Q}.lora_B.weight`)!.data;
    bOf[mode] = Float64Array.from(B);
    // σ_q = s·‖B[:, q]‖² since B = U_r·√(S_r/s).
    const sig = [0, 1, 2].map((q) => { let t = 0; for (let i = 0; i < out; i++) t += B[i * r + q]! ** 2; return s * t; });
    if (mode === 'ipm') assert.ok(Math.abs(sig[0]! - sigmaMax) < 1e-4 * sigmaMax, `IPM σ₁ ${sig[0]} vs ${sigmaMax}`);
    else assert.ok(Math.abs(sig[2]! - sigmaMin) < 1e-3 * sigmaMin, `KPM σ_min ${sig[2]} vs ${sigmaMin}`);
    // Projection of W·C' on B's column space, P = B (BᵀB)⁻¹ Bᵀ: BᵀB is diagonal (U's columns orthonormal).
    const btb = matmul(transpose(B, out, r), B, r, out, r);
    for (let p = 0; p < r; p++) for (let q = 0; q < r; q++) if (p !== q) assert.ok(Math.abs(btb[p * r + q]!) < 1e-5 * btb[0]!, 'BᵀB is not diagonal');
    const btwc = matmul(transpose(B, out, r), wc, r, out, n).map((v, k) => v / btb[Math.floor(k / n) * (r + 1)]!);
    const projected = matmul(B, btwc, out, r, n);
    const bac = matmul(matmul(B, A, out, r, n).map((v) => v * s), c, out, n, n);
    // A is stored in float32 and A·C' multiplies its rounding by up to cond(C') (≤ 1 + 100·in with the
    // damping): 1e-4 for IPM's large components, 2e-3 relative for KPM's, whose s·B·A is ~1e-4 of W's scale.
    const tol = mode === 'ipm' ? 1e-4 : 2e-3;
    assert.ok(maxRelErr(bac, projected) < tol, `${mode}: s·B·A·C' vs projection ${maxRelErr(bac, projected)}`);
  }
  // Different components: IPM's and KPM's B columns are (nearly) orthogonal.
  const dot = (x: Float64Array, y: Float64Array, p: number, q: number) => { let t = 0, xx = 0, yy = 0; for (let i = 0; i < out; i++) { t += x[i * 3 + p]! * y[i * 3 + q]!; xx += x[i * 3 + p]! ** 2; yy += y[i * 3 + q]! ** 2; } return Math.abs(t) / Math.sqrt(xx * yy); };
  for (let p = 0; p < 3; p++) for (let q = 0; q < 3; q++) assert.ok(dot(bOf.ipm!, bOf.kpm!, p, q) < 0.01, `IPM column ${p} vs KPM column ${q}`);
});

test('CorDA trained a few steps: the saved plain LoRA of rank 2r on the original base gives the same model', async () => {
  const model = new AdaptedModel(ckpt);
  const a = model.addAdapter('t', 'lora', { ...options }, { sample });
  const before = await forwardLogits(model, ids, 2, 8);
  await trainHero(model, 't', { steps: 3, seq: 16 });
  const trained = await forwardLogits(model, ids, 2, 8);
  assert.ok(maxRelErr(trained, before) > 1e-3, 'training changed nothing');
  const files = savePeft(model, 't');
  const cfg = JSON.parse(files.config);
  assert.is(cfg.r, 6);
  assert.is(cfg.lora_alpha, 12);
  assert.is(cfg.init_lora_weights, true);
  assert.equal(peftConfigErrors(cfg), [], 'PEFT loads the converted config as written');
  const fresh = new AdaptedModel(ckpt);
  const b = loadPeft(fresh, 't', files);
  assert.is(fresh.effectiveCheckpoint().tensors.get(`${Q}.weight`), ckpt.tensors.get(`${Q}.weight`), 'the plain LoRA applies to the original base');
  const eff = model.effectiveCheckpoint();
  for (const m of a.modules) {
    const res = tensorF32(eff.tensors.get(`${m.name}.weight`)!), W = tensorF32(ckpt.tensors.get(`${m.name}.weight`)!);
    const dTrained = loraDelta(a.params, m, a.config as never), dPlain = loraDelta(b.params, m, b.config as never);
    let worst = 0;
    for (let i = 0; i < W.length; i++) worst = Math.max(worst, Math.abs(res[i]! + dTrained[i]! - (W[i]! + dPlain[i]!)));
    assert.ok(worst <= 1e-5, `${m.name}: merged weights differ by ${worst}`);
  }
  assert.ok(maxRelErr(await forwardLogits(fresh, ids, 2, 8), trained) < 1e-4, 'logits of the converted adapter');
});

test('a CorDA adapter is refused where its residual base would be needed: a PEFT folder, a training state', () => {
  const config = { peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj'], init_lora_weights: 'corda' };
  assert.throws(() => loadPeft(new AdaptedModel(ckpt), 'x', { config: JSON.stringify(config), weights: new Uint8Array(8) }), /init_lora_weights "corda" makes the adapter apply to base weights that PEFT rewrote/);
  // Training states restore through fromPeftConfig.
  assert.throws(() => fromPeftLoraConfig(config), /"corda": the residual base comes from a data sample that is not saved/);
});

test.run();
