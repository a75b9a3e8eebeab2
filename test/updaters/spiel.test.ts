// SpIEL through trainBaseWeights on stories260K: the held-out loss falls, only the active entries move (every
// other entry equals the base bit for bit), the density holds after regrowth, and the returned sparse delta
// applied to the base gives the trained model.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { js } from '../backends/backends.js';
import { applySparseDelta, readSparseDelta, writeSparseDelta } from '../../src/updaters/sparse/delta.js';
import { SpielAdam, spielUpdater, spreadDensity } from '../../src/updaters/spiel/index.js';
import { trainBaseWeights } from '../../src/updaters/train.js';
import { maxAbsDiff, storyData, valuesOf } from './helpers.js';

const STEPS = 7;

async function run(sm3 = false) {
  const { ckpt, train, held } = await storyData();
  const before = await trainBaseWeights(spielUpdater({ density: 0.05, interval: 1, accumulate: 1, rate: 0, steps: 1 }), { checkpoint: ckpt, backend: js(), data: train, evalData: held, steps: 1, batch: 4, lr: 1e-12, decay: 'constant' });
  const r = await trainBaseWeights(spielUpdater({ density: 0.05, interval: 3, accumulate: 2, rate: 0.5, steps: STEPS, sm3 }), { checkpoint: ckpt, backend: js(), data: train, evalData: held, steps: STEPS, batch: 4, lr: 3e-3, decay: 'constant', seed: 5 });
  return { ckpt, r, before: before.evalLoss! };
}

for (const sm3 of [false, true]) {
  test(`spiel${sm3 ? ' (SM3 growth)' : ''}: loss falls, only active entries move, density kept, delta reproduces the model`, async () => {
    const { ckpt, r, before } = await run(sm3);
    assert.ok(r.evalLoss! < before - 0.02, `held-out ${before} → ${r.evalLoss}`);
    assert.is(r.summary.spielReselections, 2, 'reselections at steps 3 and 6');
    assert.ok(Number(r.summary.spielSwapped) > 0, 'some entries were regrown');
    const base = valuesOf(ckpt), tuned = valuesOf(r.checkpoint), delta = r.sparseDelta!;
    assert.ok(delta, 'a sparse delta is returned');
    // Density: d·(all parameters) active entries in all, distinct and sorted per tensor.
    const total = [...base.values()].reduce((a, t) => a + t.length, 0);
    const active = [...delta.values()].reduce((a, d) => a + d.indices.length, 0);
    assert.is(active, Math.round(0.05 * total));
    for (const [name, d] of delta) for (let i = 1; i < d.indices.length; i++) assert.ok(d.indices[i]! > d.indices[i - 1]!, `${name}: indices sorted and distinct`);
    // Everything outside the final active indices equals the base bit for bit (dropped entries reverted).
    let moved = 0;
    for (const [name, b] of base) {
      const t = tuned.get(name)!, act = new Set(delta.get(name)?.indices ?? []);
      for (let i = 0; i < b.length; i++) {
        if (act.has(i)) { if (t[i] !== b[i]) moved++; continue; }
        if (!Object.is(t[i], b[i])) assert.unreachable(`${name}[${i}] is not active but changed: ${b[i]} → ${t[i]}`);
      }
    }
    assert.ok(moved > active / 2, `${moved} of ${active} active entries moved`);
    const applied = applySparseDelta(base, delta);
    for (const [name, t] of tuned) assert.ok(maxAbsDiff(applied.get(name)!, t) <= 1e-7, `${name}: base + delta differs from the trained tensor`);
  });
}

test('spreadDensity: counts proportional to size, summing to d·total; refusals', () => {
  assert.equal(spreadDensity([100, 300], 1000, 0.1), [25, 75]);
  assert.is(spreadDensity([7, 11, 13], 40, 0.5).reduce((a, b) => a + b, 0), 20);
  assert.throws(() => spreadDensity([10], 100, 0.5), /only 10/);
  assert.throws(() => spielUpdater({ density: 0, steps: 3 }), /density must be in \(0, 1\]/);
  assert.throws(() => spielUpdater({ interval: 2, accumulate: 3, steps: 3 }), /accumulate must be/);
});

test("readSparseDelta: keys saved under PEFT's wrapper prefix read back as the model's tensor names", () => {
  const d = { indices: Int32Array.of(1, 7), values: Float32Array.of(0.5, -2) };
  const back = readSparseDelta(writeSparseDelta(new Map([['base_model.model.model.layers.0.mlp.up_proj.weight', d]])));
  assert.equal([...back.keys()], ['model.layers.0.mlp.up_proj.weight']);
  assert.equal([...back.get('model.layers.0.mlp.up_proj.weight')!.values], [0.5, -2]);
});

test('SpielAdam: a regrown entry starts from the seeded moments and age, a dropped one returns to its base', () => {
  // 6 entries, 3 active (0, 2, 4); after one update, drop the smallest |Δ| and grow the planted index 5.
  const base = Float32Array.of(0.5, -1, 2, 0.25, -3, 1.5), param = Float32Array.from(base);
  const opt = new SpielAdam(Int32Array.of(0, 2, 4));
  const h = { lr: 0.1, step: 1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, gradScale: 0.5 };
  const g1 = Float32Array.of(2, 9, 0.01, 9, -4, 9);
  opt.update(param, g1, h);
  // Δ after one Adam step is about lr for every active entry (Adam normalises), so which one drops is whichever
  // |Δ| is smallest; the growth is planted: index 5 has the largest score among the inactive 1, 3, 5.
  const score = Float32Array.of(0, 1, 0, 2, 0, 50);
  const seed = { m: 0.3, v: 0.04, age: 5 };
  assert.is(opt.reselect(1, score, (k) => { assert.is(k, 5, 'the planted index grows'); return seed; }), 1);
  const g2 = Float32Array.of(1, 1, 1, 1, 1, 1);
  const before = Float32Array.from(param);
  opt.update(param, g2, h);
  const grown = 5;
  assert.ok(opt.indices.includes(5));
  const dropped = [0, 2, 4].find((k) => !opt.indices.includes(k))!;
  const deltas = [0, 2, 4].map((k) => Math.abs(before[k]! - base[k]!));
  assert.is(Math.abs(before[dropped]! - base[dropped]!), Math.min(...deltas), 'the smallest |Δ| was dropped');
  assert.is(param[dropped], base[dropped], 'the dropped entry is back at its base value');
  // Float64 reference of the grown entry's first update from the seeded state (age 5 → 6).
  const g = 1 * 0.5, m = 0.9 * seed.m + 0.1 * g, v = 0.999 * seed.v + 0.001 * g * g;
  const want = base[grown]! - 0.1 * ((m / (1 - 0.9 ** 6)) / (Math.sqrt(v / (1 - 0.999 ** 6)) + 1e-8) + 0.01 * 0);
  assert.ok(Math.abs(param[grown]! - want) < 1e-6, `grown entry ${param[grown]} vs ${want}`);
  assert.is(before[grown], base[grown], 'the grown entry was at its base value before');
  // Entries never active are untouched.
  for (let k = 0; k < 6; k++) if (k !== grown && ![0, 2, 4].includes(k)) assert.is(param[k], base[k]);
  assert.is(opt.indices.length, 3, 'density kept');
});

test.run();
