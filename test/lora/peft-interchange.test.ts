// PEFT folders both ways, against PEFT 0.20's own source (re-implemented in peft-rules.ts). Import: folders
// written as save_pretrained writes them load and compute what PEFT computes; the reference is the base
// checkpoint with PEFT's formula applied to the weights by hand in float64 (logits within 1e-4). Export:
// every config this library writes passes PEFT's config validation and selects the same modules in PEFT.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { BASE_MODEL_METADATA, huggingFaceModelId, loadPeft, savePeft } from '../../src/adapters/peft.js';
import { type LlamaCheckpoint, type F32Tensor, type NamedTensor, tensorF32, withRopeLayout } from '../../src/formats/checkpoint.js';
import { parseSafetensors, safetensorsTensorToF32 } from '../../src/formats/safetensors.js';
import { llamaModules } from '../../src/adapters/targets.js';
import { randn } from '../helpers.js';
import { forwardLogits, gradientCheck, randomizeParams, stories } from '../methods/helpers.js';
import { peftConfigErrors, peftFiles, peftLoraConfig, peftTargets } from './peft-rules.js';

// Hugging Face rotary layout, so PEFT's tensors apply to it as they are.
const base = withRopeLayout(await stories(), 'half');
const C = base.config, V = C.vocabSize, D = C.dim;
const allNames = llamaModules(C).map((m) => m.name);
const ids = Int32Array.from({ length: 20 }, (_, i) => [3, 7, 100, 41, 250][i % 5]! + (i > 9 ? i : 0));
const P = 'base_model.model.';
const TOL = 1e-4;
let seed = 1;
const rand = (n: number, scale = 0.1) => Float32Array.from(randn(n, seed++, scale));
const shapeOf = (module: string): [number, number] => { const w = base.tensors.get(`${module}.weight`)!; return [w.shape[0]!, w.shape[1]!]; };

/** A copy of the base with some tensors replaced (and, for a replaced lm_head, untied). */
function edited(change: Record<string, Float32Array>): LlamaCheckpoint {
  const tensors = new Map(base.tensors);
  for (const [k, data] of Object.entries(change)) tensors.set(k, { shape: k === 'lm_head.weight' ? [V, D] : base.tensors.get(k)!.shape, data });
  return { ...base, config: { ...C, tiedEmbeddings: C.tiedEmbeddings && !('lm_head.weight' in change) }, tensors };
}

/** W + s·B·A in float64: W [out, in], A [r, in], B [out, r]. */
function plusLora(W: Float32Array, A: Float32Array, B: Float32Array, out: number, inF: number, s: number): Float32Array {
  const r = A.length / inF, res = new Float32Array(W.length);
  for (let i = 0; i < out; i++) for (let j = 0; j < inF; j++) {
    let d = 0;
    for (let q = 0; q < r; q++) d += B[i * r + q]! * A[q * inF + j]!;
    res[i * inF + j] = W[i * inF + j]! + s * d;
  }
  return res;
}

async function gap(model: AdaptedModel, reference: LlamaCheckpoint): Promise<number> {
  const [a, b] = [await forwardLogits(model, ids, 2, 10), await forwardLogits(new AdaptedModel(reference), ids, 2, 10)];
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
}

/** LoRA tensors as PEFT saves them for `modules`, rank per module; returns them and the merged reference edits. */
function loraTensors(modules: string[], rank: (m: string) => number, scale: (m: string) => number) {
  const tensors: Record<string, F32Tensor> = {}, merged: Record<string, Float32Array> = {};
  for (const m of modules) {
    const [out, inF] = shapeOf(m), r = rank(m);
    const A = rand(r * inF), B = rand(out * r);
    tensors[`${P}${m}.lora_A.weight`] = { shape: [r, inF], data: A };
    tensors[`${P}${m}.lora_B.weight`] = { shape: [out, r], data: B };
    merged[`${m}.weight`] = plusLora(tensorF32(base.tensors.get(`${m}.weight`)!), A, B, out, inF, scale(m));
  }
  return { tensors, merged };
}

const qv = allNames.filter((n) => /\.(q|v)_proj$/.test(n));

test('import: alpha_pattern and rank_pattern apply per module (get_pattern_key: regex on the name\'s end)', async () => {
  const alpha = (m: string) => (m === 'model.layers.1.self_attn.q_proj' ? 32 : 8), rank = (m: string) => (m.endsWith('v_proj') ? 2 : 4);
  const { tensors, merged } = loraTensors(qv, rank, (m) => alpha(m) / rank(m));
  const cfg = peftLoraConfig({ r: 4, lora_alpha: 8, rank_pattern: { v_proj: 2 }, alpha_pattern: { 'layers\\.1\\.self_attn\\.q_proj': 32 } });
  const model = new AdaptedModel(base);
  loadPeft(model, 'a', peftFiles(cfg, tensors));
  const g = await gap(model, edited(merged));
  assert.ok(g < TOL, `logit gap ${g}`);
  // The pattern matters: with alpha 8 everywhere the reference is clearly different.
  const wrong = { ...merged, 'model.layers.1.self_attn.q_proj.weight': plusLora(tensorF32(base.tensors.get('model.layers.1.self_attn.q_proj.weight')!), tensors[`${P}model.layers.1.self_attn.q_proj.lora_A.weight`]!.data, tensors[`${P}model.layers.1.self_attn.q_proj.lora_B.weight`]!.data, D, D, 2) };
  assert.ok((await gap(model, edited(wrong))) > 1e-3);
  // Saved back with the same patterns, valid for PEFT.
  const out = JSON.parse(savePeft(model, 'a').config);
  assert.equal([out.rank_pattern, out.alpha_pattern], [cfg.rank_pattern, cfg.alpha_pattern]);
  assert.equal(peftConfigErrors(out), []);
});

test('import: exclude_modules (list and regex) leaves those modules alone; PEFT saves no tensors for them', async () => {
  for (const exclude of [['model.layers.2.self_attn.q_proj', 'layers.4.self_attn.v_proj'], 'model\\.layers\\.[34]\\..*']) {
    const cfg = peftLoraConfig({ exclude_modules: exclude });
    const kept = peftTargets(cfg, allNames);
    assert.is(kept.length, Array.isArray(exclude) ? 8 : 6);
    const { tensors, merged } = loraTensors(kept, () => 8, () => 1);
    const model = new AdaptedModel(base);
    const a = loadPeft(model, 'a', peftFiles(cfg, tensors));
    assert.equal(a.modules.map((m) => m.name), kept);
    assert.ok((await gap(model, edited(merged))) < TOL);
    assert.equal(peftConfigErrors(JSON.parse(savePeft(model, 'a').config)), []);
  }
});

test('import: base-changing inits are refused, naming the conversion PEFT offers', () => {
  const { tensors } = loraTensors(qv, () => 8, () => 1);
  for (const init of ['pissa', 'pissa_niter_4', 'olora', 'corda']) {
    assert.throws(() => loadPeft(new AdaptedModel(base), 'a', peftFiles(peftLoraConfig({ init_lora_weights: init }), tensors)),
      (e: Error) => e.message.includes(`"${init}"`) && e.message.includes('path_initial_model_for_weight_conversion'));
  }
  // Inits that only set the starting A and B load as the saved tensors say.
  for (const init of [true, false, 'gaussian', 'eva', 'orthogonal']) loadPeft(new AdaptedModel(base), 'a', peftFiles(peftLoraConfig({ init_lora_weights: init }), tensors));
});

test('import: embed_tokens LoRA with the base_layer.weight PEFT saves beside it (save_embedding_layers), and back', async () => {
  const r = 4, s = 8 / r;
  const A = rand(r * V), B = rand(D * r), E = tensorF32(base.tensors.get('model.embed_tokens.weight')!);
  // A resized-then-trained embedding: the saved base layer is what PEFT loads into the model.
  const E2 = Float32Array.from(E, (v, i) => v + (i % 7 === 0 ? 0.05 : 0));
  const cfg = peftLoraConfig({ r, target_modules: ['embed_tokens'] });
  const files = peftFiles(cfg, {
    [`${P}model.embed_tokens.lora_embedding_A`]: { shape: [r, V], data: A },
    [`${P}model.embed_tokens.lora_embedding_B`]: { shape: [D, r], data: B },
    [`${P}model.embed_tokens.base_layer.weight`]: { shape: [V, D], data: E2 },
  });
  const model = new AdaptedModel(base);
  loadPeft(model, 'a', files);
  // Reference: input embedding E2 + s·(B·A)ᵀ; the tied output layer keeps the saved base layer E2.
  const inEmb = new Float32Array(V * D);
  for (let v = 0; v < V; v++) for (let d = 0; d < D; d++) {
    let x = 0;
    for (let q = 0; q < r; q++) x += B[d * r + q]! * A[q * V + v]!;
    inEmb[v * D + d] = E2[v * D + d]! + s * x;
  }
  assert.ok((await gap(model, edited({ 'model.embed_tokens.weight': inEmb, 'lm_head.weight': E2 }))) < TOL);
  const again = new AdaptedModel(base);
  const saved = savePeft(model, 'a');
  assert.ok(parseSafetensors(saved.weights).tensors.some((t) => t.name === `${P}model.embed_tokens.base_layer.weight`));
  loadPeft(again, 'a', saved);
  assert.ok((await gap(again, edited({ 'model.embed_tokens.weight': inEmb, 'lm_head.weight': E2 }))) < TOL);
});

test('import: modules_to_save replaces whole modules (a tied lm_head, an MLP block) and keeps LoRA off them; saved back', async () => {
  const cfg = peftLoraConfig({ target_modules: ['q_proj', 'down_proj'], modules_to_save: ['lm_head', 'model.layers.4.mlp'] });
  const targets = allNames.filter((n) => /\.(q_proj|down_proj)$/.test(n) && n !== 'model.layers.4.mlp.down_proj');
  const { tensors, merged } = loraTensors(targets, () => 8, () => 1);
  const head = rand(V * D, 0.3);
  tensors[`${P}lm_head.weight`] = { shape: [V, D], data: head };
  merged['lm_head.weight'] = head;
  for (const p of ['gate_proj', 'up_proj', 'down_proj']) {
    const w = base.tensors.get(`model.layers.4.mlp.${p}.weight`)!, data = rand(tensorF32(w).length, 0.2);
    tensors[`${P}model.layers.4.mlp.${p}.weight`] = { shape: w.shape, data };
    merged[`model.layers.4.mlp.${p}.weight`] = data;
  }
  const model = new AdaptedModel(base);
  const a = loadPeft(model, 'a', peftFiles(cfg, tensors));
  assert.equal(a.modules.map((m) => m.name), targets);
  assert.ok((await gap(model, edited(merged))) < TOL);
  const saved = savePeft(model, 'a'), out = JSON.parse(saved.config);
  assert.equal(out.modules_to_save, ['lm_head', 'model.layers.4.mlp']);
  assert.equal(peftConfigErrors(out), []);
  const names = parseSafetensors(saved.weights).tensors.map((t) => t.name).sort();
  assert.equal(names, Object.keys(tensors).sort());
  const again = new AdaptedModel(base);
  loadPeft(again, 'a', saved);
  assert.ok((await gap(again, edited(merged))) < TOL);
  // A missing replaced module is an error that names it.
  delete tensors[`${P}lm_head.weight`];
  assert.throws(() => loadPeft(new AdaptedModel(base), 'a', peftFiles(cfg, tensors)), /missing tensor base_model\.model\.lm_head\.weight \(modules_to_save\)/);
});

test('import: modules_to_save on a GGUF-loaded model (rotary pairs): saved Q/K rows in Hugging Face order are reordered', async () => {
  const pairs = await stories();
  // The saved block is the model's own layer-0 attention as PEFT holds it (rotate-half rows), beside a LoRA on layer 3.
  const { tensors, merged } = loraTensors(['model.layers.3.self_attn.v_proj'], () => 8, () => 1);
  for (const p of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) tensors[`${P}model.layers.0.self_attn.${p}.weight`] = { shape: base.tensors.get(`model.layers.0.self_attn.${p}.weight`)!.shape, data: tensorF32(base.tensors.get(`model.layers.0.self_attn.${p}.weight`)!) };
  const model = new AdaptedModel(pairs);
  loadPeft(model, 'a', peftFiles(peftLoraConfig({ target_modules: ['v_proj'], layers_to_transform: [3], modules_to_save: ['layers.0.self_attn'] }), tensors));
  const reference = new AdaptedModel({ ...pairs, tensors: new Map([...pairs.tensors, ['model.layers.3.self_attn.v_proj.weight', { shape: pairs.tensors.get('model.layers.3.self_attn.v_proj.weight')!.shape, data: merged['model.layers.3.self_attn.v_proj.weight']! }]]) });
  const [x, y] = [await forwardLogits(model, ids, 2, 10), await forwardLogits(reference, ids, 2, 10)];
  assert.ok(x.every((v, i) => Math.abs(v - y[i]!) < TOL));
  // Saved back in Hugging Face order: the file's block equals what was loaded.
  const back = parseSafetensors(savePeft(model, 'a').weights);
  const q = back.tensors.find((t) => t.name === `${P}model.layers.0.self_attn.q_proj.weight`)!;
  assert.equal([...safetensorsTensorToF32(back, q)], [...tensorF32(base.tensors.get('model.layers.0.self_attn.q_proj.weight')!)]);
});

test('import: trainable_token_indices replaces those embedding rows (the tied output layer follows); saved back', async () => {
  const rows = [3, 7, 100], delta = rand(rows.length * D, 0.5);
  const cfg = peftLoraConfig({ trainable_token_indices: rows });
  const { tensors, merged } = loraTensors(qv, () => 8, () => 1);
  tensors[`${P}model.embed_tokens.token_adapter.trainable_tokens_delta`] = { shape: [3, D], data: delta };
  const E = Float32Array.from(tensorF32(base.tensors.get('model.embed_tokens.weight')!));
  rows.forEach((row, i) => E.set(delta.subarray(i * D, i * D + D), row * D));
  merged['model.embed_tokens.weight'] = E;
  const model = new AdaptedModel(base);
  loadPeft(model, 'a', peftFiles(cfg, tensors));
  assert.ok((await gap(model, edited(merged))) < TOL);
  const saved = savePeft(model, 'a');
  assert.equal(JSON.parse(saved.config).trainable_token_indices, rows);
  const again = new AdaptedModel(base);
  loadPeft(again, 'a', saved);
  assert.ok((await gap(again, edited(merged))) < TOL);
  // The dict form names the embedding module (matched by the end of its name).
  const byName = new AdaptedModel(base);
  loadPeft(byName, 'a', peftFiles(peftLoraConfig({ trainable_token_indices: { embed_tokens: rows } }), tensors));
  assert.ok((await gap(byName, edited(merged))) < TOL);
  assert.throws(() => loadPeft(new AdaptedModel(base), 'a', peftFiles(peftLoraConfig({ trainable_token_indices: [V] }), tensors)), /trainable_token_indices .* must be token ids in \[0, 512\)/);
});

test('DoRA on embed_tokens is PEFT\'s DoraEmbeddingLayer: magnitude per dimension over E + ΔE\'s columns', async () => {
  const r = 4, s = 8 / r, mag = Float32Array.from(rand(D, 0.5), (v) => 1 + v);
  const A = rand(r * V), B = rand(D * r), E = tensorF32(base.tensors.get('model.embed_tokens.weight')!);
  const cfg = peftLoraConfig({ r, target_modules: ['embed_tokens'], use_dora: true });
  const model = new AdaptedModel(base);
  loadPeft(model, 'a', peftFiles(cfg, {
    [`${P}model.embed_tokens.lora_embedding_A`]: { shape: [r, V], data: A },
    [`${P}model.embed_tokens.lora_embedding_B`]: { shape: [D, r], data: B },
    [`${P}model.embed_tokens.lora_magnitude_vector`]: { shape: [D], data: mag },
  }));
  // variants.py DoraEmbeddingVariant.forward: mag_norm_scale * base + mag_norm_scale * s·(A[ids] @ B), the
  // norm over (E + s·(B·A)ᵀ)'s columns; the tied output layer keeps E.
  const sum = new Float64Array(V * D), norm = new Float64Array(D);
  for (let v = 0; v < V; v++) for (let d = 0; d < D; d++) {
    let x = 0;
    for (let q = 0; q < r; q++) x += B[d * r + q]! * A[q * V + v]!;
    sum[v * D + d] = E[v * D + d]! + s * x;
    norm[d]! += sum[v * D + d]! ** 2;
  }
  const emb = Float32Array.from(sum, (x, i) => x * mag[i % D]! / Math.sqrt(norm[i % D]!));
  assert.ok((await gap(model, edited({ 'model.embed_tokens.weight': emb, 'lm_head.weight': E }))) < TOL);
  // A fresh DoRA embedding adapter starts at the base; its gradients match finite differences; it saves as PEFT expects.
  const fresh = new AdaptedModel(base);
  fresh.addAdapter('d', 'lora', { targetModules: ['embed_tokens'], useDora: true, r: 2 });
  assert.ok((await gap(fresh, base)) < 1e-5);
  randomizeParams(fresh, 'd', 0.2, (k) => k.endsWith('magnitude_vector'));
  // The norm is detached (DoRA §4.3), so only the magnitude's gradient is the full derivative finite differences see.
  const { worst, keys } = await gradientCheck(fresh, 'd', { probe: (k) => k.endsWith('lora_magnitude_vector') });
  assert.ok(keys.some((k) => k.endsWith('lora_magnitude_vector')), keys.join());
  assert.ok(worst < 1e-6, `relative error ${worst}`);
  const saved = savePeft(fresh, 'd');
  assert.equal(peftConfigErrors(JSON.parse(saved.config)), []);
  assert.equal(parseSafetensors(saved.weights).tensors.find((t) => t.name.endsWith('lora_magnitude_vector'))?.shape, [D]);
});

test('export: prompt tuning with a text init names the tokenizer when the model has a Hub id, else writes RANDOM', async () => {
  const model = new AdaptedModel(base);
  model.addAdapter('p', 'prompt-tuning', { numVirtualTokens: 4, initText: 'Once upon a time' });
  const local = JSON.parse(savePeft(model, 'p', { baseModel: base.source }).config);
  assert.equal(peftConfigErrors(local), []);
  assert.is(local.prompt_tuning_init, 'RANDOM');
  const hub = JSON.parse(savePeft(model, 'p', { baseModel: 'hf:owner/stories260K' }).config);
  assert.equal(peftConfigErrors(hub), []);
  assert.equal([hub.prompt_tuning_init, hub.tokenizer_name_or_path, hub.prompt_tuning_init_text], ['TEXT', 'owner/stories260K', 'Once upon a time']);
  const again = new AdaptedModel(base);
  loadPeft(again, 'p', savePeft(model, 'p', { baseModel: base.source }));
  assert.equal([...again.get('p').params.values()].map((t) => [...t.data]), [...model.get('p').params.values()].map((t) => [...t.data]));
});

test('export: a regex target with layers_to_transform is written as the selected names; PEFT selects the same modules', async () => {
  for (const method of ['lora', 'adalora'] as const) {
    const model = new AdaptedModel(base);
    const a = model.addAdapter('a', method, { targetModules: 're:.*\\.(q|v)_proj', layersToTransform: '1,3' });
    randomizeParams(model, 'a');
    const saved = savePeft(model, 'a'), cfg = JSON.parse(saved.config);
    assert.equal(peftConfigErrors(cfg), [], method);
    assert.equal(peftTargets(cfg, allNames), a.modules.map((m) => m.name));
    const again = new AdaptedModel(base);
    loadPeft(again, 'a', saved);
    const [x, y] = [await forwardLogits(model, ids, 2, 10), await forwardLogits(again, ids, 2, 10)];
    assert.ok(x.every((v, i) => Math.abs(v - y[i]!) < 1e-6));
  }
});

test('export: an untrained AdaLoRA passes PEFT\'s checks (total_step set, r left at 8, init_r the rank)', () => {
  const model = new AdaptedModel(base);
  model.addAdapter('a', 'adalora', { initR: 6, targetR: 4, tinit: 3, tfinal: 2 });
  const cfg = JSON.parse(savePeft(model, 'a').config);
  assert.equal(peftConfigErrors(cfg), []);
  assert.equal([cfg.r, cfg.init_r, cfg.total_step], [8, 6, 6]);
  loadPeft(new AdaptedModel(base), 'a', savePeft(model, 'a'));
});

test('export: (IA)³ with layers_to_transform writes full module names, which PEFT selects exactly', async () => {
  const model = new AdaptedModel(base);
  const a = model.addAdapter('i', 'ia3', { layersToTransform: '0,2' });
  randomizeParams(model, 'i', 0.3);
  const saved = savePeft(model, 'i'), cfg = JSON.parse(saved.config);
  assert.equal(peftConfigErrors(cfg), []);
  assert.not.ok('layers_to_transform' in cfg);
  assert.equal(peftTargets(cfg, allNames), a.modules.map((m) => m.name));
  assert.equal(cfg.feedforward_modules, ['model.layers.0.mlp.down_proj', 'model.layers.2.mlp.down_proj']);
  const again = new AdaptedModel(base);
  loadPeft(again, 'i', saved);
  const [x, y] = [await forwardLogits(model, ids, 2, 10), await forwardLogits(again, ids, 2, 10)];
  assert.ok(x.every((v, i) => Math.abs(v - y[i]!) < 1e-6));
});

test('export: base_model_name_or_path is a Hub id or null; the model argument is kept in the safetensors metadata', () => {
  const model = new AdaptedModel(base);
  model.addAdapter('a', 'lora', {});
  const local = savePeft(model, 'a', { baseModel: base.source });
  assert.is(JSON.parse(local.config).base_model_name_or_path, null);
  assert.is(parseSafetensors(local.weights).metadata?.[BASE_MODEL_METADATA], base.source);
  assert.is(JSON.parse(savePeft(model, 'a', { baseModel: 'owner/repo/model-f16.gguf' }).config).base_model_name_or_path, 'owner/repo');
  assert.equal(
    ['hf:a/b', 'https://huggingface.co/a/b/resolve/main/m.gguf', './a/b', '/x/y.gguf', 'models/x.gguf', 'https://example.com/a/b', 'C:\\m\\x'].map((s) => huggingFaceModelId(s)),
    ['a/b', 'a/b', null, null, null, null, null],
  );
});

test('export: every PEFT method\'s config as this library writes it passes PEFT\'s validation', () => {
  const cases: [string, Record<string, unknown>][] = [
    ['lora', {}], ['lora', { useDora: true, useRslora: true, targetModules: 'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj' }],
    ['lora', { init: 'gaussian', targetModules: 're:.*mlp.*' }], ['lora', { excludeModules: 'model.layers.0.self_attn.q_proj' }],
    ['adalora', {}], ['ia3', {}], ['ia3', { targetModules: 'v_proj,down_proj', excludeModules: 're:.*layers\\.1\\..*' }], ['prompt-tuning', {}],
  ];
  for (const [method, cfg] of cases) {
    const model = new AdaptedModel(base);
    model.addAdapter('a', method, cfg);
    const json = JSON.parse(savePeft(model, 'a', { baseModel: base.source }).config);
    assert.equal(peftConfigErrors(json), [], `${method} ${JSON.stringify(cfg)}`);
  }
});

test.run();
