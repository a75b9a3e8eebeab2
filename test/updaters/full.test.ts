// Full fine-tuning through trainBaseWeights on stories260K: two steps equal a float64 AdamW computed here from
// gradients of a graph built without the trainer; a host-side TensorOptimizer (AdamW on the host) equals the
// fused update; frozen compact tensors stay compact; bad trainable sets are refused before any step.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createJsBackend } from '../../src/backends/js/index.js';
import { batchAt } from '../../src/data/dataset.js';
import { isCompactTensor } from '../../src/formats/checkpoint.js';
import { fullUpdater } from '../../src/updaters/full/index.js';
import { trainBaseWeights } from '../../src/updaters/train.js';
import type { TensorOptimizer, Updater } from '../../src/updaters/types.js';
import { compactCopy, rejection } from '../helpers.js';
import { adamwRef, baseGradients, maxAbsDiff, storyData, valuesOf } from './helpers.js';

const LR = 1e-3, B = 2;

test('full fine-tuning: two steps equal float64 AdamW on independently computed gradients (≤ 1e-6)', async () => {
  const { ckpt, train } = await storyData();
  const lines: string[] = [];
  const r = await trainBaseWeights(fullUpdater(), { checkpoint: ckpt, backend: createJsBackend(), data: train, steps: 2, batch: B, lr: LR, decay: 'constant', log: (l) => lines.push(l) });
  const names = [...ckpt.tensors.keys()];
  const vals = valuesOf(ckpt);
  const p = new Map(names.map((n) => [n, Float64Array.from(vals.get(n)!)]));
  const m = new Map(names.map((n) => [n, new Float64Array(vals.get(n)!.length)]));
  const v = new Map(names.map((n) => [n, new Float64Array(vals.get(n)!.length)]));
  for (let s = 1; s <= 2; s++) {
    const b = batchAt(train, (s - 1) * B, B);
    const cur = new Map(names.map((n) => [n, Float32Array.from(p.get(n)!)]));
    const { loss, grads } = await baseGradients(ckpt, cur, names, b.ids, b.targets, B, train.seq);
    assert.ok(Math.abs(loss - r.losses[s - 1]!) < 1e-5, `step ${s} loss ${r.losses[s - 1]} vs ${loss}`);
    for (const n of names) adamwRef(p.get(n)!, grads.get(n)!, m.get(n)!, v.get(n)!, { lr: LR, step: s });
  }
  let worst = 0, moved = 0;
  for (const n of names) {
    const got = r.checkpoint.tensors.get(n)!;
    assert.not.ok(isCompactTensor(got));
    worst = Math.max(worst, maxAbsDiff((got as { data: Float32Array }).data, p.get(n)!));
    moved = Math.max(moved, maxAbsDiff((got as { data: Float32Array }).data, vals.get(n)!));
  }
  assert.ok(worst <= 1e-6, `worst difference ${worst}`);
  assert.ok(moved > 1e-3, `the weights moved (${moved})`);
  assert.is(r.trainableFraction, 1);
  // Two Adam moments of every weight, f32.
  assert.is(r.optimizerStateBytes, 8 * [...vals.values()].reduce((a, x) => a + x.length, 0));
  assert.ok(lines.some((l) => /full: \d+ of \d+ base tensors train from step 1 \(100\.00%/.test(l)), lines.join('\n'));
});

/** AdamW on the host, as a TensorOptimizer would run it. */
function hostAdamw(n: number): TensorOptimizer & { calls: number } {
  const m = new Float64Array(n), v = new Float64Array(n);
  return {
    calls: 0,
    update(param, grad, h) {
      this.calls++;
      const c1 = 1 - h.beta1 ** h.step, c2 = 1 - h.beta2 ** h.step;
      for (let i = 0; i < param.length; i++) {
        const g = grad[i]! * h.gradScale;
        m[i] = h.beta1 * m[i]! + (1 - h.beta1) * g;
        v[i] = h.beta2 * v[i]! + (1 - h.beta2) * g * g;
        param[i] = param[i]! * (1 - h.lr * h.weightDecay) - (h.lr * m[i]! / c1) / (Math.sqrt(v[i]! / c2) + h.eps);
      }
    },
    stateBytes: () => 16 * n,
  };
}

test('a host TensorOptimizer (AdamW on the host) gives the fused AdamW result, with clipping through gradScale', async () => {
  const { ckpt, train } = await storyData();
  const host = (n: string): boolean => n.includes('q_proj') || n.includes('down_proj');
  const made: ReturnType<typeof hostAdamw>[] = [];
  const withHost: Updater = {
    ...fullUpdater(), method: 'full-host',
    tensorOptimizer: (n, shape) => { if (!host(n)) return undefined; const o = hostAdamw(shape.reduce((a, b) => a * b, 1)); made.push(o); return o; },
  };
  const o = { checkpoint: ckpt, data: train, steps: 3, batch: B, lr: LR, maxGradNorm: 0.5, decay: 'linear' as const };
  const fused = await trainBaseWeights(fullUpdater(), { ...o, backend: createJsBackend() });
  const hosted = await trainBaseWeights(withHost, { ...o, backend: createJsBackend() });
  assert.is(made.length, 2 * ckpt.config.nLayers);
  assert.ok(made.every((x) => x.calls === 3));
  let worst = 0;
  for (const [n, t] of fused.checkpoint.tensors) worst = Math.max(worst, maxAbsDiff((t as { data: Float32Array }).data, (hosted.checkpoint.tensors.get(n) as { data: Float32Array }).data));
  assert.ok(worst <= 1e-6, `worst ${worst}`);
  const hostElems = [...ckpt.tensors].filter(([n]) => host(n)).reduce((a, [, t]) => a + t.shape.reduce((x, y) => x * y, 1), 0);
  assert.is(hosted.optimizerStateBytes, fused.optimizerStateBytes - 8 * hostElems + 16 * hostElems);
});

test('frozen compact tensors stay compact (the same objects); the one that trains comes back f32', async () => {
  const { ckpt, train } = await storyData();
  const q8 = compactCopy(ckpt, 'q8_0');
  const target = 'model.layers.1.mlp.up_proj.weight';
  const one: Updater = { method: 'one', initialTrainable: () => [target] };
  const r = await trainBaseWeights(one, { checkpoint: q8, backend: createJsBackend(), data: train, steps: 1, batch: B, lr: LR });
  for (const [n, t] of q8.tensors) {
    if (n === target) assert.not.ok(isCompactTensor(r.checkpoint.tensors.get(n)!));
    else assert.ok(r.checkpoint.tensors.get(n) === t, n);
  }
  assert.ok(isCompactTensor(q8.tensors.get(target)!));
});

test('an unknown tensor or an empty trainable set is refused before any step', async () => {
  const { ckpt, train } = await storyData();
  const o = { checkpoint: ckpt, backend: createJsBackend(), data: train, steps: 1, batch: B };
  assert.match((await rejection(trainBaseWeights({ method: 'x', initialTrainable: () => ['model.layers.9.mlp.up_proj.weight'] }, o))).message, /x: no base tensor named model\.layers\.9\.mlp\.up_proj\.weight/);
  assert.match((await rejection(trainBaseWeights({ method: 'x', initialTrainable: () => [] }, o))).message, /nothing to train/);
  assert.match((await rejection(trainBaseWeights(fullUpdater(), { ...o, steps: 0 }))).message, /steps/);
});

test.run();
