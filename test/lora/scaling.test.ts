// LoRA's scaling against the papers' equations, computed here by hand from the adapter's raw tensors:
// LoRA (Hu et al. 2021, eq. 3) W' = W + s·B·A with s = alpha/r, rsLoRA (Kalajdzievski 2023) s = alpha/√r,
// DoRA (Liu et al. 2024, eq. 5) W' = m ⊙ (W + s·B·A)/‖W + s·B·A‖_rows, LoRA on an embedding
// E' = E + s·(B·A)ᵀ, and PiSSA (Meng et al. 2024) A, B from W's singular triplets with W = W_res + s·B·A.
// The adapted model's logits (unmerged, and merged) must equal those of a plain model whose weights are
// W' (float32 forward, tolerance 1e-4 relative to the largest logit; the adapters move them by far more).
// With per-module ranks and alphas (PEFT's rank_pattern, alpha_pattern) each module uses its own scaling.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { loraScaling } from '../../src/adapters/lora/config.js';
import { loadPeft, savePeft } from '../../src/adapters/peft.js';
import { type LlamaCheckpoint, tensorF32 } from '../../src/formats/checkpoint.js';
import { maxRelErr, randn } from '../helpers.js';
import { forwardLogits, stories } from '../methods/helpers.js';

const ckpt = await stories();
const V = ckpt.config.vocabSize;
const ids = Int32Array.from({ length: 8 }, (_, i) => (i * 37 + 5) % V);
const TOL = 1e-4;

/** The same base model with some weights replaced. */
function withWeights(base: LlamaCheckpoint, weights: Map<string, Float64Array | Float32Array>): LlamaCheckpoint {
  const tensors = new Map(base.tensors);
  for (const [k, w] of weights) tensors.set(k, { shape: base.tensors.get(k)!.shape, data: Float32Array.from(w) });
  return { ...base, tensors };
}

/** W + s·B·A in float64, W [out, in], A [r, in], B [out, r]. */
function plusBA(W: ArrayLike<number>, A: ArrayLike<number>, B: ArrayLike<number>, out: number, inF: number, s: number): Float64Array {
  const r = A.length / inF, res = Float64Array.from(W);
  for (let i = 0; i < out; i++) for (let j = 0; j < inF; j++) {
    let d = 0;
    for (let q = 0; q < r; q++) d += B[i * r + q]! * A[q * inF + j]!;
    res[i * inF + j]! += s * d;
  }
  return res;
}

const TARGETS = ['model.layers.0.self_attn.q_proj', 'model.layers.2.self_attn.v_proj', 'model.layers.4.mlp.down_proj'];
const tensor = (m: AdaptedModel, key: string) => m.get('t').params.get(key)!.data;

/** stories260K with random q/k/v biases (as Qwen2 has): DoRA must scale W·x, not the bias. */
function withQkvBias(base: LlamaCheckpoint): LlamaCheckpoint {
  const tensors = new Map(base.tensors);
  let k = 0;
  for (let l = 0; l < base.config.nLayers; l++) for (const p of ['q_proj', 'k_proj', 'v_proj']) {
    const rows = base.tensors.get(`model.layers.${l}.self_attn.${p}.weight`)!.shape[0]!;
    tensors.set(`model.layers.${l}.self_attn.${p}.bias`, { shape: [rows], data: Float32Array.from(randn(rows, 70 + k++, 0.2)) });
  }
  return { ...base, config: { ...base.config, qkvBias: true }, tensors };
}

/** A LoRA adapter on TARGETS with every factor random (B would start at zero). */
function adapted(config: Record<string, unknown>, base = ckpt): AdaptedModel {
  const model = new AdaptedModel(base);
  model.addAdapter('t', 'lora', { targetModules: TARGETS, ...config }, { seed: 5 });
  assert.equal(model.get('t').modules.map((m) => m.name), TARGETS);
  let k = 0;
  for (const [key, p] of model.get('t').params) if (!key.endsWith('lora_magnitude_vector')) p.data.set(randn(p.data.length, 40 + k++, 0.1));
  return model;
}

/** W' of every target by the LoRA (and DoRA) equations with scaling s. */
function byHand(model: AdaptedModel, s: number, dora: boolean): Map<string, Float64Array> {
  const out = new Map<string, Float64Array>();
  for (const name of TARGETS) {
    const W = model.base.tensors.get(`${name}.weight`)!;
    const [o, i] = W.shape as [number, number];
    const merged = plusBA(tensorF32(W), tensor(model, `${name}.lora_A.weight`), tensor(model, `${name}.lora_B.weight`), o, i, s);
    if (dora) {
      const m = tensor(model, `${name}.lora_magnitude_vector`);
      for (let row = 0; row < o; row++) {
        const norm = Math.hypot(...merged.subarray(row * i, row * i + i));
        for (let j = 0; j < i; j++) merged[row * i + j] = (merged[row * i + j]! * m[row]!) / norm;
      }
    }
    out.set(`${name}.weight`, merged);
  }
  return out;
}

async function expectLogitsOf(model: AdaptedModel, weights: Map<string, Float64Array>, what: string): Promise<void> {
  const want = await forwardLogits(new AdaptedModel(withWeights(model.base, weights)), ids, 1, 8);
  const unmerged = await forwardLogits(model, ids, 1, 8);
  assert.ok(maxRelErr(unmerged, want) < TOL, `${what}, unmerged: ${maxRelErr(unmerged, want)}`);
  const base = await forwardLogits(new AdaptedModel(model.base), ids, 1, 8);
  assert.ok(maxRelErr(unmerged, base) > 100 * TOL, `${what}: the adapter hardly changes the logits (${maxRelErr(unmerged, base)})`);
  model.merge('t');
  const eff = model.effectiveCheckpoint();
  for (const [k, w] of weights) assert.ok(maxRelErr(tensorF32(eff.tensors.get(k)!), w) < 1e-6, `${what}: merged ${k}`);
  const merged = await forwardLogits(model, ids, 1, 8);
  assert.ok(maxRelErr(merged, want) < TOL, `${what}, merged: ${maxRelErr(merged, want)}`);
  model.unmerge('t');
}

test('the scaling is alpha/r, or alpha/√r with rsLoRA', () => {
  assert.is(loraScaling({ r: 4, alpha: 12, useRslora: false }), 3);
  assert.is(loraScaling({ r: 4, alpha: 12, useRslora: true }), 6);
  assert.is(loraScaling({ r: 16, alpha: 8, useRslora: true }), 2);
  assert.is(loraScaling({ r: 16, alpha: 8, useRslora: false }), 0.5);
});

test('LoRA r=4 alpha=12: logits of W + 3·B·A, unmerged and merged; saved as it is', async () => {
  const model = adapted({ r: 4, alpha: 12 });
  await expectLogitsOf(model, byHand(model, 3, false), 'LoRA');
  const cfg = JSON.parse(savePeft(model, 't').config) as { r: number; lora_alpha: number };
  assert.equal([cfg.r, cfg.lora_alpha], [4, 12]);
});

test('rsLoRA r=4 alpha=12: logits of W + 6·B·A, unmerged and merged', async () => {
  const model = adapted({ r: 4, alpha: 12, useRslora: true });
  await expectLogitsOf(model, byHand(model, 6, false), 'rsLoRA');
});

test('DoRA r=2 alpha=5 with a random magnitude on a base with q/k/v biases: logits of m ⊙ (W + 2.5·B·A)/‖rows‖ (+ bias), unmerged and merged', async () => {
  const model = adapted({ r: 2, alpha: 5, useDora: true }, withQkvBias(ckpt));
  for (const name of TARGETS) {
    const m = tensor(model, `${name}.lora_magnitude_vector`);
    m.set(Array.from(m, (x, i) => x * (0.5 + ((i * 7) % 11) / 10)));
  }
  await expectLogitsOf(model, byHand(model, 2.5, true), 'DoRA');
});

for (const useDora of [false, true]) {
  test(`${useDora ? 'DoRA' : 'LoRA'} on the embedding r=3 alpha=6: rows of E + 2·(B·A)ᵀ${useDora ? ', each column d scaled to m_d/‖column‖' : ''} (output head left as it was)`, async () => {
    // stories260K ties its output head to the embedding; untie it so that only the lookup changes.
    const E = ckpt.tensors.get('model.embed_tokens.weight')!;
    const untied: LlamaCheckpoint = { ...ckpt, config: { ...ckpt.config, tiedEmbeddings: false }, tensors: new Map([...ckpt.tensors, ['lm_head.weight', E]]) };
    const model = new AdaptedModel(untied);
    model.addAdapter('t', 'lora', { r: 3, alpha: 6, useDora, targetModules: ['embed_tokens'] }, { seed: 5 });
    const p = model.get('t').params;
    const eA = p.get('model.embed_tokens.lora_embedding_A')!.data, eB = p.get('model.embed_tokens.lora_embedding_B')!.data;
    eA.set(randn(eA.length, 1, 0.3));
    const [, D] = E.shape as [number, number];
    // ΔE [V, D] = 2·(B [D, r] · A [r, V])ᵀ.
    const dEt = plusBA(new Float64Array(D * V), eA, eB, D, V, 2);
    const want = Float64Array.from(tensorF32(E), (x, k) => x + dEt[(k % D) * V + Math.floor(k / D)]!);
    if (useDora) {
      // PEFT's DoraEmbeddingLayer: the magnitude is per embedding dimension, over E + ΔE's columns.
      const m = p.get('model.embed_tokens.lora_magnitude_vector')!.data;
      m.set(Array.from({ length: D }, (_, d) => 0.5 + ((d * 7) % 11) / 10));
      for (let d = 0; d < D; d++) {
        let s2 = 0;
        for (let v = 0; v < V; v++) s2 += want[v * D + d]! ** 2;
        for (let v = 0; v < V; v++) want[v * D + d] = (want[v * D + d]! * m[d]!) / Math.sqrt(s2);
      }
    }
    const got = await forwardLogits(model, ids, 1, 8);
    const ref = await forwardLogits(new AdaptedModel(withWeights(untied, new Map([['model.embed_tokens.weight', want]]))), ids, 1, 8);
    assert.ok(maxRelErr(got, ref) < TOL, `embedding ${useDora ? 'DoRA' : 'LoRA'}: ${maxRelErr(got, ref)}`);
    assert.ok(maxRelErr(got, await forwardLogits(new AdaptedModel(untied), ids, 1, 8)) > 100 * TOL);
  });
}

for (const useRslora of [false, true]) {
  const scaling = (alpha: number, r: number) => (useRslora ? alpha / Math.sqrt(r) : alpha / r);
  test(`PiSSA r=2 alpha=8${useRslora ? ' rsLoRA' : ''}, alpha 2 on v_proj: W = W_res + s·B·A with B, A from singular triplets (W·Aᵀ = s·B·diag(A·Aᵀ)), s the module's own`, async () => {
    const model = new AdaptedModel(ckpt);
    model.addAdapter('t', 'lora', { r: 2, alpha: 8, useRslora, init: 'pissa', targetModules: ['v_proj', 'q_proj'], layersToTransform: [1], alphaByModule: { v_proj: 2 } }, { seed: 5 });
    const eff = model.effectiveCheckpoint();
    for (const [name, s] of [['model.layers.1.self_attn.v_proj', scaling(2, 2)], ['model.layers.1.self_attn.q_proj', scaling(8, 2)]] as const) {
      const W = ckpt.tensors.get(`${name}.weight`)!, [o, i] = W.shape as [number, number];
      const A = tensor(model, `${name}.lora_A.weight`), B = tensor(model, `${name}.lora_B.weight`);
      const res = tensorF32(eff.tensors.get(`${name}.weight`)!);
      assert.ok(maxRelErr(plusBA(res, A, B, o, i, s), tensorF32(W)) < 1e-6, `${name}: W_res + s·B·A is not W`);
      // A = √(σ/s)·vᵀ and B = √(σ/s)·u: rows of A orthogonal with A·Aᵀ = diag(σ/s) = Bᵀ·B, and W·v = σ·u.
      const dot = (x: ArrayLike<number>, xo: number, y: ArrayLike<number>, yo: number, n: number, step = 1, ystep = 1) => { let d = 0; for (let k = 0; k < n; k++) d += x[xo + k * step]! * y[yo + k * ystep]!; return d; };
      const aa = [0, 1].map((q) => dot(A, q * i, A, q * i, i));
      assert.ok(Math.abs(dot(A, 0, A, i, i)) < 1e-4 * aa[0]!, 'rows of A are not orthogonal');
      for (const q of [0, 1]) {
        assert.ok(Math.abs(dot(B, q, B, q, o, 2, 2) - aa[q]!) < 1e-4 * aa[q]!, `column ${q}: Bᵀ·B ≠ A·Aᵀ`);
        for (let row = 0; row < o; row++) {
          const wa = dot(tensorF32(W), row * i, A, q * i, i);
          assert.ok(Math.abs(wa - s * B[row * 2 + q]! * aa[q]!) < 1e-4 * s * aa[q]! * aa[q]!, `${name} row ${row}: W·Aᵀ ≠ s·B·diag(A·Aᵀ)`);
        }
      }
      assert.ok(aa[0]! >= aa[1]!, 'singular values are not in decreasing order');
    }
  });

  // With rsLoRA also a per-module rank and alpha on q_proj (PEFT's rank_pattern, alpha_pattern), doubled likewise.
  const patterns = useRslora ? { rankByModule: { q_proj: 3 }, alphaByModule: { q_proj: 5 } } : {};
  test(`PiSSA${useRslora ? ' rsLoRA with a per-module rank and alpha' : ''} saved after training loads as a plain LoRA of rank 2r with the same scaling and logits`, async () => {
    const model = new AdaptedModel(ckpt);
    model.addAdapter('t', 'lora', { r: 2, alpha: 8, useRslora, init: 'pissa', targetModules: ['v_proj', 'q_proj'], ...patterns }, { seed: 5 });
    for (const [, p] of model.get('t').params) p.data.set(Array.from(p.data, (x, k) => x * (1 + 0.3 * Math.sin(k))));
    const files = savePeft(model, 't');
    const cfg = JSON.parse(files.config) as { r: number; lora_alpha: number; use_rslora: boolean; init_lora_weights: unknown; rank_pattern: Record<string, number>; alpha_pattern: Record<string, number> };
    assert.equal([cfg.r, cfg.use_rslora, cfg.init_lora_weights, cfg.rank_pattern], [4, useRslora, true, useRslora ? { q_proj: 6 } : {}]);
    assert.equal(Object.keys(cfg.alpha_pattern), useRslora ? ['q_proj'] : []);
    assert.ok(Math.abs(loraScaling({ r: cfg.r, alpha: cfg.lora_alpha, useRslora }) - scaling(8, 2)) < 1e-12, `saved scaling alpha ${cfg.lora_alpha} / r ${cfg.r}`);
    if (useRslora) assert.ok(Math.abs(loraScaling({ r: 6, alpha: cfg.alpha_pattern.q_proj!, useRslora }) - scaling(5, 3)) < 1e-12, `saved q_proj scaling alpha ${cfg.alpha_pattern.q_proj} / r 6`);
    const fresh = new AdaptedModel(ckpt);
    loadPeft(fresh, 't', files);
    const [a, b] = [await forwardLogits(model, ids, 1, 8), await forwardLogits(fresh, ids, 1, 8)];
    assert.ok(maxRelErr(b, a) < TOL, `reloaded PiSSA: ${maxRelErr(b, a)}`);
    assert.ok(maxRelErr(a, await forwardLogits(new AdaptedModel(ckpt), ids, 1, 8)) > 100 * TOL, 'training changed nothing');
  });
}

test('errors: a rank above the matrix size for PiSSA (the size itself is allowed), missing factors, saving PiSSA with DoRA', () => {
  assert.throws(() => new AdaptedModel(ckpt).addAdapter('t', 'lora', { r: 33, init: 'pissa', targetModules: ['v_proj'], layersToTransform: [0] }), /lora: rank 33 exceeds model\.layers\.0\.self_attn\.v_proj's smaller dimension 32/);
  assert.not.throws(() => new AdaptedModel(ckpt).addAdapter('t', 'lora', { r: 32, init: 'pissa', targetModules: ['v_proj'], layersToTransform: [0] }));
  for (const missing of ['lora_A', 'lora_B']) {
    const model = adapted({ r: 2 });
    model.get('t').params.delete(`model.layers.2.self_attn.v_proj.${missing}.weight`);
    model.merge('t');
    assert.throws(() => model.effectiveCheckpoint(), /LoRA parameters for model\.layers\.2\.self_attn\.v_proj are missing/, missing);
  }
  const dora = new AdaptedModel(ckpt);
  dora.addAdapter('t', 'lora', { r: 2, init: 'pissa', useDora: true, targetModules: ['v_proj'] });
  assert.throws(() => savePeft(dora, 't'), /saving a PiSSA-initialised DoRA adapter is not supported/);
});

test.run();
