// Phi-3 (`model_type: "phi3"`): fused `self_attn.qkv_proj` (q | k | v rows) and `mlp.gate_up_proj` (gate | up
// rows), Llama's norms and rotate-half RoPE. A small random model in Hugging Face layout against the independent
// float64 PyTorch reference (test/reference/phi3_ref.py, written from modeling_phi3's equations): logits within
// 1e-5 on float64 js, within 1e-4 of the largest logit on float32 js, wasm and webgpu; greedy tokens (our KV-cache
// decoder against the reference's full recompute) equal. LoRA on the fused modules (PEFT's names) trains (loss
// falls), saves a PEFT folder the reference reads with PEFT's formulas, and agrees on logits (1e-5) and greedy tokens.
// LongRoPE scaling (short and long factors, attention factor) matches the reference on both sides of the original
// context. Unsupported configs (partial rotary) are refused by name.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { fromPeftTargets } from '../../src/adapters/config-utils.js';
import { modelModules, selectTargets } from '../../src/adapters/targets.js';
import type { TargetConfig } from '../../src/adapters/types.js';
import type { Backend } from '../../src/backends/backend.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { type LlamaCheckpoint, type LlamaConfig, tensorF32 } from '../../src/formats/checkpoint.js';
import { hfModelConfig } from '../../src/formats/hf.js';
import { hfConfigJson } from '../../src/cli/write-model.js';
import { loadCheckpointFile } from '../../src/formats/node-fs.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import * as F from '../../src/graph/api.js';
import { gradients } from '../../src/graph/autodiff.js';
import { Graph } from '../../src/graph/graph.js';
import { buildModel } from '../../src/model/families.js';
import { hostKeyValues } from '../../src/model/host-forward.js';
import { uploadWeights } from '../../src/model/runtime.js';
import { syntheticCheckpoint } from '../../src/model/synthetic.js';
import { Session } from '../../src/scheduler/session.js';
import { fineTune } from '../../src/train/finetune.js';
import { otherBackends } from '../backends/backends.js';
import { maxGap } from './ours.js';
import { readF64, requireTorch, runReference, savePeftFolder } from './python.js';

const B = 2, T = 6, GREEDY = 5;
const CONFIG: LlamaConfig = {
  dim: 32, hiddenDim: 40, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 24, maxSeqLen: 64, normEps: 1e-5,
  ropeTheta: 1000, tiedEmbeddings: false, qkvBias: false, ropeLayout: 'half', architecture: 'phi3', fusedProjections: true,
};
const HF_CONFIG = {
  model_type: 'phi3', architectures: ['Phi3ForCausalLM'], hidden_size: 32, intermediate_size: 40, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 24, max_position_embeddings: 64, original_max_position_embeddings: 64,
  rms_norm_eps: 1e-5, rope_theta: 1000, tie_word_embeddings: false, hidden_act: 'silu', sliding_window: null, rope_scaling: null,
};
const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 5 + 1) % CONFIG.vocabSize);
const rows = [Array.from(ids.subarray(0, T)), Array.from(ids.subarray(T))];
const TARGETS = ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'];

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-phi3-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** Random weights; norms away from 1 so a misplaced norm shows. */
function phi3(): LlamaCheckpoint {
  const ckpt = syntheticCheckpoint(CONFIG, { seed: 11, scale: 0.6 });
  for (const [k, t] of ckpt.tensors) {
    if (k.endsWith('norm.weight')) ckpt.tensors.set(k, { shape: t.shape, data: Float32Array.from({ length: t.shape[0]! }, (_, i) => 0.6 + ((i * 7 + k.length) % 11) / 10) });
  }
  return ckpt;
}

function writeHfPhi3(ckpt: LlamaCheckpoint, out: string, extra: Record<string, unknown> = {}): string {
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'model.safetensors'), writeSafetensors([...ckpt.tensors].map(([k, t]) => [k, { shape: t.shape, data: tensorF32(t) }] as [string, { shape: number[]; data: Float32Array }])));
  writeFileSync(join(out, 'config.json'), JSON.stringify({ ...HF_CONFIG, ...extra }));
  return out;
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

/** Logits [B, T, V] of a model with its adapters, on `backend` (float64 js by default). */
async function logitsOf(model: AdaptedModel, backend: Backend = createJsBackend({ precision: 'f64' }), input = { ids, seq: T }): Promise<Float64Array> {
  const g = new Graph();
  const { hooks } = model.hooks({ training: false });
  const net = buildModel(g, model.base.config, { batch: B, seq: input.seq, hooks });
  g.markOutput(net.logits);
  const s = await Session.create(g, backend);
  uploadWeights(s, net.weights, model.effectiveCheckpoint());
  model.uploadAdapterParams(s);
  s.set(net.ids, input.ids);
  await s.run();
  const out = Float64Array.from(await s.get(net.logits));
  s.dispose();
  return out;
}

async function greedy(model: AdaptedModel): Promise<number[][]> {
  const rt = model.runtime(createJsBackend());
  const out: number[][] = [];
  for (const r of rows) out.push(await rt.generate(r, { maxTokens: GREEDY, temperature: 0, stopTokens: [] }));
  rt.dispose();
  return out;
}

interface Prepared {
  ckpt: LlamaCheckpoint; model: AdaptedModel; ref: Float64Array; refLora: Float64Array; losses: number[]; names: string[];
  refGreedy: number[][]; refGreedyLora: number[][];
}
let loaded: Promise<Prepared> | undefined;
function prepare(): Promise<Prepared> {
  loaded ??= (async () => {
    requireTorch();
    const folder = writeHfPhi3(phi3(), join(dir, 'hf'));
    const ckpt = await loadCheckpointFile(folder);
    const model = new AdaptedModel(ckpt);
    model.addAdapter('t', 'lora', { r: 2, alpha: 4, targetModules: TARGETS }, { seed: 3 });
    const r = await fineTune({ model, adapter: 't', backend: createJsBackend(), data: blocks(8, 4), steps: 8, batch: 4, lr: 5e-2, decay: 'constant', seed: 1 });
    const peft = savePeftFolder(model, 't', join(dir, 'lora'));
    const st = readFileSync(join(peft, 'adapter_model.safetensors'));
    const names = Object.keys(JSON.parse(st.subarray(8, 8 + Number(st.readBigUInt64LE(0))).toString()) as Record<string, unknown>);
    const base = join(dir, 'base.f64'), adapted = join(dir, 'lora.f64');
    const out = runReference<{ runs: { greedy: number[][] }[] }>('phi3_ref.py', { model: folder, runs: [
      { adapter: null, ids: rows, logits: base, greedy: GREEDY },
      { adapter: peft, ids: rows, logits: adapted, greedy: GREEDY },
    ] }, dir);
    return { ckpt, model, ref: readF64(base), refLora: readF64(adapted), losses: r.losses, names, refGreedy: out.runs[0]!.greedy, refGreedyLora: out.runs[1]!.greedy };
  })();
  return loaded;
}

test('config.json model_type phi3 reads as fused projections; the checkpoint holds qkv_proj and gate_up_proj', async () => {
  const { ckpt } = await prepare();
  assert.is(ckpt.config.architecture, 'phi3');
  assert.is(ckpt.config.fusedProjections, true);
  assert.equal(ckpt.tensors.get('model.layers.1.self_attn.qkv_proj.weight')!.shape, [32 + 2 * 16, 32]);
  assert.equal(ckpt.tensors.get('model.layers.0.mlp.gate_up_proj.weight')!.shape, [80, 32]);
});

test('logits match the float64 reference on js (float64) within 1e-5, and greedy tokens agree', async () => {
  const { ckpt, ref, refGreedy } = await prepare();
  const gap = maxGap(await logitsOf(new AdaptedModel(ckpt)), ref);
  assert.ok(gap < 1e-5, `max |logit difference| ${gap}`);
  assert.equal(await greedy(new AdaptedModel(ckpt)), refGreedy);
  // Gate and up swapped (up first) gives other logits: the split's order matters at this tolerance.
  const swapped = new Map(ckpt.tensors);
  for (let l = 0; l < CONFIG.nLayers; l++) {
    const k = `model.layers.${l}.mlp.gate_up_proj.weight`, w = tensorF32(ckpt.tensors.get(k)!), half = w.length / 2;
    const s = new Float32Array(w.length);
    s.set(w.subarray(half), 0); s.set(w.subarray(0, half), half);
    swapped.set(k, { shape: [80, 32], data: s });
  }
  assert.ok(maxGap(await logitsOf(new AdaptedModel({ ...ckpt, tensors: swapped })), ref) > 1e-3, 'gate/up order made no difference');
});

test('logits on js float32, wasm and webgpu match the reference within 1e-4 of the largest logit', async () => {
  const { ckpt, ref } = await prepare();
  const scale = Math.max(...ref.map(Math.abs));
  for (const { name, backend } of [{ name: 'js', backend: createJsBackend() }, ...(await otherBackends())]) {
    const gap = maxGap(await logitsOf(new AdaptedModel(ckpt), backend), ref);
    assert.ok(gap < 1e-4 * scale, `${name}: max |logit difference| ${gap} (largest logit ${scale})`);
  }
});

test('LoRA on qkv_proj/o_proj/gate_up_proj/down_proj trains, saves PEFT names, and the reference agrees', async () => {
  const { model, losses, names, refLora, ref, refGreedyLora } = await prepare();
  assert.ok(losses[losses.length - 1]! < losses[0]! * 0.9, `loss ${losses[0]} → ${losses[losses.length - 1]}`);
  for (const m of ['self_attn.qkv_proj', 'self_attn.o_proj', 'mlp.gate_up_proj', 'mlp.down_proj']) {
    assert.ok(names.includes(`base_model.model.model.layers.1.${m}.lora_A.weight`), names.join(', '));
  }
  assert.equal(model.get('t').params.get('model.layers.0.self_attn.qkv_proj.lora_B.weight')!.shape, [64, 2]);
  // PEFT's all-linear (in an adapter_config.json) names the same four modules a layer (not the untied head).
  const all = selectTargets(fromPeftTargets({ target_modules: 'all-linear' }, []) as unknown as TargetConfig, modelModules(model.base.config));
  assert.equal(all.map((m) => m.name), [0, 1].flatMap((l) => ['self_attn.qkv_proj', 'self_attn.o_proj', 'mlp.gate_up_proj', 'mlp.down_proj'].map((m) => `model.layers.${l}.${m}`)));
  assert.ok(maxGap(refLora, ref) > 1e-3, 'the adapter changed nothing');
  const gap = maxGap(await logitsOf(model), refLora);
  assert.ok(gap < 1e-5, `max |logit difference| ${gap}`);
  assert.equal(await greedy(model), refGreedyLora);
  const cfg = JSON.parse(readFileSync(join(dir, 'lora', 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  assert.is(cfg.fan_in_fan_out, false);
});

test('the fused outputs split with gradients: a slice of qkv_proj trains only its rows', async () => {
  // d/dW of sum(slice(x·Wᵀ, cols a..b)) is zero outside rows a..b of W: checked on the js backend.
  const g = new Graph();
  const x = g.input('x', [1, 3, 4]), w = g.param('w', [6, 4]);
  const y = F.sum(F.slice(F.matmul(x, w, { transB: true }), 2, 2, 4));
  const gw = gradients(y, [w]).get(w);
  const s = await Session.create(g, createJsBackend({ precision: 'f64' }));
  s.set(x, Float32Array.from({ length: 12 }, (_, i) => i + 1));
  s.set(w, new Float32Array(24).fill(0.5));
  await s.run();
  const got = Array.from(await s.get(gw));
  s.dispose();
  // Rows 2 and 3 get Σ_t x[t, :]; the others nothing.
  const col = [1 + 5 + 9, 2 + 6 + 10, 3 + 7 + 11, 4 + 8 + 12];
  assert.equal(got, [...Array(8).fill(0), ...col, ...col, ...Array(8).fill(0)]);
});

test('host keys and values (prefix tuning from real tokens) of the fused model equal those of the same model split into Llama projections', async () => {
  const { ckpt } = await prepare();
  const hd = 8, qd = CONFIG.nHeads * hd, kv = CONFIG.nKvHeads * hd, D = CONFIG.dim, I = CONFIG.hiddenDim;
  const split = new Map(ckpt.tensors);
  for (let l = 0; l < CONFIG.nLayers; l++) {
    const p = `model.layers.${l}`, qkv = tensorF32(ckpt.tensors.get(`${p}.self_attn.qkv_proj.weight`)!), gu = tensorF32(ckpt.tensors.get(`${p}.mlp.gate_up_proj.weight`)!);
    split.delete(`${p}.self_attn.qkv_proj.weight`); split.delete(`${p}.mlp.gate_up_proj.weight`);
    split.set(`${p}.self_attn.q_proj.weight`, { shape: [qd, D], data: qkv.slice(0, qd * D) });
    split.set(`${p}.self_attn.k_proj.weight`, { shape: [kv, D], data: qkv.slice(qd * D, (qd + kv) * D) });
    split.set(`${p}.self_attn.v_proj.weight`, { shape: [kv, D], data: qkv.slice((qd + kv) * D) });
    split.set(`${p}.mlp.gate_proj.weight`, { shape: [I, D], data: gu.slice(0, I * D) });
    split.set(`${p}.mlp.up_proj.weight`, { shape: [I, D], data: gu.slice(I * D) });
  }
  const llama: LlamaCheckpoint = { ...ckpt, tensors: split, config: { ...ckpt.config, architecture: 'llama', fusedProjections: false } };
  const a = hostKeyValues(ckpt, rows[0]!), b = hostKeyValues(llama, rows[0]!);
  for (let l = 0; l < CONFIG.nLayers; l++) {
    assert.equal(Array.from(a.keys[l]!), Array.from(b.keys[l]!));
    assert.equal(Array.from(a.values[l]!), Array.from(b.values[l]!));
  }
  // And the split model's graph gives the reference's logits too: the fused graph splits as Llama's separate projections compute.
  const { ref } = await prepare();
  assert.ok(maxGap(await logitsOf(new AdaptedModel(llama)), ref) < 1e-5);
});

test('LongRoPE (rope_scaling longrope): short factors up to original_max_position_embeddings, long beyond, with the attention factor', async () => {
  const rope_scaling = { type: 'longrope', short_factor: [1, 1.5, 2, 3], long_factor: [2, 3, 5, 8] };
  const folder = writeHfPhi3(phi3(), join(dir, 'longrope'), { rope_scaling, original_max_position_embeddings: 16 });
  const ckpt = await loadCheckpointFile(folder);
  assert.equal(ckpt.config.ropeScaling?.original_max_position_embeddings, 16);
  const long = 20, longIds = Int32Array.from({ length: B * long }, (_, i) => (i * 7 + 3) % CONFIG.vocabSize);
  const longRows = [Array.from(longIds.subarray(0, long)), Array.from(longIds.subarray(long))];
  const [short, longer] = [join(dir, 'lr-short.f64'), join(dir, 'lr-long.f64')];
  runReference('phi3_ref.py', { model: folder, runs: [{ adapter: null, ids: rows, logits: short }, { adapter: null, ids: longRows, logits: longer }] }, dir);
  const model = new AdaptedModel(ckpt);
  const gapShort = maxGap(await logitsOf(model), readF64(short));
  const gapLong = maxGap(await logitsOf(model, undefined, { ids: longIds, seq: long }), readF64(longer));
  assert.ok(gapShort < 1e-5 && gapLong < 1e-5, `max |logit difference| ${gapShort} (short), ${gapLong} (long)`);
  // The factors matter at this tolerance: without scaling the short run's logits differ.
  const { ref } = await prepare();
  assert.ok(maxGap(ref, readF64(short)) > 1e-3, 'short factors made no difference');
  // A merged model's config.json: Phi-3's form (original_max_position_embeddings at the top level), read back alike.
  const json = hfConfigJson(ckpt);
  assert.equal(json.rope_scaling, rope_scaling);
  assert.is(json.original_max_position_embeddings, 16);
  assert.is(json.model_type, 'phi3');
  assert.equal(hfModelConfig(json), ckpt.config);
  assert.throws(() => hfModelConfig({ ...HF_CONFIG, rope_scaling: { type: 'longrope', short_factor: [1] } }), /rope_scaling "longrope" needs long_factor/);
  const wrong = hfModelConfig({ ...HF_CONFIG, rope_scaling: { type: 'longrope', short_factor: [1, 2], long_factor: [1, 2] } });
  assert.throws(() => buildModel(new Graph(), wrong, { batch: 1, seq: 4 }), /short_factor has 2 entries, expected 4/);
});

test('partial rotary (Phi-4-mini) and bad values are refused by name', () => {
  assert.throws(() => hfModelConfig({ ...HF_CONFIG, partial_rotary_factor: 0.75 }), /partial_rotary_factor 0\.75 is not supported/);
  assert.throws(() => hfModelConfig({ ...HF_CONFIG, hidden_act: 'gelu' }), /hidden_act gelu is not supported/);
  const windowed = hfModelConfig({ ...HF_CONFIG, sliding_window: 8 });
  assert.is(windowed.slidingWindow, 8);
  // Longer sequences slide the window (every layer, as Hugging Face's Phi3Attention passes sliding_window to each).
  const g = new Graph();
  assert.is(buildModel(g, windowed, { batch: 1, seq: 9 }).logits.shape.join(), `1,9,${windowed.vocabSize}`);
  assert.ok(g.nodes.some((n) => n.op === 'attention' && n.attrs.window === 8), 'no windowed attention node');
});

test.run();
