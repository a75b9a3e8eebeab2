// LISA on stories260K: γ = all layers is full fine-tuning step for step; γ = 0 changes only the embeddings,
// final norm and head; with γ = 2 redrawn every step, the weights equal a float64 AdamW in which a layer that
// leaves loses its moments and a layer that joins starts from zero moments with its own bias correction.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createJsBackend } from '../../src/backends/js/index.js';
import { batchAt } from '../../src/data/dataset.js';
import { tensorF32 } from '../../src/formats/checkpoint.js';
import { fullUpdater } from '../../src/updaters/full/index.js';
import { LISA, lisaUpdater } from '../../src/updaters/lisa/index.js';
import { trainBaseWeights } from '../../src/updaters/train.js';
import { layerOf } from '../../src/updaters/types.js';
import { adamwRef, baseGradients, maxAbsDiff, storyData, valuesOf } from './helpers.js';

const LR = 1e-3, B = 2;
const f32 = (r: Awaited<ReturnType<typeof trainBaseWeights>>, n: string): Float32Array => tensorF32(r.checkpoint.tensors.get(n)!);

test('γ = every layer equals full fine-tuning step for step (≤ 1e-6)', async () => {
  const { ckpt, train } = await storyData();
  const o = { checkpoint: ckpt, data: train, steps: 4, batch: B, lr: LR, decay: 'cosine' as const, maxGradNorm: 1 };
  const full = await trainBaseWeights(fullUpdater(), { ...o, backend: createJsBackend() });
  const lisa = await trainBaseWeights(lisaUpdater({ layers: ckpt.config.nLayers, interval: 1 }), { ...o, backend: createJsBackend() });
  full.losses.forEach((l, i) => assert.ok(Math.abs(l - lisa.losses[i]!) <= 1e-6, `step ${i + 1}: ${l} vs ${lisa.losses[i]}`));
  let worst = 0;
  for (const n of ckpt.tensors.keys()) worst = Math.max(worst, maxAbsDiff(f32(full, n), f32(lisa, n)));
  assert.ok(worst <= 1e-6, `weights differ by ${worst}`);
  assert.ok(maxAbsDiff(f32(full, 'model.layers.2.mlp.up_proj.weight'), tensorF32(ckpt.tensors.get('model.layers.2.mlp.up_proj.weight')!)) > 1e-4, 'the layers trained');
  assert.is(lisa.trainableFraction, 1);
});

test('γ = 0 changes only the embeddings, the final norm and the head; every layer stays bit-identical', async () => {
  const { ckpt, train } = await storyData();
  const r = await trainBaseWeights(lisaUpdater({ layers: 0, interval: 2 }), { checkpoint: ckpt, backend: createJsBackend(), data: train, steps: 3, batch: B, lr: LR });
  let changedOutside = 0;
  for (const [n, t] of ckpt.tensors) {
    const before = tensorF32(t), after = f32(r, n);
    if (layerOf(n) !== undefined) assert.equal(Array.from(after), Array.from(before), `${n} changed`);
    else if (maxAbsDiff(before, after) > 1e-5) changedOutside++;
  }
  // Tied embeddings: the embedding (also the head) and the final norm.
  assert.is(changedOutside, ckpt.config.tiedEmbeddings ? 2 : 3);
  const all = [...ckpt.tensors.values()].reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
  const outside = [...ckpt.tensors].filter(([n]) => layerOf(n) === undefined).reduce((a, [, t]) => a + t.shape.reduce((x, y) => x * y, 1), 0);
  assert.ok(Math.abs(r.trainableFraction - outside / all) < 1e-12, `${r.trainableFraction} vs ${outside / all}`);
});

test('γ = 2 redrawn every step: fresh moments for layers that join, dropped for layers that leave (float64 reference)', async () => {
  const { ckpt, train } = await storyData();
  const lines: string[] = [];
  const steps = 4;
  const r = await trainBaseWeights(lisaUpdater({ layers: 2, interval: 1 }), { checkpoint: ckpt, backend: createJsBackend(), data: train, steps, batch: B, lr: LR, decay: 'constant', seed: 3, log: (l) => lines.push(l) });
  // The layers of each step, as LISA printed them.
  const drawn = lines.filter((l) => l.startsWith('lisa: step')).map((l) => new Set(/layers ([\d, ]+) train/.exec(l)![1]!.split(', ').map(Number)));
  assert.is(drawn.length, steps, lines.join('\n'));
  assert.ok(drawn.every((d) => d.size === 2));
  assert.ok(drawn.some((d, i) => i > 0 && [...d].some((l) => !drawn[i - 1]!.has(l))), 'the active layers changed');
  const names = [...ckpt.tensors.keys()], vals = valuesOf(ckpt);
  const p = new Map(names.map((n) => [n, Float64Array.from(vals.get(n)!)]));
  const state = new Map<string, { m: Float64Array; v: Float64Array; age: number }>();
  for (let s = 1; s <= steps; s++) {
    const active = names.filter((n) => { const l = layerOf(n); return l === undefined || drawn[s - 1]!.has(l); });
    for (const n of names) if (!active.includes(n)) state.delete(n);
    const b = batchAt(train, (s - 1) * B, B);
    const { grads } = await baseGradients(ckpt, new Map(names.map((n) => [n, Float32Array.from(p.get(n)!)])), active, b.ids, b.targets, B, train.seq);
    for (const n of active) {
      const st = state.get(n) ?? { m: new Float64Array(vals.get(n)!.length), v: new Float64Array(vals.get(n)!.length), age: 0 };
      st.age++;
      state.set(n, st);
      adamwRef(p.get(n)!, grads.get(n)!, st.m, st.v, { lr: LR, step: st.age });
    }
  }
  // A fresh moment's first update is lr·g/(|g| + ε): for the few entries whose gradient is near ε (sums that
  // nearly cancel, where f32 rounding moves g), it is sensitive to rounding. Stale moments or the global step's
  // bias correction would move almost every entry of a joining layer by 0.3·lr or more.
  let worst = 0, off = 0, count = 0;
  for (const n of names) {
    const a = f32(r, n), b = p.get(n)!;
    worst = Math.max(worst, maxAbsDiff(a, b));
    for (let i = 0; i < a.length; i++) if (Math.abs(a[i]! - b[i]!) > 1e-6) off++;
    count += a.length;
  }
  assert.ok(worst <= 0.1 * LR, `worst ${worst}`);
  assert.ok(off <= 1e-3 * count, `${off} of ${count} entries differ by more than 1e-6`);
  // Only the embeddings, final norm and two layers hold moments at a time.
  const bytes = (ns: string[]) => 8 * ns.reduce((a, n) => a + vals.get(n)!.length, 0);
  const perLayer = bytes(names.filter((n) => layerOf(n) === 0)), outside = bytes(names.filter((n) => layerOf(n) === undefined));
  assert.is(r.optimizerStateBytes, outside + 2 * perLayer);
});

test('keeping moments restores a returning layer\'s moments (a different result from fresh ones)', async () => {
  const { ckpt, train } = await storyData();
  const o = { checkpoint: ckpt, data: train, steps: 4, batch: B, lr: LR, decay: 'constant' as const, seed: 3 };
  const fresh = await trainBaseWeights(lisaUpdater({ layers: 2, interval: 1 }), { ...o, backend: createJsBackend() });
  const kept = await trainBaseWeights(lisaUpdater({ layers: 2, interval: 1, keepMoments: true }), { ...o, backend: createJsBackend() });
  let diff = 0;
  for (const n of ckpt.tensors.keys()) diff = Math.max(diff, maxAbsDiff(f32(fresh, n), f32(kept, n)));
  assert.ok(diff > 1e-5, `kept and fresh moments gave the same weights (${diff})`);
  assert.ok(kept.optimizerStateBytes > fresh.optimizerStateBytes);
});

test('the registry entry: options with defaults; γ above the layer count refused', () => {
  assert.is(LISA.options['lisa-layers']!.default, 2);
  assert.is(LISA.options['lisa-interval']!.default, 20);
  assert.throws(() => LISA.create({ 'lisa-layers': 6, 'lisa-interval': 20 }, { nLayers: 5 }), /--lisa-layers 6: the model has 5 layers/);
  assert.throws(() => lisaUpdater({ interval: 0 }), /interval \(K\) must be an integer ≥ 1/);
});

test.run();
