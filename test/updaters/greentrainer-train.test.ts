// GreenTrainer on stories260K: the probe step's importances equal −Σ g ⊙ Δw from an independent float64
// reference (the gradient of a graph built here, AdamW's first update); the selection is the optimum over the
// probed tensors by brute force; the probe and selected sets alternate as the interval says; tensors out of
// reach never change; the summary's operation figures add up.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createJsBackend } from '../../src/backends/js/index.js';
import { batchAt } from '../../src/data/dataset.js';
import { tensorF32 } from '../../src/formats/checkpoint.js';
import { backwardCosts, selectionCost } from '../../src/updaters/greentrainer/costs.js';
import { type GreenSelection, backwardFraction, greenTrainerUpdater } from '../../src/updaters/greentrainer/index.js';
import { costOf } from '../../src/updaters/greentrainer/select.js';
import { trainBaseWeights } from '../../src/updaters/train.js';
import { adamwRef, baseGradients, storyData, valuesOf } from './helpers.js';

const B = 4, LR = 1e-3, RHO = 0.5;

test('probe importances match a float64 reference; the selection is the brute-force optimum; sets alternate', async () => {
  const { ckpt, train } = await storyData();
  const costs = backwardCosts(ckpt.config, B, train.seq);
  const selections: GreenSelection[] = [], fractions: number[] = [], lines: string[] = [];
  const r = await trainBaseWeights(greenTrainerUpdater({ costs, rho: RHO, interval: 2, onSelect: (e) => selections.push(e) }), {
    checkpoint: ckpt, backend: createJsBackend(), data: train, steps: 4, batch: B, lr: LR, decay: 'constant', seed: 1,
    onStep: (s) => fractions.push(s.trainableFraction), log: (l) => lines.push(l),
  });
  assert.equal(selections.map((s) => s.step), [2, 4], lines.join('\n'));
  const first = selections[0]!;
  const probed = [...first.importance.keys()];
  const budget = backwardFraction(RHO, costs.forward, costs.backward) * costs.backward;
  // The probed tensors are exactly those that fit the budget alone.
  const fitAlone = costs.tensors.map((t, i) => [t.name, selectionCost(costs, [i])] as const).filter(([, c]) => c <= budget).map(([n]) => n);
  assert.equal(new Set(probed), new Set(fitAlone));
  assert.ok(probed.length > 3 && probed.length < costs.tensors.length, `${probed.length} probed`);

  // Reference: the gradient at the initial weights on the first batch, AdamW's first step (constant lr, no clipping).
  const b = batchAt(train, 0, B);
  const init = valuesOf(ckpt);
  const { grads } = await baseGradients(ckpt, init, probed, b.ids, b.targets, B, train.seq);
  let worst = 0;
  for (const n of probed) {
    const g = grads.get(n)!, p = Float64Array.from(init.get(n)!), m = new Float64Array(g.length), v = new Float64Array(g.length);
    adamwRef(p, g, m, v, { lr: LR, step: 1 });
    let want = 0;
    for (let i = 0; i < g.length; i++) want -= g[i]! * (p[i]! - init.get(n)![i]!);
    const got = first.importance.get(n)!;
    assert.ok(want > 0, `${n}: a first Adam step lowers the loss to first order (${want})`);
    worst = Math.max(worst, Math.abs(got - want) / want);
  }
  assert.ok(worst < 1e-3, `importances differ from the reference by up to ${worst}`);

  // Brute force over every subset of the probed tensors (the only ones that fit), with the reported importances.
  const idx = probed.map((n) => costs.tensors.findIndex((t) => t.name === n));
  const dw = costs.tensors.map((t) => t.dw), dy = costs.tensors.map((t) => t.dy);
  const value = (set: number[]): number => set.reduce((s, i) => s + first.importance.get(costs.tensors[i]!.name)!, 0);
  // Costs are rounded up to 1/4096 of the budget: an optimum that fits only by less than 2·N units may be missed.
  let best = -Infinity, bestInner = -Infinity;
  for (let mask = 1; mask < 2 ** idx.length; mask++) {
    const set = idx.filter((_, j) => mask & (1 << j));
    const c = costOf({ dw, dy }, set);
    if (c <= budget) best = Math.max(best, value(set));
    if (c <= budget - 2 * costs.tensors.length * budget / 4096) bestInner = Math.max(bestInner, value(set));
  }
  const chosen = first.selected.map((n) => costs.tensors.findIndex((t) => t.name === n));
  assert.ok(costOf({ dw, dy }, chosen) <= budget, 'the selection fits the budget');
  assert.ok(value(chosen) <= best + 1e-12 && value(chosen) >= bestInner - 1e-12, `selected ${value(chosen)}, brute force ${best} (inner ${bestInner})`);
  assert.ok(first.opsFraction <= RHO + 1e-12, `a selected step does ${first.opsFraction} of a full step`);

  // Probe, selection, probe, selection.
  const size = (names: Iterable<string>): number => [...names].reduce((s, n) => s + ckpt.tensors.get(n)!.shape.reduce((a, x) => a * x, 1), 0);
  const all = size(ckpt.tensors.keys());
  const want = [size(probed) / all, size(first.selected) / all, size(probed) / all, size(selections[1]!.selected) / all];
  fractions.forEach((f, i) => assert.ok(Math.abs(f - want[i]!) < 1e-12, `step ${i + 1}: trainable ${f}, want ${want[i]}`));
  // Out of reach: bit-identical.
  for (const t of costs.tensors) {
    if (probed.includes(t.name)) continue;
    assert.equal(Array.from(tensorF32(r.checkpoint.tensors.get(t.name)!)), Array.from(init.get(t.name)!), `${t.name} changed`);
  }
  const s = r.summary;
  const full = costs.forward + costs.backward;
  const probeOps = s.greenProbeOpsFraction as number;
  assert.ok(Math.abs(probeOps - (costs.forward + selectionCost(costs, idx)) / full) < 1e-12);
  const saved = 1 - (2 * probeOps + first.opsFraction + selections[1]!.opsFraction) / 4;
  assert.ok(Math.abs((s.greenOpsSaved as number) - saved) < 1e-12, `saved ${s.greenOpsSaved} vs ${saved}`);
  assert.is(s.greenSelections, 2);
  assert.match(lines.join('\n'), /greentrainer: step 2: \d+ tensors train down to model\.\S+, \d+\.\d% of a full step's operations \(\d+\.\d% saved\)/);
});

test('a budget no tensor fits: the cheapest trains alone, and it is said', async () => {
  const { ckpt, train } = await storyData();
  const costs = backwardCosts(ckpt.config, B, train.seq);
  // Make every tensor's weight gradient cost more than the whole backward pass.
  const heavy = { ...costs, tensors: costs.tensors.map((t) => ({ ...t, dw: t.dw + costs.backward })) };
  const lines: string[] = [];
  const r = await trainBaseWeights(greenTrainerUpdater({ costs: heavy, rho: 0.5, interval: 2 }), {
    checkpoint: ckpt, backend: createJsBackend(), data: train, steps: 2, batch: B, lr: LR, log: (l) => lines.push(l),
  });
  assert.match(lines.join('\n'), /no tensor fits ρ = 0\.5 .* the cheapest, \S+, trains alone/);
  assert.is(r.summary.greenSelected, 1);
});

test.run();
