// HFT: every layer trains exactly 2 of q/k/v/o; the FFN trains 1 of gate/up/down in ⌊L/2⌋ layers and 2 in
// the others; the draw changes between stages; the printed fraction equals a count over the model's shapes
// (not 0.5 under grouped-query attention); frozen projections stay bit-identical through a stage.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createJsBackend } from '../../src/backends/js/index.js';
import { tensorF32 } from '../../src/formats/checkpoint.js';
import { ATTENTION, FFN, HFT, categoryOf, drawHft, hftUpdater } from '../../src/updaters/hft/index.js';
import { baseTensors, trainBaseWeights } from '../../src/updaters/train.js';
import { layerOf } from '../../src/updaters/types.js';
import { seededRandom } from '../../src/util/random.js';
import { maxAbsDiff, storyData } from './helpers.js';

test('each draw: 2 attention categories per layer, 1 FFN category in half of the layers and 2 in the rest', async () => {
  const { ckpt } = await storyData();
  const tensors = baseTensors(ckpt);
  const L = ckpt.config.nLayers;
  const seen = new Set<string>();
  const rng = seededRandom(11);
  for (let k = 0; k < 20; k++) {
    const d = drawHft(tensors, rng);
    const ffnCounts: number[] = [];
    for (let l = 0; l < L; l++) {
      const on = (cats: readonly string[]) => cats.filter((c) => d.names.has(`model.layers.${l}.${ATTENTION.includes(c as never) ? 'self_attn' : 'mlp'}.${c}.weight`)).length;
      assert.is(on(ATTENTION), 2, `layer ${l} attention`);
      ffnCounts.push(on(FFN));
      // Norms train.
      assert.ok(d.names.has(`model.layers.${l}.input_layernorm.weight`) && d.names.has(`model.layers.${l}.post_attention_layernorm.weight`));
    }
    assert.is(ffnCounts.filter((c) => c === 1).length, Math.floor(L / 2));
    assert.is(ffnCounts.filter((c) => c === 2).length, L - Math.floor(L / 2));
    assert.ok(d.names.has('model.embed_tokens.weight') && d.names.has('model.norm.weight'), 'a tied embedding and the final norm train');
    seen.add([...d.names].sort().join());
  }
  assert.ok(seen.size > 10, `the draws vary (${seen.size} distinct of 20)`);
});

test('an untied embedding/head pair trains one of the two; fused projections are refused', () => {
  const tensors = [
    { name: 'model.embed_tokens.weight', shape: [10, 4] }, { name: 'lm_head.weight', shape: [10, 4] },
    ...[...ATTENTION.map((c) => `self_attn.${c}`), ...FFN.map((c) => `mlp.${c}`)].map((c) => ({ name: `model.layers.0.${c}.weight`, shape: [4, 4], layer: 0 })),
  ];
  const picks = new Set<string>();
  const rng = seededRandom(1);
  for (let k = 0; k < 20; k++) {
    const d = drawHft(tensors, rng);
    assert.is(['model.embed_tokens.weight', 'lm_head.weight'].filter((n) => d.names.has(n)).length, 1);
    picks.add(d.headPair!);
  }
  assert.is(picks.size, 2);
  assert.throws(() => drawHft([{ name: 'model.layers.0.self_attn.qkv_proj.weight', shape: [12, 4], layer: 0 }], rng), /layer 0 has no separate q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj/);
});

test('training: the printed fraction equals a direct count from the shapes; frozen projections stay bit-identical', async () => {
  const { ckpt, train } = await storyData();
  const lines: string[] = [];
  const fractions: number[] = [];
  const r = await trainBaseWeights(hftUpdater({ stage: 3 }), {
    checkpoint: ckpt, backend: createJsBackend(), data: train, steps: 3, batch: 2, lr: 1e-3, seed: 5, log: (l) => lines.push(l), onStep: (s) => fractions.push(s.trainableFraction),
  });
  const stage = lines.filter((l) => l.startsWith('hft: stage'));
  assert.is(stage.length, 1, lines.join('\n'));
  const m = /trainable fraction ([\d.]+) \((.*)\)$/.exec(stage[0]!)!;
  const printed = Number(m[1]);
  // "layer:cat+cat+…" for each layer: count the elements of what trains, independently of the updater.
  const trains = new Map(m[2]!.split(' ').map((s) => { const [l, cats] = s.split(':'); return [Number(l), new Set(cats!.split('+').map((c) => `${c}_proj`))]; }));
  let on = 0, all = 0;
  for (const [n, t] of ckpt.tensors) {
    const size = t.shape.reduce((a, b) => a * b, 1);
    all += size;
    const l = layerOf(n), c = categoryOf(n);
    const trainsNow = l === undefined || c === undefined || trains.get(l)!.has(c);
    if (trainsNow) on += size;
    const changed = maxAbsDiff(tensorF32(t), tensorF32(r.checkpoint.tensors.get(n)!)) > 0;
    assert.is(changed, trainsNow, `${n}: changed ${changed}, trains ${trainsNow}`);
  }
  assert.ok(Math.abs(printed - on / all) < 1e-4, `printed ${printed}, counted ${on / all}`);
  assert.ok(Math.abs(fractions[0]! - on / all) < 1e-12);
  // Grouped-query attention (4 KV heads of 8): k and v are half the size of q and o, so not one half.
  assert.ok(Math.abs(on / all - 0.5) > 0.01, `${on / all}`);
  assert.is(r.summary.hftStages, 1);
});

test('stages redraw: a stage of 2 steps over 5 steps draws 3 times; the registry entry refuses a negative stage', async () => {
  const { ckpt, train } = await storyData();
  const lines: string[] = [];
  await trainBaseWeights(hftUpdater({ stage: 2 }), { checkpoint: ckpt, backend: createJsBackend(), data: train, steps: 5, batch: 2, lr: 1e-3, seed: 5, log: (l) => lines.push(l) });
  const stages = lines.filter((l) => l.startsWith('hft: stage'));
  assert.equal(stages.map((l) => /from step (\d+)/.exec(l)![1]), ['1', '3', '5']);
  assert.is(new Set(stages.map((l) => l.replace(/^hft: stage \d+ from step \d+/, ''))).size, 3);
  assert.is(HFT.options['hft-stage']!.default, 100);
  assert.throws(() => hftUpdater({ stage: -1 }), /stage must be an integer ≥ 0/);
});

test.run();
