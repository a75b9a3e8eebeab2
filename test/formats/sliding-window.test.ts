// Sliding-window attention is recorded from config.json and GGUF but not computed as such: graphs whose
// attended span exceeds the window are refused (within the window, causal attention equals windowed
// attention, i − window < j ≤ i), and generation treats the window as the context.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import type { LlamaConfig } from '../../src/formats/checkpoint.js';
import { parseGguf, ggufMeta } from '../../src/formats/gguf.js';
import { checkpointToGguf, readGgufCheckpoint } from '../../src/formats/gguf-llama.js';
import { hfLlamaConfig } from '../../src/formats/hf.js';
import { Graph } from '../../src/graph/graph.js';
import { buildLlama } from '../../src/model/llama.js';
import { syntheticCheckpoint } from '../../src/model/synthetic.js';

const base = { hidden_size: 16, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 2, vocab_size: 9, max_position_embeddings: 64 };

test('config.json: Mistral sliding_window is kept; Qwen2 only with use_sliding_window; null or ≥ context is none', () => {
  assert.is(hfLlamaConfig({ ...base, model_type: 'mistral', sliding_window: 8 }).slidingWindow, 8);
  assert.is(hfLlamaConfig({ ...base, model_type: 'mistral', sliding_window: null }).slidingWindow, undefined);
  assert.is(hfLlamaConfig({ ...base, model_type: 'mistral', sliding_window: 64 }).slidingWindow, undefined);
  assert.is(hfLlamaConfig({ ...base, model_type: 'qwen2', sliding_window: 8, use_sliding_window: false }).slidingWindow, undefined);
  assert.is(hfLlamaConfig({ ...base, model_type: 'qwen2', sliding_window: 8, use_sliding_window: true }).slidingWindow, 8);
  assert.throws(() => hfLlamaConfig({ ...base, model_type: 'mistral', sliding_window: 0 }), /sliding_window is 0, expected a positive integer/);
});

const CONFIG: LlamaConfig = {
  dim: 16, hiddenDim: 8, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: 9, maxSeqLen: 64, normEps: 1e-5, ropeTheta: 10000,
  tiedEmbeddings: true, qkvBias: false, ropeLayout: 'half', architecture: 'mistral', slidingWindow: 6,
};

test('graphs longer than the window are refused; up to the window they build', () => {
  buildLlama(new Graph(), CONFIG, { batch: 1, seq: 6 });
  assert.throws(() => buildLlama(new Graph(), CONFIG, { batch: 1, seq: 7 }), /attention over 7 positions exceeds the model's sliding window of 6/);
  assert.throws(() => buildLlama(new Graph(), CONFIG, { batch: 1, seq: 1, cacheLen: 8 }), /attention over 8 positions exceeds/);
});

test('GGUF keeps the window in attention.sliding_window', async () => {
  const file = parseGguf(checkpointToGguf(syntheticCheckpoint(CONFIG)), 'w.gguf');
  // Mistral is written as llama (llama.cpp has no "mistral" architecture); the window key goes with it.
  assert.is(ggufMeta(file, 'general.architecture'), 'llama');
  assert.is(ggufMeta(file, 'llama.attention.sliding_window'), 6);
  assert.is((await readGgufCheckpoint(file)).config.slidingWindow, 6);
});

test('generation stops at the window, as at a full context', async () => {
  const rt = new AdaptedModel(syntheticCheckpoint(CONFIG)).runtime(createJsBackend());
  let full = 0;
  const out = await rt.generate([1, 2, 3], { maxTokens: 20, temperature: 0, stopTokens: [], onContextFull: (n) => { full = n; } });
  rt.dispose();
  assert.is(full, 6);
  assert.ok(out.length <= 6, `${out.length} tokens`);
});

test.run();
