// Qwen3 (`model_type: "qwen3"`): RMSNorm over each head of the queries and keys before rotary
// (`self_attn.q_norm.weight`, `self_attn.k_norm.weight`, [head_dim]), head_dim ≠ hidden_size / heads, no q/k/v
// bias. A small random model in Hugging Face layout against the independent float64 PyTorch reference
// (test/reference/llama_ref.py): logits within 1e-5 absolute on float64 js, within 1e-4 of the largest logit
// on float32 js, wasm and webgpu. LoRA on q_proj/k_proj trains (loss falls) and saves PEFT module names;
// the reference reads the saved adapter and agrees on the logits. A q_norm of the wrong shape is refused.
// (Qwen3 GGUF files: test/formats/gguf-rope-layout.test.ts.)
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import type { Backend } from '../../src/backends/backend.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { type LlamaCheckpoint, type LlamaConfig, validateCheckpoint } from '../../src/formats/checkpoint.js';
import { hfLlamaConfig } from '../../src/formats/hf.js';
import { loadCheckpointFile } from '../../src/formats/node-fs.js';
import { Graph } from '../../src/graph/graph.js';
import { buildLlama } from '../../src/model/llama.js';
import { uploadWeights } from '../../src/model/runtime.js';
import { syntheticCheckpoint } from '../../src/model/synthetic.js';
import { Session } from '../../src/scheduler/session.js';
import { fineTune } from '../../src/train/finetune.js';
import { otherBackends } from '../backends/backends.js';
import { logitsF64, maxGap } from './ours.js';
import { readF64, requireTorch, runReference, savePeftFolder, writeHfModel } from './python.js';

const B = 2, T = 6;
const CONFIG: LlamaConfig = {
  dim: 32, hiddenDim: 40, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 16, qkNorm: true, vocabSize: 24, maxSeqLen: 64,
  normEps: 1e-6, ropeTheta: 1000, tiedEmbeddings: true, qkvBias: false, ropeLayout: 'half', architecture: 'qwen3',
};
const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 5 + 1) % CONFIG.vocabSize);
const rows = [Array.from(ids.subarray(0, T)), Array.from(ids.subarray(T))];

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-qwen3-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** Random weights, with per-head norms away from 1 so that a missing or misplaced norm shows. */
function qwen3(): LlamaCheckpoint {
  const ckpt = syntheticCheckpoint(CONFIG, { seed: 9, scale: 0.6 });
  for (const [k, t] of ckpt.tensors) {
    if (/\.(q|k)_norm\.weight$/.test(k)) ckpt.tensors.set(k, { shape: t.shape, data: Float32Array.from({ length: 16 }, (_, i) => 0.5 + ((i * 7 + k.length) % 11) / 8) });
  }
  return ckpt;
}

/** Blocks that repeat a short cycle, so a few steps lower the loss. */
function blocks(seq: number, count: number) {
  const idsAll = new Int32Array(count * (seq + 1)), targets = new Int32Array(count * seq);
  for (let r = 0; r < count; r++) {
    for (let t = 0; t <= seq; t++) idsAll[r * (seq + 1) + t] = (r + t * 3) % 7 + 2;
    for (let t = 0; t < seq; t++) targets[r * seq + t] = idsAll[r * (seq + 1) + t + 1]!;
  }
  return { ids: idsAll, targets, rows: count, seq, paddingRatio: 0, naivePaddingRatio: 0 };
}

let loaded: Promise<{ ckpt: LlamaCheckpoint; ref: Float64Array; refLora: Float64Array; lora: Float64Array; losses: number[]; names: string[] }> | undefined;
function prepare() {
  loaded ??= (async () => {
    requireTorch();
    const folder = writeHfModel(qwen3(), join(dir, 'hf'));
    const ckpt = await loadCheckpointFile(folder);
    const model = new AdaptedModel(ckpt);
    model.addAdapter('t', 'lora', { r: 2, alpha: 4, targetModules: ['q_proj', 'k_proj'] }, { seed: 3 });
    const r = await fineTune({ model, adapter: 't', backend: createJsBackend(), data: blocks(8, 4), steps: 8, batch: 4, lr: 5e-2, decay: 'constant', seed: 1 });
    const peft = savePeftFolder(model, 't', join(dir, 'lora'));
    const names = Object.keys(JSON.parse(readFileSync(join(peft, 'adapter_model.safetensors')).subarray(8, 8 + Number(readFileSync(join(peft, 'adapter_model.safetensors')).readBigUInt64LE(0))).toString()) as Record<string, unknown>);
    const base = join(dir, 'base.f64'), adapted = join(dir, 'lora.f64');
    runReference('llama_ref.py', { model: folder, runs: [
      { name: 'base', adapter: null, ids: rows, targets: rows, logits: base },
      { name: 'lora', adapter: peft, ids: rows, targets: rows, logits: adapted },
    ] }, dir);
    return { ckpt, ref: readF64(base), refLora: readF64(adapted), lora: await logitsF64(model, ids, B, T), losses: r.losses, names };
  })();
  return loaded;
}

async function logitsOn(ckpt: LlamaCheckpoint, backend: Backend): Promise<Float32Array> {
  const g = new Graph();
  const net = buildLlama(g, ckpt.config, { batch: B, seq: T });
  g.markOutput(net.logits);
  const s = await Session.create(g, backend);
  uploadWeights(s, net.weights, ckpt);
  s.set(net.ids, ids);
  await s.run();
  const out = Float32Array.from(await s.get(net.logits));
  s.dispose();
  return out;
}

test('config.json model_type qwen3 turns on the per-head query/key norms', async () => {
  const { ckpt } = await prepare();
  assert.is(ckpt.config.qkNorm, true);
  assert.is(ckpt.config.headDim, 16);
  assert.is(ckpt.config.qkvBias, false);
  assert.equal(ckpt.tensors.get('model.layers.1.self_attn.k_norm.weight')!.shape, [16]);
});

test('logits match the float64 reference on js (float64) within 1e-5', async () => {
  const { ckpt, ref } = await prepare();
  const gap = maxGap(await logitsF64(new AdaptedModel(ckpt), ids, B, T), ref);
  assert.ok(gap < 1e-5, `max |logit difference| ${gap}`);
  // Without the norms the logits are far off: the reference's norms matter at this tolerance.
  const plain = { ...ckpt, config: { ...ckpt.config, qkNorm: false } };
  assert.ok(maxGap(await logitsF64(new AdaptedModel(plain), ids, B, T), ref) > 1e-3, 'q/k norms made no difference');
});

test('logits on js float32, wasm and webgpu match the reference within 1e-4 of the largest logit', async () => {
  const { ckpt, ref } = await prepare();
  const scale = Math.max(...ref.map(Math.abs));
  for (const { name, backend } of [{ name: 'js', backend: createJsBackend() }, ...(await otherBackends())]) {
    const gap = maxGap(await logitsOn(ckpt, backend), ref);
    assert.ok(gap < 1e-4 * scale, `${name}: max |logit difference| ${gap} (largest logit ${scale})`);
  }
});

test('LoRA on q_proj/k_proj trains, saves PEFT names, and the reference agrees on the adapted logits', async () => {
  const { losses, names, lora, refLora, ref } = await prepare();
  assert.ok(losses[losses.length - 1]! < losses[0]! * 0.9, `loss ${losses[0]} → ${losses[losses.length - 1]}`);
  assert.ok(names.includes('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'), names.join(', '));
  assert.ok(names.includes('base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight'), names.join(', '));
  assert.ok(maxGap(refLora, ref) > 1e-3, 'the adapter changed nothing');
  const gap = maxGap(lora, refLora);
  assert.ok(gap < 1e-5, `max |logit difference| ${gap}`);
});

test('wrong q_norm shapes and unknown model types are refused with clear errors', () => {
  const ckpt = qwen3();
  const tensors = new Map(ckpt.tensors);
  tensors.set('model.layers.0.self_attn.q_norm.weight', { shape: [8], data: new Float32Array(8) });
  assert.throws(() => validateCheckpoint({ ...ckpt, tensors }), /q_norm\.weight has shape \[8\], expected \[16\]/);
  const missing = new Map(ckpt.tensors);
  missing.delete('model.layers.1.self_attn.k_norm.weight');
  assert.throws(() => validateCheckpoint({ ...ckpt, tensors: missing }), /k_norm\.weight is missing/);
  assert.throws(() => hfLlamaConfig({ model_type: 'qwen4', hidden_size: 8, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 2, vocab_size: 4 }), /model_type qwen4 is not supported \(supported: .*qwen3/);
});

test.run();
