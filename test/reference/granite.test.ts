// Granite (`model_type: "granite"`): a Llama-shaped decoder with four multipliers — token embeddings ×
// embedding_multiplier, attention scores × attention_multiplier (in place of 1/√head_dim), each block's output ×
// residual_multiplier before the residual add, logits ÷ logits_scaling. A small random model in Hugging Face layout
// against the independent float64 PyTorch reference (test/reference/llama_ref.py, which applies the multipliers as
// transformers' GraniteModel does): logits within 1e-5 absolute on float64 js, within 1e-4 of the largest logit on
// float32 js, wasm and webgpu; the same with a LoRA adapter on. The multipliers survive config.json and GGUF
// (llama.cpp's granite.embedding_scale, residual_scale, logit_scale, attention.scale) round trips.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import type { Backend } from '../../src/backends/backend.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import type { LlamaCheckpoint, LlamaConfig } from '../../src/formats/checkpoint.js';
import { checkpointToGguf, readGgufCheckpoint } from '../../src/formats/gguf-llama.js';
import { hfModelConfig } from '../../src/formats/hf.js';
import { bytesSource } from '../../src/formats/source.js';
import { loadCheckpointFile } from '../../src/formats/node-fs.js';
import { Graph } from '../../src/graph/graph.js';
import { buildModel } from '../../src/model/families.js';
import { uploadWeights } from '../../src/model/runtime.js';
import { syntheticCheckpoint } from '../../src/model/synthetic.js';
import { Session } from '../../src/scheduler/session.js';
import { fineTune } from '../../src/train/finetune.js';
import { hfConfigJson } from '../../src/cli/write-model.js';
import { otherBackends } from '../backends/backends.js';
import { logitsF64, maxGap } from './ours.js';
import { readF64, requireTorch, runReference, savePeftFolder, writeHfModel } from './python.js';

const B = 2, T = 6;
const BASE: LlamaConfig = {
  dim: 32, hiddenDim: 40, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 24, maxSeqLen: 64,
  normEps: 1e-6, ropeTheta: 1000, tiedEmbeddings: true, qkvBias: false, ropeLayout: 'half', architecture: 'granite',
};
const MULTIPLIERS = { embedding_multiplier: 6, residual_multiplier: 0.3, attention_multiplier: 0.09, logits_scaling: 4 };
const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 5 + 1) % BASE.vocabSize);
const rows = [Array.from(ids.subarray(0, T)), Array.from(ids.subarray(T))];

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-granite-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** The config.json transformers' GraniteConfig reads. */
function graniteJson(c: LlamaConfig): Record<string, unknown> {
  return {
    model_type: 'granite', hidden_size: c.dim, intermediate_size: c.hiddenDim, num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads, num_key_value_heads: c.nKvHeads, vocab_size: c.vocabSize, rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta, tie_word_embeddings: c.tiedEmbeddings, max_position_embeddings: c.maxSeqLen, ...MULTIPLIERS,
  };
}

function blocks(seq: number, count: number) {
  const idsAll = new Int32Array(count * (seq + 1)), targets = new Int32Array(count * seq);
  for (let r = 0; r < count; r++) {
    for (let t = 0; t <= seq; t++) idsAll[r * (seq + 1) + t] = (r + t * 3) % 7 + 2;
    for (let t = 0; t < seq; t++) targets[r * seq + t] = idsAll[r * (seq + 1) + t + 1]!;
  }
  return { ids: idsAll, targets, rows: count, seq, paddingRatio: 0, naivePaddingRatio: 0 };
}

let loaded: Promise<{ ckpt: LlamaCheckpoint; ref: Float64Array; refLora: Float64Array; lora: Float64Array; losses: number[] }> | undefined;
function prepare() {
  loaded ??= (async () => {
    requireTorch();
    const folder = writeHfModel(syntheticCheckpoint(BASE, { seed: 5, scale: 0.6 }), join(dir, 'hf'));
    writeFileSync(join(folder, 'config.json'), JSON.stringify(graniteJson(BASE)));
    const ckpt = await loadCheckpointFile(folder);
    const model = new AdaptedModel(ckpt);
    model.addAdapter('t', 'lora', { r: 2, alpha: 4, targetModules: ['q_proj', 'v_proj', 'down_proj'] }, { seed: 3 });
    const r = await fineTune({ model, adapter: 't', backend: createJsBackend(), data: blocks(8, 4), steps: 8, batch: 4, lr: 5e-2, decay: 'constant', seed: 1 });
    const peft = savePeftFolder(model, 't', join(dir, 'lora'));
    const base = join(dir, 'base.f64'), adapted = join(dir, 'lora.f64');
    runReference('llama_ref.py', { model: folder, runs: [
      { name: 'base', adapter: null, ids: rows, targets: rows, logits: base },
      { name: 'lora', adapter: peft, ids: rows, targets: rows, logits: adapted },
    ] }, dir);
    return { ckpt, ref: readF64(base), refLora: readF64(adapted), lora: await logitsF64(model, ids, B, T), losses: r.losses };
  })();
  return loaded;
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

test('config.json multipliers are read; attention_multiplier defaults to 1 as in transformers', () => {
  const c = hfModelConfig(graniteJson(BASE));
  assert.is(c.embeddingMultiplier, 6);
  assert.is(c.residualMultiplier, 0.3);
  assert.is(c.attentionScale, 0.09);
  assert.is(c.logitsScaling, 4);
  const { attention_multiplier: _drop, ...rest } = graniteJson(BASE);
  assert.is(hfModelConfig(rest).attentionScale, 1);
  assert.throws(() => hfModelConfig({ ...graniteJson(BASE), logits_scaling: 0 }), /logits_scaling is 0, expected a positive number/);
});

test('logits match the float64 reference on js (float64) within 1e-5, and each multiplier matters', async () => {
  const { ckpt, ref } = await prepare();
  const gap = maxGap(await logitsF64(new AdaptedModel(ckpt), ids, B, T), ref);
  assert.ok(gap < 1e-5, `max |logit difference| ${gap}`);
  for (const drop of ['embeddingMultiplier', 'residualMultiplier', 'attentionScale', 'logitsScaling'] as const) {
    const config = { ...ckpt.config };
    delete config[drop];
    assert.ok(maxGap(await logitsF64(new AdaptedModel({ ...ckpt, config }), ids, B, T), ref) > 1e-3, `${drop} made no difference`);
  }
});

test('logits on js float32, wasm and webgpu match the reference within 1e-4 of the largest logit', async () => {
  const { ckpt, ref } = await prepare();
  const scale = Math.max(...ref.map(Math.abs));
  for (const { name, backend } of [{ name: 'js', backend: createJsBackend() }, ...(await otherBackends())]) {
    const gap = maxGap(await logitsOn(ckpt, backend), ref);
    assert.ok(gap < 1e-4 * scale, `${name}: max |logit difference| ${gap} (largest logit ${scale})`);
  }
});

test('LoRA trains and the reference reading the PEFT folder agrees on the adapted logits', async () => {
  const { losses, lora, refLora, ref } = await prepare();
  assert.ok(losses.at(-1)! < losses[0]!, `loss ${losses[0]} → ${losses.at(-1)}`);
  assert.ok(maxGap(lora, refLora) < 1e-5, `adapted gap ${maxGap(lora, refLora)}`);
  assert.ok(maxGap(refLora, ref) > 1e-3, 'the adapter changed nothing');
});

test('config.json written by merge and a GGUF file keep the multipliers and the logits', async () => {
  const { ckpt, ref } = await prepare();
  const json = hfConfigJson(ckpt);
  assert.is(json.model_type, 'granite');
  const back = hfModelConfig(json);
  for (const k of ['embeddingMultiplier', 'residualMultiplier', 'attentionScale', 'logitsScaling'] as const) assert.is(back[k], ckpt.config[k], k);
  const gguf = await readGgufCheckpoint(bytesSource(checkpointToGguf(ckpt), 'granite.gguf'));
  assert.is(gguf.config.architecture, 'granite');
  for (const k of ['embeddingMultiplier', 'residualMultiplier', 'attentionScale', 'logitsScaling'] as const) {
    assert.ok(Math.abs(gguf.config[k]! - ckpt.config[k]!) < 1e-7 * ckpt.config[k]!, `${k}: ${gguf.config[k]} vs ${ckpt.config[k]}`);
  }
  const gap = maxGap(await logitsF64(new AdaptedModel(gguf), ids, B, T), ref);
  assert.ok(gap < 1e-4, `GGUF logits gap ${gap}`);
});

test.run();
