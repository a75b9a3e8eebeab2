// A head size other than hidden_size / num_attention_heads (Hugging Face `head_dim`): q_proj is
// [nHeads·headDim, dim], k/v [nKvHeads·headDim, dim], o_proj [dim, nHeads·headDim]. A small random model is
// written in Hugging Face layout with `head_dim` in its config.json, read back, and its logits compared with
// the independent float64 PyTorch reference (test/reference/llama_ref.py): within 1e-5 absolute on the float64
// js backend, within 1e-4 relative to the largest logit on float32 wasm and webgpu. GGUF keeps the head size in
// `{arch}.attention.key_length`/`value_length`; greedy decoding through the KV cache gives the tokens full
// forward passes give; inconsistent configs are refused with errors that name the problem.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import type { Backend } from '../../src/backends/backend.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { type LlamaCheckpoint, type LlamaConfig, expectedTensorShapes, validateCheckpoint } from '../../src/formats/checkpoint.js';
import { parseGguf, ggufMeta } from '../../src/formats/gguf.js';
import { checkpointToGguf, readGgufCheckpoint } from '../../src/formats/gguf-llama.js';
import { hfLlamaConfig } from '../../src/formats/hf.js';
import { loadCheckpointFile } from '../../src/formats/node-fs.js';
import { Graph } from '../../src/graph/graph.js';
import { buildLlama } from '../../src/model/llama.js';
import { uploadWeights } from '../../src/model/runtime.js';
import { syntheticCheckpoint } from '../../src/model/synthetic.js';
import { Session } from '../../src/scheduler/session.js';
import { otherBackends } from '../backends/backends.js';
import { logitsF64, maxGap } from './ours.js';
import { readF64, requireTorch, runReference, writeHfModel } from './python.js';

const B = 2, T = 7;
// dim / nHeads = 8, but each head is 12 wide: q is 48 rows, k and v 24.
const CONFIG: LlamaConfig = {
  dim: 32, hiddenDim: 48, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 12, vocabSize: 40, maxSeqLen: 64,
  normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: false, qkvBias: true, ropeLayout: 'half', architecture: 'llama',
};
const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 7 + 3) % CONFIG.vocabSize);
const rows = [Array.from(ids.subarray(0, T)), Array.from(ids.subarray(T))];

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-head-dim-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

let loaded: Promise<{ ckpt: LlamaCheckpoint; ref: Float64Array }> | undefined;
function prepare() {
  loaded ??= (async () => {
    requireTorch();
    const folder = writeHfModel(syntheticCheckpoint(CONFIG, { seed: 5, scale: 0.5 }), join(dir, 'hf'));
    const ckpt = await loadCheckpointFile(folder);
    const logits = join(dir, 'base.logits.f64');
    runReference('llama_ref.py', { model: folder, runs: [{ name: 'base', adapter: null, ids: rows, targets: rows, logits }] }, dir);
    return { ckpt, ref: readF64(logits) };
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

test('config.json head_dim is read into the config and shapes the projections', async () => {
  const { ckpt } = await prepare();
  assert.is(ckpt.config.headDim, 12);
  assert.equal(ckpt.tensors.get('model.layers.0.self_attn.q_proj.weight')!.shape, [48, 32]);
  assert.equal(ckpt.tensors.get('model.layers.0.self_attn.k_proj.weight')!.shape, [24, 32]);
  assert.equal(ckpt.tensors.get('model.layers.0.self_attn.o_proj.weight')!.shape, [32, 48]);
  // head_dim equal to hidden_size / num_attention_heads leaves the config as before.
  const plain = hfLlamaConfig({ hidden_size: 32, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 4, vocab_size: 9, head_dim: 8 });
  assert.is(plain.headDim, undefined);
});

test('logits match the float64 reference on js (float64) within 1e-5', async () => {
  const { ckpt, ref } = await prepare();
  const ours = await logitsF64(new AdaptedModel(ckpt), ids, B, T);
  assert.is(ours.length, ref.length);
  const gap = maxGap(ours, ref);
  assert.ok(gap < 1e-5, `max |logit difference| ${gap}`);
  // The model is not degenerate: a head size of dim / nHeads would give other logits (checked by the reference's shapes, and here by spread).
  assert.ok(Math.max(...ref) - Math.min(...ref) > 0.1, 'logits nearly constant');
});

test('logits on js float32, wasm and webgpu match the reference within 1e-4 of the largest logit', async () => {
  const { ckpt, ref } = await prepare();
  const scale = Math.max(...ref.map(Math.abs));
  for (const { name, backend } of [{ name: 'js', backend: createJsBackend() }, ...(await otherBackends())]) {
    const gap = maxGap(await logitsOn(ckpt, backend), ref);
    assert.ok(gap < 1e-4 * scale, `${name}: max |logit difference| ${gap} (largest logit ${scale})`);
  }
});

test('greedy decoding through the KV cache gives the tokens of full forward passes', async () => {
  const { ckpt } = await prepare();
  const model = new AdaptedModel(ckpt);
  const rt = model.runtime(createJsBackend());
  const prompt = rows[0]!.slice(0, 3);
  const cached = await rt.generate(prompt, { maxTokens: 4, temperature: 0, stopTokens: [] });
  rt.dispose();
  const seq = [...prompt];
  for (let i = 0; i < 4; i++) {
    const g = new Graph();
    const net = buildLlama(g, ckpt.config, { batch: 1, seq: seq.length });
    g.markOutput(net.logits);
    const s = await Session.create(g, createJsBackend({ precision: 'f64' }));
    uploadWeights(s, net.weights, ckpt);
    s.set(net.ids, Int32Array.from(seq));
    await s.run();
    const l = await s.get(net.logits);
    s.dispose();
    const last = Array.from(l.subarray((seq.length - 1) * CONFIG.vocabSize, seq.length * CONFIG.vocabSize));
    seq.push(last.indexOf(Math.max(...last)));
  }
  assert.equal(cached.slice(-4), seq.slice(prompt.length));
});

test('GGUF keeps the head size in attention.key_length / value_length and reads it back', async () => {
  const { ckpt } = await prepare();
  const file = parseGguf(checkpointToGguf(ckpt), 'hd.gguf');
  assert.is(ggufMeta(file, 'llama.attention.key_length'), 12);
  assert.is(ggufMeta(file, 'llama.attention.value_length'), 12);
  assert.is(ggufMeta(file, 'llama.rope.dimension_count'), 12);
  const back = await readGgufCheckpoint(file);
  assert.is(back.config.headDim, 12);
  const a = await logitsOn(ckpt, createJsBackend()), b = await logitsOn(back, createJsBackend());
  assert.ok(maxGap(a, b) < 1e-5, `logits after the GGUF round trip differ by ${maxGap(a, b)}`);
});

test('inconsistent head sizes are refused with errors that name the problem', () => {
  const base = { hidden_size: 30, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 4, vocab_size: 9 };
  assert.throws(() => hfLlamaConfig(base), /hidden_size 30 is not a multiple of num_attention_heads 4 and head_dim is not given/);
  assert.throws(() => hfLlamaConfig({ ...base, head_dim: 7 }), /head_dim is 7, expected a positive even integer/);
  assert.throws(() => hfLlamaConfig({ ...base, head_dim: 0 }), /head_dim is 0/);
  assert.is(hfLlamaConfig({ ...base, head_dim: 6 }).headDim, 6);
  // A q_proj sized as dim × dim where the config says nHeads·headDim rows.
  const ckpt = syntheticCheckpoint(CONFIG);
  const tensors = new Map(ckpt.tensors);
  tensors.set('model.layers.1.self_attn.q_proj.weight', { shape: [32, 32], data: new Float32Array(32 * 32) });
  assert.throws(() => validateCheckpoint({ ...ckpt, tensors }), /q_proj\.weight has shape \[32, 32\], expected \[48, 32\]/);
  assert.throws(() => validateCheckpoint({ ...ckpt, config: { ...CONFIG, headDim: 5 } }), /head size 5 is odd/);
  assert.equal(expectedTensorShapes({ ...CONFIG, headDim: undefined }).get('model.layers.0.self_attn.o_proj.weight'), [32, 32]);
});

test.run();
