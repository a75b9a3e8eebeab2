// Sliding-window attention as config.json and GGUF give it: the window, which layers use it (layer_types;
// Qwen2's max_window_layers), and what GGUF can hold. The attention itself is checked against the float64
// reference in test/reference/sliding-window.test.ts; here graphs and generation go past the window.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import type { LlamaConfig } from '../../src/formats/checkpoint.js';
import { parseGguf, ggufMeta } from '../../src/formats/gguf.js';
import { checkpointToGguf, readGgufCheckpoint } from '../../src/formats/gguf-llama.js';
import { hfConfigJson } from '../../src/cli/write-model.js';
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
  assert.is(hfLlamaConfig({ ...base, model_type: 'qwen2', sliding_window: 8, use_sliding_window: true, max_window_layers: 0 }).slidingWindow, 8);
  assert.throws(() => hfLlamaConfig({ ...base, model_type: 'mistral', sliding_window: 0 }), /sliding_window is 0, expected a positive integer/);
});

const CONFIG: LlamaConfig = {
  dim: 16, hiddenDim: 8, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: 9, maxSeqLen: 64, normEps: 1e-5, ropeTheta: 10000,
  tiedEmbeddings: true, qkvBias: false, ropeLayout: 'half', architecture: 'mistral', slidingWindow: 6,
};

test('layer_types is read; Qwen2 derives it from max_window_layers; bad types are refused', () => {
  const three = { ...base, num_hidden_layers: 3 };
  const mixed = ['sliding_attention', 'full_attention', 'sliding_attention'];
  assert.equal(hfLlamaConfig({ ...three, model_type: 'mistral', sliding_window: 8, layer_types: mixed }).layerTypes, mixed);
  // All sliding is the same as no layer_types; all full is no window at all.
  const all = hfLlamaConfig({ ...three, model_type: 'mistral', sliding_window: 8, layer_types: ['sliding_attention', 'sliding_attention', 'sliding_attention'] });
  assert.is(all.slidingWindow, 8); assert.is(all.layerTypes, undefined);
  assert.is(hfLlamaConfig({ ...three, model_type: 'mistral', sliding_window: 8, layer_types: ['full_attention', 'full_attention', 'full_attention'] }).slidingWindow, undefined);
  // transformers' Qwen2: layers from max_window_layers on slide (default 28, so none of these three).
  const qwen = { ...three, model_type: 'qwen2', sliding_window: 8, use_sliding_window: true };
  assert.equal(hfLlamaConfig({ ...qwen, max_window_layers: 1 }).layerTypes, ['full_attention', 'sliding_attention', 'sliding_attention']);
  assert.is(hfLlamaConfig({ ...qwen, max_window_layers: 0 }).layerTypes, undefined);
  assert.is(hfLlamaConfig({ ...qwen, max_window_layers: 0 }).slidingWindow, 8);
  assert.is(hfLlamaConfig(qwen).slidingWindow, undefined);
  assert.throws(() => hfLlamaConfig({ ...three, model_type: 'mistral', sliding_window: 8, layer_types: ['sliding_attention'] }), /layer_types must list one type per layer \(3\)/);
  assert.throws(() => hfLlamaConfig({ ...three, model_type: 'mistral', sliding_window: 8, layer_types: ['chunked_attention', 'full_attention', 'full_attention'] }), /layer_types\[0\] is "chunked_attention"/);
});

test('graphs longer than the window build, with a window on each sliding layer only', () => {
  const windows = (c: LlamaConfig, opts: { seq: number; cacheLen?: number }) => {
    const g = new Graph();
    buildLlama(g, c, { batch: 1, ...opts });
    return g.nodes.filter((n) => n.op === 'attention').map((n) => n.attrs.window);
  };
  assert.equal(windows(CONFIG, { seq: 9 }), [6]);
  assert.equal(windows(CONFIG, { seq: 1, cacheLen: 20 }), [6]);
  assert.equal(windows({ ...CONFIG, nLayers: 2, layerTypes: ['full_attention', 'sliding_attention'] }, { seq: 9 }), [undefined, 6]);
});

test('GGUF keeps the window in attention.sliding_window', async () => {
  const file = parseGguf(checkpointToGguf(syntheticCheckpoint(CONFIG)), 'w.gguf');
  // Mistral is written as llama (llama.cpp has no "mistral" architecture); the window key goes with it.
  assert.is(ggufMeta(file, 'general.architecture'), 'llama');
  assert.is(ggufMeta(file, 'llama.attention.sliding_window'), 6);
  assert.is((await readGgufCheckpoint(file)).config.slidingWindow, 6);
});

test('the config.json written for a model keeps the window and layer types', () => {
  const c = { ...CONFIG, nLayers: 2, layerTypes: ['full_attention', 'sliding_attention'] as LlamaConfig['layerTypes'] };
  const json = hfConfigJson(syntheticCheckpoint(c));
  assert.is(json.model_type, 'mistral');
  const back = hfLlamaConfig(json);
  assert.is(back.slidingWindow, 6);
  assert.equal(back.layerTypes, c.layerTypes);
});

test('GGUF cannot hold a window on some layers only: export is refused', () => {
  const ckpt = syntheticCheckpoint({ ...CONFIG, nLayers: 2, layerTypes: ['full_attention', 'sliding_attention'] });
  assert.throws(() => checkpointToGguf(ckpt), /sliding window on some layers only/);
});

test('generation runs past the window, up to the full context', async () => {
  const rt = new AdaptedModel(syntheticCheckpoint(CONFIG)).runtime(createJsBackend());
  let full = 0;
  const out = await rt.generate([1, 2, 3], { maxTokens: 20, temperature: 0, stopTokens: [], onContextFull: (n) => { full = n; } });
  rt.dispose();
  assert.is(full, 0);
  assert.is(out.length, 20);
});

test.run();
