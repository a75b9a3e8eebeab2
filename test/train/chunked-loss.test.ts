// Chunked cross-entropy fused with the output head: loss and gradients equal the plain op on the whole
// logits, whether the chunks are recomputed in backward or (a frozen head: `rowsOnly`) have their gradient
// formed in the forward pass (float64 js within 1e-10, float32 js and wasm within 1e-6 relative), with ignored and
// out-of-range targets, a ragged last chunk, a chunk with nothing counted and an ignore index inside the
// vocabulary; through the model with adapters on the head and virtual tokens (float32: no further than
// 1e-6 beyond float32's own distance from float64); and the planned arena of a vocabulary-heavy model
// shrinks by more than the logits' size.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import type { Backend } from '../../src/backends/backend.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { type LlamaCheckpoint, type LlamaConfig, type NamedTensor, tensorF32 } from '../../src/formats/checkpoint.js';
import * as F from '../../src/graph/api.js';
import { gradients } from '../../src/graph/autodiff.js';
import { Graph, type Tensor } from '../../src/graph/graph.js';
import { buildLlama } from '../../src/model/llama.js';
import { ceChunkRows, chunkedCrossEntropy, nextTokenLoss } from '../../src/model/loss.js';
import { uploadWeights } from '../../src/model/runtime.js';
import { planGraph } from '../../src/scheduler/plan.js';
import { createBackend } from '../../src/scheduler/backends.js';
import { Session } from '../../src/scheduler/session.js';
import { buildTrainingGraph } from '../../src/train/finetune.js';
import { maxRelErr, randn, rng } from '../helpers.js';
import { randomizeParams, stories } from '../methods/helpers.js';

const wasm = (await createBackend('wasm', { threads: 2 })).backend;
const backends: { name: string; backend: Backend; tol: number }[] = [
  { name: 'js f64', backend: createJsBackend({ precision: 'f64' }), tol: 1e-10 },
  { name: 'js f32', backend: createJsBackend(), tol: 1e-6 },
  { name: 'wasm', backend: wasm, tol: 1e-6 },
];

/** Loss and gradients (rows, weight) of cross-entropy over rows·Wᵀ, chunked (chunk > 0) or plain. */
async function headLoss(backend: Backend, targets: number[], chunk: number, ignoreIndex = -100, rowsOnly = false): Promise<Float64Array[]> {
  const N = targets.length, D = 8, V = 50;
  const g = new Graph();
  const h = g.param('h', [N, D]), w = g.param('w', [V, D]), t = g.input('t', [N], 'i32');
  const head = (r: Tensor): Tensor => F.matmul(r, w, { transB: true });
  const { loss, segments } = chunk > 0 ? chunkedCrossEntropy(h, head, t, V, chunk, ignoreIndex, { rowsOnly }) : { loss: F.crossEntropy(head(h), t, ignoreIndex), segments: [] };
  if (chunk > 0) assert.is(segments.length, rowsOnly ? 0 : Math.ceil(N / chunk));
  const grads = gradients(loss, [h, w], { checkpoint: segments });
  g.markOutput(loss);
  const s = await Session.create(g, backend);
  const f64 = backend.describe().includes('f64');
  for (const [p, seed] of [[h, 1], [w, 2]] as const) {
    const d = randn(p.shape[0]! * D, seed, 2);
    s.set(p, f64 ? d : Float32Array.from(d));
  }
  s.set(t, Int32Array.from(targets));
  await s.run();
  const out = await s.getMany([loss, grads.get(h), grads.get(w)]);
  s.dispose();
  return out.map((a) => Float64Array.from(a));
}

test('chunked equals plain: ignored and out-of-range targets, a ragged last chunk, a chunk with nothing counted', async () => {
  const r = rng(3);
  // 37 rows in chunks of 8: rows 8..15 all ignored; the last chunk has 5 rows.
  const targets = Array.from({ length: 37 }, (_, i) => (i >= 8 && i < 16) || i % 7 === 2 ? -100 : i === 20 ? 60 : Math.floor(r() * 50));
  for (const { name, backend, tol } of backends) {
    const plain = await headLoss(backend, targets, 0);
    for (const chunk of [8, 5, 1]) {
      const chunked = await headLoss(backend, targets, chunk);
      assert.ok(Math.abs(chunked[0]![0]! - plain[0]![0]!) <= tol * Math.abs(plain[0]![0]!), `${name} chunk ${chunk}: loss ${chunked[0]![0]} vs ${plain[0]![0]}`);
      for (const k of [1, 2]) {
        const e = maxRelErr(chunked[k]!, plain[k]!);
        assert.ok(e <= tol, `${name} chunk ${chunk}: gradient ${k === 1 ? 'rows' : 'weight'} relative error ${e}`);
      }
      // rowsOnly: each chunk's gradient formed in the forward pass; the same loss and rows gradient, and
      // (its contract) none for the head's weight.
      const early = await headLoss(backend, targets, chunk, -100, true);
      assert.ok(Math.abs(early[0]![0]! - plain[0]![0]!) <= tol * Math.abs(plain[0]![0]!), `${name} chunk ${chunk} rowsOnly: loss ${early[0]![0]} vs ${plain[0]![0]}`);
      assert.ok(maxRelErr(early[1]!, plain[1]!) <= tol, `${name} chunk ${chunk} rowsOnly: rows gradient relative error ${maxRelErr(early[1]!, plain[1]!)}`);
      assert.ok(early[2]!.every((v) => v === 0), `${name} chunk ${chunk} rowsOnly: the weight got a gradient`);
    }
  }
});

test('an ignore index inside the vocabulary, and every target ignored (loss and gradients zero, as the op)', async () => {
  const backend = backends[0]!.backend;
  const r = rng(4);
  const targets = Array.from({ length: 20 }, () => Math.floor(r() * 6));
  const [plain, chunked] = [await headLoss(backend, targets, 0, 3), await headLoss(backend, targets, 6, 3)];
  assert.ok(targets.includes(3));
  assert.ok(Math.abs(chunked[0]![0]! - plain[0]![0]!) <= 1e-12 * plain[0]![0]!, `loss ${chunked[0]![0]} vs ${plain[0]![0]}`);
  assert.ok(maxRelErr(chunked[1]!, plain[1]!) <= 1e-10 && maxRelErr(chunked[2]!, plain[2]!) <= 1e-10);
  const none = await headLoss(backend, targets.map(() => -100), 6);
  assert.is(none[0]![0], 0);
  assert.ok(none[1]!.every((v) => v === 0) && none[2]!.every((v) => v === 0));
});

/** stories260K with its own (untied) output head, so adapters can target lm_head. */
async function untiedStories(): Promise<LlamaCheckpoint> {
  const ck = await stories();
  const embed = ck.tensors.get('model.embed_tokens.weight')!;
  const table = tensorF32(embed);
  const noise = randn(table.length, 8, 0.02);
  const head: NamedTensor = { shape: embed.shape, data: Float32Array.from(table, (v, i) => v + noise[i]!) };
  return { ...ck, config: { ...ck.config, nLayers: 2, tiedEmbeddings: false }, tensors: new Map([...ck.tensors, ['lm_head.weight', head]]) };
}

/** Training loss and adapter gradients: nextTokenLoss with `chunk` rows, or (chunk undefined) the whole logits as fineTune built them before chunking. */
async function modelLoss(model: AdaptedModel, backend: Backend, chunk: number | undefined): Promise<Float64Array[]> {
  const B = 2, T = 12, V = model.base.config.vocabSize;
  let t;
  if (chunk !== undefined) {
    t = buildTrainingGraph(model, 't', { batch: B, seq: T, ceChunk: chunk });
    // A trained head gets recomputing chunks (a checkpoint segment each); a frozen one has each chunk's
    // gradient formed in the forward pass, with no segment.
    const headTrained = model.get('t').modules.some((m) => m.name === 'lm_head');
    assert.is(t.segments.length, chunk && headTrained ? Math.ceil(B * T / chunk) : 0);
  } else {
    const g = new Graph();
    const { hooks, built } = model.hooks({ training: true });
    const net = buildLlama(g, model.base.config, { batch: B, seq: T, hooks });
    const targets = g.input('targets', [B * T], 'i32');
    const logits = net.virtualTokens ? F.slice(net.logits, 1, net.virtualTokens, net.virtualTokens + T) : net.logits;
    const loss = F.crossEntropy(F.reshape(logits, [-1, V]), targets);
    t = { graph: g, model: net, targets, loss, trainable: [...built.get(g)!.values()], segments: [] };
  }
  const grads = gradients(t.loss, t.trainable, { checkpoint: t.segments });
  t.graph.markOutput(t.loss);
  const s = await Session.create(t.graph, backend);
  uploadWeights(s, t.model.weights, model.effectiveCheckpoint());
  model.uploadAdapterParams(s);
  const r = rng(6);
  s.set(t.model.ids, Int32Array.from({ length: B * T }, () => Math.floor(r() * V)));
  s.set(t.targets, Int32Array.from({ length: B * T }, (_, i) => (i % 4 === 1 ? -100 : Math.floor(r() * V))));
  await s.run();
  const out = await s.getMany([t.loss, ...t.trainable.map((p) => grads.get(p))]);
  s.dispose();
  return out.map((a) => Float64Array.from(a));
}

test('through the model: LoRA on the untied head, and prompt tuning\'s virtual tokens: chunked equals the whole logits', async () => {
  const ck = await untiedStories();
  const lora = new AdaptedModel(ck);
  lora.addAdapter('t', 'lora', { r: 4, targetModules: ['q_proj', 'lm_head'] }, { seed: 1 });
  randomizeParams(lora, 't');
  const prompt = new AdaptedModel(await stories());
  prompt.addAdapter('t', 'prompt', { numVirtualTokens: 3 }, { seed: 1 });
  for (const [label, model] of [['lora', lora], ['prompt', prompt]] as const) {
    const exact = await modelLoss(model, backends[0]!.backend, undefined);
    for (const { name, backend, tol } of backends) {
      const whole = await modelLoss(model, backend, undefined);
      for (const chunk of [7, 0]) {
        const got = await modelLoss(model, backend, chunk);
        assert.is(got.length, whole.length);
        got.forEach((a, k) => {
          // In float32 a chunk's rows go through differently shaped kernels (another summation order), so
          // the check is that chunking moves no value further from the float64 result than float32 already does.
          const e = name === 'js f64' ? maxRelErr(a, whole[k]!) : maxRelErr(a, exact[k]!) - maxRelErr(whole[k]!, exact[k]!);
          assert.ok(e <= tol, `${label} ${name} chunk ${chunk}: ${k === 0 ? 'loss' : `gradient ${k}`} relative error ${e}`);
        });
      }
    }
  }
});

test('evaluation in chunks gives the loss of evaluation in one piece (js, wasm; within 1e-6)', async () => {
  const model = new AdaptedModel(await untiedStories());
  model.addAdapter('t', 'lora', { r: 4, targetModules: ['v_proj', 'lm_head'] }, { seed: 2 });
  randomizeParams(model, 't');
  const r = rng(12), V = model.base.config.vocabSize;
  const rows = Array.from({ length: 3 }, () => Array.from({ length: 10 }, () => Math.floor(r() * V)));
  const targets = rows.map((row) => row.map((_, i) => (i === 0 ? -100 : Math.floor(r() * V))));
  for (const { name, backend } of backends.slice(1)) {
    const rt = model.runtime(backend);
    const whole = await rt.evalTargets(rows, targets, { batch: 2, ceChunk: 0 });
    const chunked = await rt.evalTargets(rows, targets, { batch: 2, ceChunk: 3 });
    rt.dispose();
    assert.is(chunked.tokens, 27);
    assert.is(whole.tokens, 27);
    assert.ok(Math.abs(chunked.loss - whole.loss) <= 1e-6 * whole.loss, `${name}: ${chunked.loss} vs ${whole.loss}`);
  }
});

test('a vocabulary-heavy model: the planned training arena shrinks by more than the whole logits', () => {
  const config: LlamaConfig = {
    dim: 64, hiddenDim: 172, nLayers: 2, nHeads: 8, nKvHeads: 4, vocabSize: 32000, maxSeqLen: 256, normEps: 1e-5,
    ropeTheta: 10000, tiedEmbeddings: false, qkvBias: false, ropeLayout: 'half', architecture: 'llama',
  };
  const B = 4, T = 128;
  const arena = (ceChunk: number): number => {
    const g = new Graph();
    const net = buildLlama(g, config, { batch: B, seq: T });
    const { loss, segments } = nextTokenLoss(net, g.input('targets', [B * T], 'i32'), { ceChunk });
    gradients(loss, [net.weights.get('model.layers.0.input_layernorm.weight')!], { checkpoint: segments });
    g.markOutput(loss);
    return planGraph(g).arenaElems;
  };
  const [plain, chunked] = [arena(0), arena(64)];
  assert.ok(plain - chunked >= B * T * config.vocabSize, `arena ${plain} → ${chunked} elements; the logits are ${B * T * config.vocabSize}`);
});

test("'auto' chunks only past 64 MiB of logits; a bad ceChunk is refused by name", () => {
  assert.is(ceChunkRows('auto', 4096, 151936), 110);
  assert.is(ceChunkRows('auto', 2048, 512), 0);
  assert.is(ceChunkRows(256, 100, 32000), 0);
  assert.is(ceChunkRows(64, 100, 32000), 64);
  assert.throws(() => ceChunkRows(-1, 100, 10), /ceChunk must be/);
  assert.throws(() => ceChunkRows(2.5, 100, 10), /ceChunk must be/);
});

test.run();
