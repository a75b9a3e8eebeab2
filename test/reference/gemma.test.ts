// Gemma decoders (`model_type` gemma, gemma2, gemma3_text): small random models written in Hugging Face layout
// (config.json as Hugging Face writes it + model.safetensors) against the independent float64 PyTorch forward of
// test/reference/gemma_ref.py, written from Hugging Face's modeling equations: (1 + w) norms, √hidden embedding
// scale, GeGLU, block output norms, query_pre_attn_scalar, attention and final logit soft-capping, sliding
// windows shorter than the sequences on some layers, Gemma 3's per-head q/k norms, local rotary base on sliding
// layers and linear rope scaling on global ones. Logits within 1e-9
// absolute on float64 js, within 1e-4 absolute on float32 js, wasm and webgpu; greedy ids (KV-cache decoding)
// equal to the reference's; the same with a trained LoRA adapter on all seven projections, saved as PEFT.
import { mkdirSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { attachPhatgoose } from '../../src/adapters/phatgoose/inventory.js';
import type { Backend } from '../../src/backends/backend.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { configHeadDim, type LlamaCheckpoint, type LlamaConfig, loadCheckpoint, tensorF32, validateCheckpoint } from '../../src/formats/checkpoint.js';
import { gguf, writeGguf } from '../../src/formats/gguf.js';
import { checkpointToGguf } from '../../src/formats/gguf-llama.js';
import { hfModelConfig } from '../../src/formats/hf.js';
import { loadCheckpointFile } from '../../src/formats/node-fs.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { Graph } from '../../src/graph/graph.js';
import { buildModel, familyOf } from '../../src/model/families.js';
import { gemmaHfConfigJson } from '../../src/model/gemma.js';
import { hostKeyValues } from '../../src/model/host-forward.js';
import { uploadWeights } from '../../src/model/runtime.js';
import { syntheticCheckpoint } from '../../src/model/synthetic.js';
import { Session } from '../../src/scheduler/session.js';
import { fineTune } from '../../src/train/finetune.js';
import { seededRandom } from '../../src/util/random.js';
import { hfConfigJson, writeModel } from '../../src/cli/write-model.js';
import { ChatTemplate } from '../../src/tokenizer/chat-template.js';
import { methodNames } from '../../src/adapters/registry.js';
import { otherBackends } from '../backends/backends.js';
import { logitsF64, maxGap } from './ours.js';
import { readF64, requireTorch, runReference, savePeftFolder } from './python.js';

const B = 2, T = 6;
const COMMON = {
  hidden_size: 32, intermediate_size: 48, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, vocab_size: 24,
  max_position_embeddings: 64, rms_norm_eps: 1e-6, hidden_activation: 'gelu_pytorch_tanh', tie_word_embeddings: true,
};
/** Gemma 2: even layers slide (window 3, shorter than the sequences), query_pre_attn_scalar ≠ head_dim, soft-caps that bite. */
const GEMMA2 = {
  ...COMMON, model_type: 'gemma2', architectures: ['Gemma2ForCausalLM'], num_hidden_layers: 2, rope_theta: 1000,
  query_pre_attn_scalar: 24, attn_logit_softcapping: 1.5, final_logit_softcapping: 2.5, sliding_window: 3,
};
/** Gemma 3: layers 0 and 2 slide (pattern 2, window 3), local rotary base 100, global 1e5 with linear scaling ×4. */
const GEMMA3 = {
  ...COMMON, model_type: 'gemma3_text', architectures: ['Gemma3ForCausalLM'], num_hidden_layers: 3, rope_theta: 100000,
  rope_local_base_freq: 100, rope_scaling: { rope_type: 'linear', factor: 4 }, query_pre_attn_scalar: 12,
  attn_logit_softcapping: null, final_logit_softcapping: null, sliding_window: 3, sliding_window_pattern: 2,
};
/** Gemma 1: Llama-shaped blocks with Gemma's norms, embedding scale and GeGLU. */
const GEMMA1 = { ...COMMON, model_type: 'gemma', architectures: ['GemmaForCausalLM'], num_hidden_layers: 2, rope_theta: 1000 };

const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 5 + 1) % COMMON.vocab_size);
const rows = [Array.from(ids.subarray(0, T)), Array.from(ids.subarray(T))];
const prompt = [3, 9, 4];
const dir = mkdtempSync(join(tmpdir(), 'adaptkit-gemma-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** Random weights; norm offsets away from 0 so that a norm read as w instead of 1 + w shows. */
function randomModel(json: Record<string, unknown>, seed: number): LlamaCheckpoint {
  const ckpt = syntheticCheckpoint(hfModelConfig(json), { seed, scale: 0.6 });
  const r = seededRandom(seed + 100);
  for (const [k, t] of ckpt.tensors) {
    if (k.endsWith('norm.weight')) ckpt.tensors.set(k, { shape: t.shape, data: Float32Array.from({ length: t.shape[0]! }, () => (r() - 0.5) * 0.8) });
  }
  return ckpt;
}

function writeFolder(ckpt: LlamaCheckpoint, json: Record<string, unknown>, name: string): string {
  const folder = join(dir, name);
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'model.safetensors'), writeSafetensors([...ckpt.tensors].map(([k, t]) => [k, { shape: t.shape, data: tensorF32(t) }] as [string, { shape: number[]; data: Float32Array }])));
  writeFileSync(join(folder, 'config.json'), JSON.stringify(json));
  return folder;
}

/** Blocks that repeat a short cycle, so a few steps lower the loss. */
function blocks(seq: number, count: number) {
  const all = new Int32Array(count * (seq + 1)), targets = new Int32Array(count * seq);
  for (let r = 0; r < count; r++) {
    for (let t = 0; t <= seq; t++) all[r * (seq + 1) + t] = (r + t * 3) % 7 + 2;
    for (let t = 0; t < seq; t++) targets[r * seq + t] = all[r * (seq + 1) + t + 1]!;
  }
  return { ids: all, targets, rows: count, seq, paddingRatio: 0, naivePaddingRatio: 0 };
}

interface Case {
  ckpt: LlamaCheckpoint; model: AdaptedModel; ref: Float64Array; refLora?: Float64Array; losses?: number[];
  greedy: number[]; greedyLora?: number[];
}
const cases = new Map<string, Promise<Case>>();
/** Load the folder, train LoRA on all projections (js, 8 steps), save it, run the reference on both. */
function prepare(json: Record<string, unknown>, seed: number, lora = true): Promise<Case> {
  const key = String(json.model_type);
  let c = cases.get(key);
  if (!c) {
    c = (async () => {
      requireTorch();
      const folder = writeFolder(randomModel(json, seed), json, key);
      const ckpt = await loadCheckpointFile(folder);
      const model = new AdaptedModel(ckpt);
      let losses: number[] | undefined, peft: string | undefined;
      if (lora) {
        model.addAdapter('t', 'lora', { r: 2, alpha: 4, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] }, { seed: 3 });
        losses = (await fineTune({ model, adapter: 't', backend: createJsBackend(), data: blocks(8, 4), steps: 8, batch: 4, lr: 5e-2, decay: 'constant', seed: 1 })).losses;
        peft = savePeftFolder(model, 't', join(dir, `${key}-lora`));
      }
      const out = { base: join(dir, `${key}.f64`), lora: join(dir, `${key}-lora.f64`) };
      const r = runReference<{ greedy: { name: string; ids: number[] }[] }>('gemma_ref.py', {
        model: folder,
        runs: [{ name: 'base', adapter: null, ids: rows, targets: rows, logits: out.base }, ...(peft ? [{ name: 'lora', adapter: peft, ids: rows, targets: rows, logits: out.lora }] : [])],
        greedy: [{ name: 'base', adapter: null, prompt, steps: 4 }, ...(peft ? [{ name: 'lora', adapter: peft, prompt, steps: 4 }] : [])],
      }, dir);
      const greedyOf = (n: string) => r.greedy.find((g) => g.name === n)!.ids;
      return {
        ckpt, model, ref: readF64(out.base), greedy: greedyOf('base'),
        ...(peft ? { refLora: readF64(out.lora), losses: losses!, greedyLora: greedyOf('lora') } : {}),
      };
    })();
    cases.set(key, c);
  }
  return c;
}

async function logitsOn(ckpt: LlamaCheckpoint, backend: Backend): Promise<Float32Array> {
  const g = new Graph();
  const net = buildModel(g, ckpt.config, { batch: B, seq: T });
  g.markOutput(net.logits);
  const s = await Session.create(g, backend);
  uploadWeights(s, net.weights, ckpt);
  s.set(net.ids, ids);
  await s.run();
  const out = Float32Array.from(await s.get(net.logits));
  s.dispose();
  return out;
}

/** Greedy ids with the KV cache on float32 js, adapters on when the model has them active. */
async function greedy(model: AdaptedModel, withAdapters: boolean): Promise<number[]> {
  const rt = withAdapters ? model.runtime(createJsBackend()) : new AdaptedModel(model.base).runtime(createJsBackend());
  const out = await rt.generate(prompt, { maxTokens: 4, temperature: 0, stopTokens: [] });
  rt.dispose();
  return out;
}

/** The checkpoint with a small SentencePiece vocabulary (prefix tuning's default init reads text through it). */
function withTokenizer(ckpt: LlamaCheckpoint): LlamaCheckpoint {
  const tokens = ['<pad>', '<eos>', '<bos>', '<unk>', '\u2581', ...'abcdefghijklmnopqrs'];
  return { ...ckpt, tokenizer: { kind: 'sentencepiece', tokens, scores: new Float32Array(tokens.length), bosId: 2, eosId: 1, unkId: 3, source: 'test' } };
}

const withConfig = (ckpt: LlamaCheckpoint, change: Partial<LlamaConfig>): AdaptedModel => new AdaptedModel({ ...ckpt, config: { ...ckpt.config, ...change } });

test('config.json: Gemma 2 and 3 fields, defaults and layer patterns', () => {
  const g2 = hfModelConfig(GEMMA2);
  assert.is(familyOf(g2).name, 'gemma');
  assert.equal([g2.headDim, g2.attentionScale, g2.finalSoftcap, g2.attnSoftcap, g2.slidingWindow], [16, 1 / Math.sqrt(24), 2.5, 1.5, 3]);
  assert.equal(g2.layerTypes, ['sliding_attention', 'full_attention']);
  const g3 = hfModelConfig(GEMMA3);
  assert.equal([g3.qkNorm, g3.localRopeTheta, g3.ropeTheta, g3.layerTypes], [true, 100, 100000, ['sliding_attention', 'full_attention', 'sliding_attention']]);
  // Hugging Face's defaults: Gemma 2 caps at 50 / 30, Gemma 3 every 6th layer global, rope_theta 1e6, local base 1e4.
  const bare = { ...COMMON, num_hidden_layers: 7, max_position_embeddings: 8192 };
  const d2 = hfModelConfig({ ...bare, model_type: 'gemma2' });
  assert.equal([d2.attnSoftcap, d2.finalSoftcap, d2.slidingWindow, d2.attentionScale], [50, 30, 4096, 1 / 16]);
  const d3 = hfModelConfig({ ...bare, model_type: 'gemma3_text' });
  assert.equal([d3.ropeTheta, d3.localRopeTheta, d3.attnSoftcap, d3.finalSoftcap], [1e6, 10000, undefined, undefined]);
  assert.equal(d3.layerTypes!.map((t) => t[0]), ['s', 's', 's', 's', 's', 'f', 's']);
  assert.is(hfModelConfig({ ...bare, model_type: 'gemma3_text', layer_types: Array(7).fill('full_attention') }).slidingWindow, undefined);
  // The newer rope_parameters form reads to the same config.
  const { rope_theta: _t, rope_local_base_freq: _l, rope_scaling: _s, ...rest } = GEMMA3;
  const v5 = hfModelConfig({ ...rest, rope_parameters: { full_attention: { rope_type: 'linear', factor: 4, rope_theta: 100000 }, sliding_attention: { rope_type: 'default', rope_theta: 100 } } });
  assert.equal(v5, g3);
  assert.is(hfModelConfig({ ...GEMMA2, rope_theta: undefined, rope_parameters: { rope_type: 'default', rope_theta: 777 } }).ropeTheta, 777);
  assert.throws(() => hfModelConfig({ ...rest, rope_parameters: { sliding_attention: { rope_type: 'linear', factor: 2 } } }), /only the default rotary is supported on sliding layers/);
  assert.throws(() => hfModelConfig({ ...GEMMA2, hidden_activation: 'gelu' }), /hidden_activation gelu is not supported \(only gelu_pytorch_tanh\)/);
  assert.throws(() => hfModelConfig({ ...GEMMA3, layer_types: ['sliding_attention'] }), /layer_types must list one type per layer \(3\)/);
  assert.throws(() => hfModelConfig({ ...GEMMA2, final_logit_softcapping: -1 }), /final_logit_softcapping is -1, expected a positive number or null/);
});

for (const [name, json, seed] of [['Gemma 2', GEMMA2, 5], ['Gemma 3', GEMMA3, 7]] as const) {
  test(`${name}: logits match the float64 reference on js (float64) within 1e-9; each Gemma feature matters`, async () => {
    const { ckpt, ref } = await prepare(json, seed);
    const gap = maxGap(await logitsF64(new AdaptedModel(ckpt), ids, B, T), ref);
    assert.ok(gap < 1e-9, `max |logit difference| ${gap}`);
    // The reference is sensitive to what differs from Llama: leaving any of it out is far off.
    const changes: Partial<LlamaConfig>[] = [{ attentionScale: undefined }, { slidingWindow: undefined }];
    if (ckpt.config.finalSoftcap) changes.push({ finalSoftcap: undefined }, { attnSoftcap: undefined });
    if (ckpt.config.localRopeTheta) changes.push({ localRopeTheta: undefined }, { ropeScaling: undefined }, { qkNorm: false });
    for (const change of changes) {
      assert.ok(maxGap(await logitsF64(withConfig(ckpt, change), ids, B, T), ref) > 1e-3, `${JSON.stringify(change)} made no difference`);
    }
  });

  test(`${name}: logits on float32 js, wasm and webgpu within 1e-4 of the reference; greedy ids equal`, async () => {
    const { ckpt, ref, greedy: expected, model } = await prepare(json, seed);
    for (const { name: b, backend } of [{ name: 'js', backend: createJsBackend() }, ...(await otherBackends())]) {
      const gap = maxGap(await logitsOn(ckpt, backend), ref);
      assert.ok(gap < 1e-4, `${b}: max |logit difference| ${gap}`);
    }
    assert.equal(await greedy(model, false), expected);
  });

  test(`${name}: LoRA on all projections trains; the reference reads the saved PEFT folder and agrees`, async () => {
    const { losses, model, ref, refLora, greedyLora } = await prepare(json, seed);
    assert.ok(losses![losses!.length - 1]! < losses![0]! * 0.9, `loss ${losses![0]} → ${losses![losses!.length - 1]}`);
    assert.ok(maxGap(refLora!, ref) > 1e-3, 'the adapter changed nothing');
    const gap = maxGap(await logitsF64(model, ids, B, T), refLora!);
    assert.ok(gap < 1e-9, `max |logit difference| ${gap}`);
    assert.equal(await greedy(model, true), greedyLora);
  });
}

for (const [name, json, seed] of [['Gemma 2', GEMMA2, 5], ['Gemma 3', GEMMA3, 7]] as const) {
  test(`${name}: KV-cache decoding (float64) equals the full forward past the window; the host forward's keys and values equal the cache`, async () => {
    const { ckpt } = await prepare(json, seed);
    const f64 = createJsBackend({ precision: 'f64' });
    const full = await logitsF64(new AdaptedModel(ckpt), ids, B, T);
    const V = ckpt.config.vocabSize;
    const g = new Graph();
    const net = buildModel(g, ckpt.config, { batch: 1, seq: 1, cacheLen: T });
    g.markOutput(net.logits);
    const s = await Session.create(g, f64);
    uploadWeights(s, net.weights, ckpt);
    let worst = 0;
    for (let p = 0; p < T; p++) {
      s.set(net.ids, Int32Array.of(rows[0]![p]!));
      s.set(net.positions!, Int32Array.of(p));
      s.set(net.pos!, Int32Array.of(p));
      s.set(net.kvLen!, Int32Array.of(p + 1));
      await s.run();
      worst = Math.max(worst, maxGap(await s.get(net.logits), full.subarray(p * V, (p + 1) * V)));
    }
    const host = hostKeyValues(ckpt, rows[0]!);
    for (let l = 0; l < ckpt.config.nLayers; l++) {
      worst = Math.max(worst, maxGap(await s.get(g.byName(`model.layers.${l}.self_attn.k_cache`)!), host.keys[l]!));
      worst = Math.max(worst, maxGap(await s.get(g.byName(`model.layers.${l}.self_attn.v_cache`)!), host.values[l]!));
    }
    s.dispose();
    assert.ok(worst < 1e-9, `decoding or the host forward differs from the full forward by ${worst}`);
    // Prefix tuning's default initialisation reads those keys and values; it trains from there.
    const model = new AdaptedModel(withTokenizer(ckpt));
    model.addAdapter('p', 'prefix-tuning', { numVirtualTokens: 2 }, { seed: 1 });
    const r = await fineTune({ model, adapter: 'p', backend: createJsBackend(), data: blocks(8, 4), steps: 4, batch: 4, lr: 5e-2, decay: 'constant', seed: 1 });
    assert.ok(r.losses.every(Number.isFinite) && r.losses[r.losses.length - 1]! < r.losses[0]!, `prefix tuning loss ${r.losses.join(', ')}`);
  });
}

test('every adapter method trains on Gemma 2 (windows and soft-caps on) with its defaults and generates', async () => {
  const { ckpt } = await prepare(GEMMA2, 5);
  const base = withTokenizer(ckpt);
  for (const m of methodNames()) {
    const model = new AdaptedModel(base);
    // Compacter's default phm_dim 4 does not divide this model's bottleneck width 2; CPT needs its context;
    // PHATGOOSE is built from an expert (here a LoRA with random factors, its gate trained).
    const own: Record<string, Record<string, unknown>> = { compacter: { phmDim: 2 }, cpt: { cptTokenIds: [2, 5, 6, 7], projectionEpsilon: 50 } };
    if (m === 'phatgoose') {
      const experts = new AdaptedModel(base);
      const e = experts.addAdapter('e', 'lora', { r: 2, targetModules: ['q_proj', 'v_proj'] }, { seed: 2 });
      for (const [k, p] of e.params) if (k.includes('lora_B')) p.data.forEach((_, i) => { p.data[i] = 0.3 * Math.sin(i + 1); });
      attachPhatgoose(model, 'a', [e], { mode: 'gate' });
    } else {
      model.addAdapter('a', m, own[m] ?? {}, { seed: 1 });
    }
    const r = await fineTune({ model, adapter: 'a', backend: createJsBackend(), data: blocks(8, 4), steps: 3, batch: 4, seed: 1 });
    assert.ok(r.losses.every(Number.isFinite) && r.losses[2]! < r.losses[0]!, `${m}: loss ${r.losses.join(', ')}`);
    const rt = model.runtime(createJsBackend());
    assert.is((await rt.generate([2, 5], { maxTokens: 4, temperature: 0, stopTokens: [] })).length, 4, m);
    rt.dispose();
  }
});

test('Gemma 1: logits match the float64 reference within 1e-9, greedy ids equal', async () => {
  const { ckpt, ref, greedy: expected, model } = await prepare(GEMMA1, 11, false);
  assert.is(ckpt.tensors.has('model.layers.0.pre_feedforward_layernorm.weight'), false);
  const gap = maxGap(await logitsF64(new AdaptedModel(ckpt), ids, B, T), ref);
  assert.ok(gap < 1e-9, `max |logit difference| ${gap}`);
  assert.equal(await greedy(model, false), expected);
});

test('GGUF export is refused; missing Gemma tensors and bad layer types are named', async () => {
  const { ckpt } = await prepare(GEMMA2, 5);
  assert.throws(() => checkpointToGguf(ckpt), /GGUF export of gemma2 models is not supported/);
  const tensors = new Map(ckpt.tensors);
  tensors.delete('model.layers.1.post_feedforward_layernorm.weight');
  assert.throws(() => validateCheckpoint({ ...ckpt, tensors }), /post_feedforward_layernorm\.weight is missing/);
  assert.throws(() => validateCheckpoint({ ...ckpt, config: { ...ckpt.config, layerTypes: ['sliding_attention'] } }), /layerTypes must give/);
});

/**
 * A Gemma checkpoint as llama.cpp's converter writes it: its tensor names, norms stored as 1 + w, Q/K rows as
 * they are (llama.cpp rotates Gemma rotate-half), `{arch}.*` keys; no query_pre_attn_scalar (llama.cpp uses
 * head_dim^−½ below the 27B shapes) and, for Gemma 3, the sliding layers' fixed rotary base 10000 and pattern 6.
 */
function llamaCppGguf(ckpt: LlamaCheckpoint, arch: 'gemma' | 'gemma2' | 'gemma3'): Uint8Array {
  const c = ckpt.config;
  const layer: Record<string, string> = {
    'self_attn.q_proj': 'attn_q', 'self_attn.k_proj': 'attn_k', 'self_attn.v_proj': 'attn_v', 'self_attn.o_proj': 'attn_output',
    input_layernorm: 'attn_norm', post_attention_layernorm: 'attn_post_norm', pre_feedforward_layernorm: 'ffn_norm',
    post_feedforward_layernorm: 'ffn_post_norm', 'mlp.gate_proj': 'ffn_gate', 'mlp.up_proj': 'ffn_up', 'mlp.down_proj': 'ffn_down',
    'self_attn.q_norm': 'attn_q_norm', 'self_attn.k_norm': 'attn_k_norm',
    // Gemma 1: the norm before the MLP, as Llama's.
    ...(arch === 'gemma' ? { post_attention_layernorm: 'ffn_norm' } : {}),
  };
  const name = (n: string): string => (n === 'model.embed_tokens.weight' ? 'token_embd.weight' : n === 'model.norm.weight' ? 'output_norm.weight'
    : n.replace(/^model\.layers\.(\d+)\.(.+)\.weight$/, (_, l: string, m: string) => `blk.${l}.${layer[m]!}.weight`));
  const k = (key: string) => `${arch}.${key}`;
  return writeGguf({
    metadata: {
      'general.architecture': gguf.str(arch), [k('context_length')]: gguf.u32(c.maxSeqLen), [k('embedding_length')]: gguf.u32(c.dim),
      [k('block_count')]: gguf.u32(c.nLayers), [k('feed_forward_length')]: gguf.u32(c.hiddenDim), [k('attention.head_count')]: gguf.u32(c.nHeads),
      [k('attention.head_count_kv')]: gguf.u32(c.nKvHeads), [k('attention.key_length')]: gguf.u32(configHeadDim(c)),
      [k('attention.value_length')]: gguf.u32(configHeadDim(c)), [k('attention.layer_norm_rms_epsilon')]: gguf.f32(c.normEps),
      [k('rope.freq_base')]: gguf.f32(c.ropeTheta),
      ...(c.slidingWindow ? { [k('attention.sliding_window')]: gguf.u32(c.slidingWindow) } : {}),
      ...(c.attnSoftcap ? { [k('attn_logit_softcapping')]: gguf.f32(c.attnSoftcap) } : {}),
      ...(c.finalSoftcap ? { [k('final_logit_softcapping')]: gguf.f32(c.finalSoftcap) } : {}),
      ...(c.ropeScaling ? { [k('rope.scaling.type')]: gguf.str('linear'), [k('rope.scaling.factor')]: gguf.f32(c.ropeScaling.factor as number) } : {}),
    },
    tensors: [...ckpt.tensors].map(([n, t]) => ({ name: name(n), shape: t.shape, type: 'F32' as const, data: n.endsWith('norm.weight') ? Float32Array.from(tensorF32(t), (v) => v + 1) : tensorF32(t) })),
  });
}

test('GGUF gemma / gemma2 / gemma3 files (llama.cpp layout) read to the Hugging Face config, weights and logits', async () => {
  const cases = [
    ['gemma2', { ...GEMMA2, query_pre_attn_scalar: 16 }],
    ['gemma3', { ...GEMMA3, num_hidden_layers: 6, query_pre_attn_scalar: 16, rope_local_base_freq: 10000, sliding_window_pattern: 6 }],
    ['gemma', GEMMA1],
  ] as const;
  for (const [arch, json] of cases) {
    const hf = randomModel(json, 13);
    const fromGguf = await loadCheckpoint(llamaCppGguf(hf, arch), { name: `${arch}.gguf` });
    assert.equal(fromGguf.config, hf.config);
    if (arch !== 'gemma') assert.equal(fromGguf.config.layerTypes?.filter((t) => t === 'full_attention').length, 1, arch);
    assert.equal([...fromGguf.tensors.keys()].sort(), [...hf.tensors.keys()].sort());
    for (const [n, t] of hf.tensors) assert.ok(maxGap(tensorF32(fromGguf.tensors.get(n)!), tensorF32(t)) < 1e-7, n);
    const gap = maxGap(await logitsF64(new AdaptedModel(fromGguf), ids, B, T), await logitsF64(new AdaptedModel(hf), ids, B, T));
    assert.ok(gap < 1e-6, `${arch}: max |logit difference| ${gap}`);
  }
  // The 27B shapes scale attention by (hidden / heads)^−½, as llama.cpp does.
  const big = syntheticCheckpoint(hfModelConfig({ ...GEMMA2, num_hidden_layers: 46, query_pre_attn_scalar: 16 }), { seed: 1 });
  assert.is((await loadCheckpoint(llamaCppGguf(big, 'gemma2'))).config.attentionScale, 1 / Math.sqrt(32 / 4));
});

test('merge writes a Gemma folder whose config.json reads back to the same config; GGUF output is refused first', async () => {
  for (const [json, seed] of [[GEMMA2, 5], [GEMMA3, 7]] as const) {
    const { ckpt } = await prepare(json, seed);
    const written = hfConfigJson(ckpt);
    assert.is(written.model_type, json.model_type);
    assert.equal(hfModelConfig(written), ckpt.config);
    assert.equal(gemmaHfConfigJson(ckpt.config).query_pre_attn_scalar, json.query_pre_attn_scalar);
    const out = join(dir, `${json.model_type}-merged`);
    await writeModel(ckpt, out, 'safetensors', 'f32');
    const back = await loadCheckpointFile(out);
    assert.equal(back.config, ckpt.config);
    assert.equal(tensorF32(back.tensors.get('model.layers.0.post_feedforward_layernorm.weight')!), tensorF32(ckpt.tensors.get('model.layers.0.post_feedforward_layernorm.weight')!));
  }
  let err: Error | undefined;
  try { await writeModel((await prepare(GEMMA2, 5)).ckpt, join(dir, 'refused'), 'gguf', 'f32'); } catch (e) { err = e as Error; }
  assert.match(err?.message ?? '', /GGUF export of gemma2 models is not supported; write the Hugging Face layout with --format safetensors/);
  assert.throws(() => hfModelConfig({ ...GEMMA3, model_type: 'gemma3' }), /model_type gemma3 is not supported \(supported: .*gemma3_text/);
});

test('a Gemma-style chat template (turn markers, role checks, trim) renders', () => {
  // The constructs Gemma's templates use: raise_exception, loop.index0, set, a filter inside a + chain.
  const source = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system turn') }}{% endif %}"
    + "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('turns must alternate') }}{% endif %}"
    + "{% if m['role'] == 'assistant' %}{% set who = 'model' %}{% else %}{% set who = m['role'] %}{% endif %}"
    + "{{ '<start_of_turn>' + who + '\\n' + m['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"
    + "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}";
  const t = new ChatTemplate(source, { tokens: ['<pad>', '<eos>', '<bos>'], bosId: 2, eosId: 1 });
  assert.is(t.render([{ role: 'user', content: ' Hi ' }, { role: 'assistant', content: 'Hello' }], true),
    '<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n<start_of_turn>model\n');
  assert.throws(() => t.render([{ role: 'system', content: 'x' }]), /no system turn/);
  assert.throws(() => t.render([{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }]), /turns must alternate/);
});

test.run();
