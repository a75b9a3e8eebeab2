// Activation checkpointing: gradients with and without it are bit-identical on js and wasm (≤ 1e-5
// relative on webgpu) for LoRA with dropout (the masks must repeat on recompute) and for bottleneck
// adapters (a sublayer hook); no backward node reads a layer's inner activations, and the planned arena
// of a 5-layer model shrinks below 0.6× (structural: the memory plan, not a measurement).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import type { Backend } from '../../src/backends/backend.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import type { LlamaCheckpoint } from '../../src/formats/checkpoint.js';
import { gradients } from '../../src/graph/autodiff.js';
import { layerSegments } from '../../src/graph/checkpoint.js';
import { uploadWeights } from '../../src/model/runtime.js';
import { planGraph } from '../../src/scheduler/plan.js';
import { Session } from '../../src/scheduler/session.js';
import { buildTrainingGraph, fineTune } from '../../src/train/finetune.js';
import { otherBackends } from '../backends/backends.js';
import { maxRelErr, rng } from '../helpers.js';
import { heroBlocks, randomizeParams, stories } from '../methods/helpers.js';

const full = await stories();
const twoLayers: LlamaCheckpoint = { ...full, config: { ...full.config, nLayers: 2 } };
const backends: { name: string; backend: Backend; exact: boolean }[] = [
  { name: 'js', backend: createJsBackend(), exact: true },
  ...(await otherBackends()).map((b) => ({ ...b, exact: b.name !== 'webgpu' })),
];

/** Loss and every trainable gradient of one training step's graph on a fixed batch. */
async function stepGradients(model: AdaptedModel, backend: Backend, checkpointing: boolean): Promise<{ loss: number; grads: Float32Array[]; recomputed: number }> {
  const B = 2, T = 16, V = model.base.config.vocabSize;
  const t = buildTrainingGraph(model, 't', { batch: B, seq: T, checkpointing });
  const grads = gradients(t.loss, t.trainable, { checkpoint: t.segments });
  t.graph.markOutput(t.loss);
  const s = await Session.create(t.graph, backend);
  uploadWeights(s, t.model.weights, model.effectiveCheckpoint());
  model.uploadAdapterParams(s);
  const r = rng(9);
  s.set(t.model.ids, Int32Array.from({ length: B * T }, () => Math.floor(r() * V)));
  s.set(t.targets, Int32Array.from({ length: B * T }, (_, i) => (i % 5 === 3 ? -100 : Math.floor(r() * V))));
  const seed = t.graph.byName('dropout_seed');
  if (seed) s.set(seed, Int32Array.of(12345));
  await s.run();
  const [loss, ...gs] = await s.getMany([t.loss, ...t.trainable.map((p) => grads.get(p))]);
  s.dispose();
  return { loss: loss![0]!, grads: gs.map((g) => Float32Array.from(g)), recomputed: t.graph.nodes.filter((n) => n.name?.endsWith('.recompute')).length };
}

async function compare(model: AdaptedModel, label: string): Promise<void> {
  for (const { name, backend, exact } of backends) {
    const plain = await stepGradients(model, backend, false);
    const ckpt = await stepGradients(model, backend, true);
    assert.is(plain.recomputed, 0);
    assert.ok(ckpt.recomputed > 0, 'the checkpointed graph recomputes nodes');
    assert.ok(plain.grads.some((g) => g.some((v) => v !== 0)), 'some gradient is non-zero');
    if (exact) {
      assert.is(ckpt.loss, plain.loss, `${label} ${name}: loss`);
      plain.grads.forEach((g, i) => assert.ok(g.every((v, k) => Object.is(v, ckpt.grads[i]![k])), `${label} ${name}: gradient ${i} differs`));
    } else {
      const worst = Math.max(...plain.grads.map((g, i) => maxRelErr(ckpt.grads[i]!, g)));
      assert.ok(worst <= 1e-5, `${label} ${name}: relative difference ${worst}`);
    }
  }
}

test('LoRA with dropout on a 2-layer model: checkpointed gradients are bit-identical (js, wasm; webgpu ≤ 1e-5)', async () => {
  const model = new AdaptedModel(twoLayers);
  model.addAdapter('t', 'lora', { r: 4, alpha: 8, dropout: 0.2, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] }, { seed: 1 });
  randomizeParams(model, 't');
  await compare(model, 'lora');
});

test('bottleneck adapters (a sublayer hook): checkpointed gradients are bit-identical', async () => {
  const model = new AdaptedModel(twoLayers);
  model.addAdapter('t', 'bottleneck', { placement: 'houlsby', reductionFactor: 8 }, { seed: 2 });
  randomizeParams(model, 't', 0.2);
  await compare(model, 'bottleneck');
});

test('every other method (DoRA, AdaLoRA, TriAdaptLoRA, LaMDA, Hydra, (IA)³, SSF, Compacter, prompt and prefix tuning): bit-identical on js', async () => {
  const ALL = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
  const methods: [string, Record<string, unknown>][] = [
    ['lora', { r: 2, useDora: true, targetModules: ['q_proj', 'down_proj'] }], ['adalora', { initR: 4, targetR: 2, targetModules: ALL }],
    ['triadaptlora', { referenceRank: 4, targetModules: ALL }], ['lamda', { r: 4 }], ['hydra', { r: 2, targetModules: ALL }],
    ['ia3', {}], ['ssf', {}], ['compacter', {}], ['prompt-tuning', { numVirtualTokens: 3 }], ['prefix-tuning', { numVirtualTokens: 3, projection: true }],
  ];
  const js = backends[0]!.backend;
  for (const [method, config] of methods) {
    const model = new AdaptedModel(twoLayers);
    model.addAdapter('t', method, config, { seed: 5 });
    randomizeParams(model, 't', 0.1);
    const [plain, ckpt] = [await stepGradients(model, js, false), await stepGradients(model, js, true)];
    assert.ok(ckpt.recomputed > 0, `${method}: nothing recomputed`);
    assert.is(ckpt.loss, plain.loss, `${method}: loss`);
    plain.grads.forEach((g, i) => assert.ok(g.every((v, k) => Object.is(v, ckpt.grads[i]![k])), `${method}: gradient ${i} differs`));
  }
});

test('layer segments cover each layer; backward nodes read no activation from inside a layer', () => {
  const model = new AdaptedModel(full);
  model.addAdapter('t', 'lora', { r: 4, targetModules: ['q_proj', 'v_proj', 'down_proj'] }, { seed: 1 });
  const t = buildTrainingGraph(model, 't', { batch: 2, seq: 16, checkpointing: true });
  const layers = layerSegments(t.graph);
  assert.equal(layers.map((s) => s.name), [0, 1, 2, 3, 4].map((l) => `model.layers.${l}`));
  layers.slice(1).forEach((s, i) => assert.is(s.start, layers[i]!.end, 'layers are contiguous'));
  const g = t.graph, forwardEnd = g.nodes.length;
  gradients(t.loss, t.trainable, { checkpoint: t.segments });
  for (const s of layers) {
    // A layer's inner values: produced inside it and read by no forward node after it.
    const readAfter = new Set(g.nodes.slice(s.end, forwardEnd).flatMap((n) => n.inputs));
    const inner = new Set(g.nodes.slice(s.start, s.end).flatMap((n) => n.outputs).filter((v) => !readAfter.has(v)));
    const leaked = g.nodes.slice(forwardEnd).filter((n) => n.inputs.some((x) => inner.has(x)));
    assert.is(leaked.length, 0, `${s.name}: backward nodes read its activations: ${leaked.map((n) => `${n.op} (${n.name})`).join(', ')}`);
  }
});

test('the planned arena of a 5-layer model with LoRA is under 0.6× with checkpointing', () => {
  const arena = (checkpointing: boolean): number => {
    const model = new AdaptedModel(full);
    model.addAdapter('t', 'lora', { r: 8, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] }, { seed: 1 });
    const t = buildTrainingGraph(model, 't', { batch: 8, seq: 128, checkpointing });
    gradients(t.loss, t.trainable, { checkpoint: t.segments });
    t.graph.markOutput(t.loss);
    return planGraph(t.graph).arenaElems;
  };
  const [plain, ckpt] = [arena(false), arena(true)];
  assert.ok(ckpt < 0.6 * plain, `arena ${plain} → ${ckpt} elements (${(ckpt / plain).toFixed(2)}×)`);
});

test('fineTune with checkpointing: the same loss curve and adapter, bit for bit, on wasm', async () => {
  const wasm = backends.find((b) => b.name === 'wasm 2 threads')!.backend;
  const run = async (checkpointing: boolean) => {
    const model = new AdaptedModel(full);
    model.addAdapter('t', 'lora', { r: 4, dropout: 0.1, targetModules: ['q_proj', 'v_proj', 'up_proj'] }, { seed: 3 });
    const { losses } = await fineTune({ model, adapter: 't', backend: wasm, data: heroBlocks(full, 32, 8), steps: 3, batch: 2, lr: 1e-2, seed: 4, checkpointing });
    return { losses, params: [...model.get('t').params.values()].map((p) => Array.from(p.data)) };
  };
  const [a, b] = [await run(false), await run(true)];
  assert.equal(b.losses, a.losses);
  assert.equal(b.params, a.params);
});

test.run();
