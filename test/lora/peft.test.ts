// The PEFT folder format for LoRA (src/adapters/peft.ts): file keys `base_model.model.<module>.<param>`,
// the config's fields, and Hugging Face orientation. A GGUF Llama keeps each Q/K head's rows in rotary
// pair order (0, 1, 2, …); Hugging Face in rotate-half order (0, 2, 4, …, 1, 3, 5, …): row i < d/2 of a
// head is pair row 2i, row d/2 + i is pair row 2i + 1 (the inverse of llama.cpp's convert permutation).
// The rows of lora_B and DoRA's magnitude on q_proj/k_proj must be saved in that order, computed here
// independently, and everything else as it is; a Hugging Face–layout copy of the base with the saved
// adapter must give the same logits.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { loadPeft, savePeft } from '../../src/adapters/peft.js';
import { tensorF32, withRopeLayout } from '../../src/formats/checkpoint.js';
import { parseSafetensors, safetensorsTensorToF32, writeSafetensors } from '../../src/formats/safetensors.js';
import { randn } from '../helpers.js';
import { hfLayoutGap, randomizeParams, stories } from '../methods/helpers.js';

const ckpt = await stories();
const { nHeads, nKvHeads, dim } = ckpt.config;
const headDim = dim / nHeads;

/** Rows [rows, cols] of a pair-ordered Q/K tensor in rotate-half order, head by head. */
function toHalfOrder(data: Float32Array, cols: number): Float32Array {
  const out = new Float32Array(data.length), rows = data.length / cols;
  for (let r = 0; r < rows; r++) {
    const h = Math.floor(r / headDim), i = r % headDim;
    const from = h * headDim + (i < headDim / 2 ? 2 * i : 2 * (i - headDim / 2) + 1);
    out.set(data.subarray(from * cols, from * cols + cols), r * cols);
  }
  return out;
}

function saved(files: { weights: Uint8Array }): Map<string, { shape: number[]; data: Float32Array }> {
  const f = parseSafetensors(files.weights);
  // PyTorch's marker, and our provenance under a key of our own (PEFT reads neither).
  assert.is(f.metadata?.format, 'pt');
  for (const k of Object.keys(f.metadata ?? {})) assert.ok(k === 'format' || k === 'adaptkit.base_model', k);
  return new Map(f.tensors.map((t) => [t.name, { shape: [...t.shape], data: safetensorsTensorToF32(f, t) }]));
}

function loraModel(config: Record<string, unknown>, base = ckpt): AdaptedModel {
  const model = new AdaptedModel(base);
  model.addAdapter('t', 'lora', config, { seed: 2 });
  randomizeParams(model, 't', 0.1);
  return model;
}

test('LoRA with DoRA on a GGUF base: every key as PEFT names it, q_proj/k_proj output rows in Hugging Face order, the rest unchanged', () => {
  const model = loraModel({ r: 2, alpha: 4, useDora: true, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], layersToTransform: [0, 3] });
  const files = savePeft(model, 't', { baseModel: 'stories260K' });
  const file = saved(files);
  const params = model.get('t').params;
  assert.equal([...file.keys()].sort(), [...params.keys()].map((k) => `base_model.model.${k}`).sort());
  assert.is(file.size, 2 * 4 * 3);
  let permuted = 0;
  for (const [key, p] of params) {
    const got = file.get(`base_model.model.${key}`)!;
    assert.equal(got.shape, p.shape, key);
    const qk = /\.(q|k)_proj\./.test(key), rowsOut = /\.(lora_B\.weight|lora_magnitude_vector)$/.test(key);
    const heads = key.includes('.q_proj.') ? nHeads : nKvHeads;
    if (qk && rowsOut) {
      assert.is(p.shape[0], heads * headDim, key);
      permuted++;
    }
    const want = qk && rowsOut ? toHalfOrder(p.data, p.data.length / p.shape[0]!) : p.data;
    assert.equal(Array.from(got.data), Array.from(want), key);
    if (qk && rowsOut) assert.not.equal(Array.from(got.data), Array.from(p.data), `${key} should be permuted`);
  }
  assert.is(permuted, 2 * 2 * 2);
  const config = JSON.parse(files.config) as Record<string, unknown>;
  assert.equal([config.peft_type, config.r, config.lora_alpha, config.use_dora, config.base_model_name_or_path, config.revision], ['LORA', 2, 4, true, null, null]);
  // A local name is no Hugging Face id (PEFT would try to fetch it): null; an owner/repo id is written as given.
  assert.is(JSON.parse(savePeft(model, 't').config).base_model_name_or_path, null);
  assert.is(JSON.parse(savePeft(model, 't', { baseModel: 'owner/repo' }).config).base_model_name_or_path, 'owner/repo');
  assert.ok(files.config.endsWith('}\n'));
});

test('a GGUF-base LoRA loads back bit-identically, and in a Hugging Face–layout copy of the base gives the same logits', async () => {
  const model = loraModel({ r: 3, alpha: 6, useDora: true, targetModules: ['q_proj', 'k_proj', 'v_proj'] });
  const files = savePeft(model, 't');
  const back = new AdaptedModel(ckpt);
  loadPeft(back, 't', files);
  for (const [k, p] of model.get('t').params) assert.equal(Array.from(back.get('t').params.get(k)!.data), Array.from(p.data), k);
  const gap = await hfLayoutGap(model, 't');
  assert.ok(gap < 1e-4, `logit gap ${gap}`);
});

test('on a Hugging Face–layout base nothing is permuted', () => {
  const model = loraModel({ r: 2, targetModules: ['q_proj', 'k_proj'] }, withRopeLayout(ckpt, 'half'));
  const file = saved(savePeft(model, 't'));
  for (const [k, p] of model.get('t').params) assert.equal(Array.from(file.get(`base_model.model.${k}`)!.data), Array.from(p.data), k);
});

test('other methods\' oriented tensors: Hydra\'s output columns and prefix tuning\'s own reorientation give the Hugging Face logits', async () => {
  const hydra = new AdaptedModel(ckpt);
  hydra.addAdapter('t', 'hydra', { r: 2, targetModules: ['q_proj', 'k_proj'] }, { seed: 3 });
  randomizeParams(hydra, 't', 0.1);
  assert.ok(await hfLayoutGap(hydra, 't') < 1e-4);
  const prefix = new AdaptedModel(ckpt);
  prefix.addAdapter('p', 'prefix-tuning', { numVirtualTokens: 3 }, { seed: 3 });
  randomizeParams(prefix, 'p', 0.5);
  assert.ok(await hfLayoutGap(prefix, 'p') < 1e-4);
});

test('replaced base tensors: a q_proj base_layer.weight and a modules_to_save k_proj are reordered on a GGUF base (and saved back as read), kept as they are on a Hugging Face–layout one', () => {
  const q = 'model.layers.0.self_attn.q_proj', k = 'model.layers.1.self_attn.k_proj';
  const lora = savePeft(loraModel({ r: 2, targetModules: ['q_proj'], layersToTransform: [0] }), 't');
  const file = parseSafetensors(lora.weights);
  const hf = new Map([[`${q}.weight`, Float32Array.from(randn(dim * dim, 8, 0.1))], [`${k}.weight`, Float32Array.from(randn(nKvHeads * headDim * dim, 9, 0.1))]]);
  const folder = {
    config: JSON.stringify({ ...JSON.parse(lora.config), modules_to_save: [k] }),
    weights: writeSafetensors([
      ...file.tensors.map((t) => [t.name, { shape: [...t.shape], data: safetensorsTensorToF32(file, t) }] as [string, { shape: number[]; data: Float32Array }]),
      [`base_model.model.${q}.base_layer.weight`, { shape: [dim, dim], data: hf.get(`${q}.weight`)! }],
      [`base_model.model.${k}.weight`, { shape: [nKvHeads * headDim, dim], data: hf.get(`${k}.weight`)! }],
    ], {}),
  };
  for (const layout of ['pairs', 'half'] as const) {
    const model = new AdaptedModel(layout === 'half' ? withRopeLayout(ckpt, 'half') : ckpt);
    const a = loadPeft(model, 't', folder);
    for (const [name, data] of hf) {
      const got = tensorF32(a.baseOverrides.get(name)!);
      assert.equal(Array.from(layout === 'half' ? got : toHalfOrder(got, dim)), Array.from(data), `${layout}: ${name}`);
      if (layout === 'pairs') assert.not.equal(Array.from(got), Array.from(data), `${name} should be reordered`);
    }
    const back = saved(savePeft(model, 't'));
    assert.equal(Array.from(back.get(`base_model.model.${q}.base_layer.weight`)!.data), Array.from(hf.get(`${q}.weight`)!), `${layout}: saved base layer`);
    assert.equal(Array.from(back.get(`base_model.model.${k}.weight`)!.data), Array.from(hf.get(`${k}.weight`)!), `${layout}: saved module`);
  }
});

test('a block-level adapter (bottleneck: modules without a weight of their own) loads back', () => {
  const model = new AdaptedModel(ckpt);
  model.addAdapter('b', 'bottleneck', {}, { seed: 3 });
  randomizeParams(model, 'b', 0.5);
  const back = new AdaptedModel(ckpt);
  loadPeft(back, 'b', savePeft(model, 'b'));
  for (const [k, p] of model.get('b').params) assert.equal(Array.from(back.get('b').params.get(k)!.data), Array.from(p.data), k);
});

test('a file whose keys have no base_model.model. prefix (prompt tuning) loads back', () => {
  const model = new AdaptedModel(ckpt);
  model.addAdapter('p', 'prompt-tuning', { numVirtualTokens: 2 }, { seed: 3 });
  randomizeParams(model, 'p', 0.5);
  const files = savePeft(model, 'p');
  assert.ok([...saved(files).keys()].every((k) => !k.startsWith('base_model.')));
  const back = new AdaptedModel(ckpt);
  loadPeft(back, 'p', files);
  for (const [k, p] of model.get('p').params) assert.equal(Array.from(back.get('p').params.get(k)!.data), Array.from(p.data), k);
});

test('a prompt initialised from text loads back (the expected tensors are made with the base\'s tokenizer)', () => {
  const model = new AdaptedModel(ckpt);
  model.addAdapter('p', 'prompt-tuning', { numVirtualTokens: 3, initText: 'Once upon a time' }, { seed: 3 });
  const files = savePeft(model, 'p');
  const back = new AdaptedModel(ckpt);
  loadPeft(back, 'p', files);
  for (const [k, p] of model.get('p').params) assert.equal(Array.from(back.get('p').params.get(k)!.data), Array.from(p.data), k);
});

test('a PEFT config that asks for PiSSA initialisation is refused with the conversion PEFT offers (its factors apply to a rewritten base)', () => {
  const model = loraModel({ r: 2, targetModules: ['v_proj'] });
  const files = savePeft(model, 't');
  const config = { ...JSON.parse(files.config), init_lora_weights: 'pissa' };
  const back = new AdaptedModel(ckpt);
  assert.throws(() => loadPeft(back, 't', { config: JSON.stringify(config), weights: files.weights }), /path_initial_model_for_weight_conversion/);
  assert.is(back.adapters.size, 0);
});

test('bad folders are refused with the file and the tensor named', () => {
  const model = loraModel({ r: 2, targetModules: ['v_proj'], layersToTransform: [0] });
  const good = savePeft(model, 't');
  const load = (config: string, weights = good.weights, source?: string) => () => loadPeft(new AdaptedModel(ckpt), 't', { config, weights }, source);
  assert.throws(load('{oops', good.weights, 'dir'), /^dir\/adapter_config\.json: not valid JSON/);
  assert.throws(load('{oops'), /^adapter\/adapter_config\.json: not valid JSON/);
  assert.throws(load('{"r": 2}'), /adapter\/adapter_config\.json: no peft_type/);
  const A = 'base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight', B = 'base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight';
  const t = (shape: number[]) => ({ shape, data: Float32Array.from(randn(shape.reduce((a, b) => a * b), 1)) });
  const file = (tensors: [string, { shape: number[]; data: Float32Array }][]) => writeSafetensors(tensors, {});
  assert.throws(load(good.config, file([[A, t([2, 64])], [B, t([32, 2])], ['base_model.model.extra', t([1])]])), /adapter\/adapter_model\.safetensors: unexpected tensor base_model\.model\.extra for a lora adapter/);
  assert.throws(load(good.config, file([[A, t([2, 64])], [B, t([32, 3])]])), /adapter_model\.safetensors: base_model\.model\.model\.layers\.0\.self_attn\.v_proj\.lora_B\.weight is \[32, 3\], expected \[32, 2\]/);
  assert.throws(load(good.config, file([[A, t([2, 64])]])), /adapter_model\.safetensors: missing tensor base_model\.model\.model\.layers\.0\.self_attn\.v_proj\.lora_B\.weight/);
  assert.throws(load(good.config, good.weights.subarray(0, 6), 'dir'), /dir\/adapter_model\.safetensors/);
  const tokens = JSON.stringify({ ...JSON.parse(good.config), trainable_token_indices: [3] });
  assert.throws(load(tokens), /missing tensor base_model\.model\.model\.embed_tokens\.token_adapter\.trainable_tokens_delta \(trainable_token_indices\)/);
  assert.not.throws(load(good.config, file([[A, t([2, 64])], [B, t([32, 2])]])));
});

test.run();
