// Sliding-window attention in the model against the independent float64 PyTorch reference
// (test/reference/llama_ref.py, whose mask is written from Hugging Face Mistral's: key s visible to the
// query at position i when s ≤ i and i − s < sliding_window, on the layers layer_types marks sliding).
// Two random models with a window of 5 over 12 tokens: Mistral-shaped (every layer slides, grouped-query
// heads) and one with per-layer types (full, sliding, full). Tolerances: logits on the float64 js backend
// within 1e-5 absolute of the reference (float64 on both sides); on js float32, wasm and webgpu within 1e-4
// of the largest logit. Step-wise KV-cache decoding past the window (float64 js) gives every position's
// logits of the full forward pass, and the host forward (src/model/host-forward.ts) the cached keys and
// values, within 1e-9 (all float64, only the summation order differs).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Backend } from '../../src/backends/backend.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import type { LlamaCheckpoint, LlamaConfig } from '../../src/formats/checkpoint.js';
import { loadCheckpointFile } from '../../src/formats/node-fs.js';
import { Graph } from '../../src/graph/graph.js';
import { hostKeyValues } from '../../src/model/host-forward.js';
import { buildLlama } from '../../src/model/llama.js';
import { uploadWeights } from '../../src/model/runtime.js';
import { syntheticCheckpoint } from '../../src/model/synthetic.js';
import { Session } from '../../src/scheduler/session.js';
import { otherBackends } from '../backends/backends.js';
import { maxGap } from './ours.js';
import { readF64, requireTorch, runReference, writeHfModel } from './python.js';

const B = 2, T = 12, WINDOW = 5;
const MISTRAL: LlamaConfig = {
  dim: 32, hiddenDim: 48, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 40, maxSeqLen: 64,
  normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: false, qkvBias: false, ropeLayout: 'half', architecture: 'mistral',
  slidingWindow: WINDOW,
};
const MIXED: LlamaConfig = { ...MISTRAL, nLayers: 3, qkvBias: true, layerTypes: ['full_attention', 'sliding_attention', 'full_attention'] };
const CASES = [{ name: 'mistral', config: MISTRAL }, { name: 'layer types', config: MIXED }];
const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 7 + 3) % MISTRAL.vocabSize);
const rows = [Array.from(ids.subarray(0, T)), Array.from(ids.subarray(T))];

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-sliding-window-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

let loaded: Promise<{ ckpt: LlamaCheckpoint; ref: Float64Array }[]> | undefined;
function prepare() {
  loaded ??= (async () => {
    requireTorch();
    return Promise.all(CASES.map(async (c, i) => {
      const folder = writeHfModel(syntheticCheckpoint(c.config, { seed: 11 + i, scale: 0.6 }), join(dir, `hf${i}`));
      const logits = join(dir, `ref${i}.f64`);
      runReference('llama_ref.py', { model: folder, runs: [{ name: c.name, adapter: null, ids: rows, targets: rows, logits }] }, dir);
      return { ckpt: await loadCheckpointFile(folder), ref: readF64(logits) };
    }));
  })();
  return loaded;
}

async function logitsOn(ckpt: LlamaCheckpoint, backend: Backend, config = ckpt.config): Promise<Float64Array> {
  const g = new Graph();
  const net = buildLlama(g, config, { batch: B, seq: T });
  g.markOutput(net.logits);
  const s = await Session.create(g, backend);
  uploadWeights(s, net.weights, ckpt);
  s.set(net.ids, ids);
  await s.run();
  const out = Float64Array.from(await s.get(net.logits));
  s.dispose();
  return out;
}

const f64 = createJsBackend({ precision: 'f64' });

CASES.forEach((c, i) => {
  test(`${c.name}: the window and layer types are read back from config.json`, async () => {
    const { ckpt } = (await prepare())[i]!;
    assert.is(ckpt.config.slidingWindow, WINDOW);
    assert.equal(ckpt.config.layerTypes, c.config.layerTypes);
  });

  test(`${c.name}: logits match the float64 reference on js (float64) within 1e-5`, async () => {
    const { ckpt, ref } = (await prepare())[i]!;
    const ours = await logitsOn(ckpt, f64);
    const gap = maxGap(ours, ref);
    assert.ok(gap < 1e-5, `max |logit difference| ${gap}`);
    // The check can fail: without the window the logits past position 5 differ.
    const plain = await logitsOn(ckpt, f64, { ...ckpt.config, slidingWindow: undefined });
    assert.ok(maxGap(plain, ref) > 1e-3, `the window changed the logits by only ${maxGap(plain, ref)}`);
  });

  test(`${c.name}: js float32, wasm and webgpu within 1e-4 of the largest logit`, async () => {
    const { ckpt, ref } = (await prepare())[i]!;
    const scale = Math.max(...ref.map(Math.abs));
    for (const { name, backend } of [{ name: 'js', backend: createJsBackend() as Backend }, ...(await otherBackends())]) {
      const gap = maxGap(await logitsOn(ckpt, backend), ref);
      backend.dispose();
      assert.ok(gap < 1e-4 * scale, `${name}: max |logit difference| ${gap} (largest logit ${scale})`);
    }
  });

  test(`${c.name}: step-wise KV-cache decoding past the window gives the full forward's logits`, async () => {
    const { ckpt } = (await prepare())[i]!;
    const full = await logitsOn(ckpt, f64);
    const V = ckpt.config.vocabSize;
    const g = new Graph();
    const net = buildLlama(g, ckpt.config, { batch: 1, seq: 1, cacheLen: T });
    g.markOutput(net.logits);
    const s = await Session.create(g, f64);
    uploadWeights(s, net.weights, ckpt);
    let worst = 0, last: Float64Array | undefined;
    for (let p = 0; p < T; p++) {
      s.set(net.ids, Int32Array.of(rows[0]![p]!));
      s.set(net.positions!, Int32Array.of(p));
      s.set(net.pos!, Int32Array.of(p));
      s.set(net.kvLen!, Int32Array.of(p + 1));
      await s.run();
      last = Float64Array.from(await s.get(net.logits));
      worst = Math.max(worst, maxGap(last, full.subarray(p * V, (p + 1) * V)));
    }
    // The host's float64 forward (prefix-tuning initialisation) windows as the graph does: every layer's
    // keys and values equal the cache's (layer 0's do not depend on attention; the later ones do).
    const host = hostKeyValues(ckpt, rows[0]!);
    for (let l = 0; l < ckpt.config.nLayers; l++) {
      const k = await s.get(g.byName(`model.layers.${l}.self_attn.k_cache`)!);
      const v = await s.get(g.byName(`model.layers.${l}.self_attn.v_cache`)!);
      worst = Math.max(worst, maxGap(k, host.keys[l]!), maxGap(v, host.values[l]!));
    }
    s.dispose();
    assert.ok(worst < 1e-9, `decoding or the host forward differs from the full forward by ${worst}`);
    assert.ok(maxGap(last!, full.subarray((T - 1) * V, T * V)) < 1e-9);
  });
});

test.run();
