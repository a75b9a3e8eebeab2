// Q-GaLore's parts: stochastic rounding is unbiased (the mean of many draws within 4 standard errors of the
// value, where nearest rounding is off by far more); INT8 weights keep untouched values exact and grow a
// group's scale instead of clipping; INT4 projectors come back within half a step of their group's grid;
// the lazy rule doubles the interval on a planted run of similar subspaces and never on dissimilar ones,
// on its own and inside the optimizer; the optimizer's weight (and the trained model's) is always its INT8
// value; option checks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gaussian, seededRandom } from '../../src/util/random.js';
import { LazyInterval, QGaLoreAdam, qGaLoreUpdater } from '../../src/updaters/q-galore/index.js';
import { Int4Matrix, Int8Weights, QUANT_GROUP, stochasticRound } from '../../src/updaters/q-galore/quant.js';
import { svd } from '../../src/linalg/svd.js';
import type { TensorOptimizerHyper } from '../../src/updaters/types.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { tensorF32 } from '../../src/formats/checkpoint.js';
import { trainBaseWeights } from '../../src/updaters/train.js';
import { storyData } from './helpers.js';

const rand = seededRandom(5);
const randn = (n: number): Float64Array => Float64Array.from({ length: n }, () => gaussian(rand));

test('stochastic rounding is unbiased: the mean of 40,000 draws is within 4 standard errors of x', () => {
  const N = 40000;
  for (const x of [0.3, -1.7, 2.5, 5.999, -0.001, 3]) {
    let sum = 0;
    for (let k = 0; k < N; k++) {
      const q = stochasticRound(x, rand);
      assert.ok(q === Math.floor(x) || q === Math.floor(x) + 1, `${x} → ${q}`);
      sum += q;
    }
    const f = x - Math.floor(x), se = Math.sqrt(f * (1 - f) / N);
    const mean = sum / N;
    assert.ok(Math.abs(mean - x) <= 4 * se + 1e-12, `x ${x}: mean ${mean}, 4 SE ${4 * se}`);
    // Nearest rounding, for contrast, misses by |x − round(x)|, far outside that bound for these x.
    if (f > 0.01 && f < 0.99 && f !== 0.5) assert.ok(Math.abs(Math.round(x) - x) > 8 * se, `x ${x}: the bound separates nearest rounding`);
  }
});

test('INT8 weights: stored values average to themselves (4 SE); zero updates keep codes; a group grows its scale rather than clip', () => {
  const n = 600; // three groups, the last one short
  const start = randn(n);
  const w = Int8Weights.nearest(start);
  assert.is(w.scales.length, 3);
  for (let i = 0; i < n; i++) assert.ok(Math.abs(w.value(i) - start[i]!) <= w.scales[Math.floor(i / QUANT_GROUP)]! / 2 + 1e-7, `nearest ${i}`);
  // Storing the values it already holds changes nothing (no randomness spent on exact values).
  const held = Float64Array.from(w.dequantize(new Float64Array(n)));
  const codes = Int8Array.from(w.codes);
  w.store(held, rand);
  assert.equal(Array.from(w.codes), Array.from(codes));
  // Values between codes (0.37 of a step toward zero, so none passes ±127): the mean over many stores is the value.
  const target = Float64Array.from(held, (x, i) => x - Math.sign(codes[i]! || -1) * 0.37 * w.scales[Math.floor(i / QUANT_GROUP)]!);
  const sum = new Float64Array(n), N = 4000;
  const scales = Float32Array.from(w.scales);
  for (let k = 0; k < N; k++) {
    w.store(target, rand);
    for (let i = 0; i < n; i++) sum[i] += w.value(i);
  }
  // The scales did not move (every target fits in ±127 steps), so each draw is a Bernoulli step with p = 0.37 or 0.63.
  assert.equal(Array.from(w.scales), Array.from(scales));
  let worst = 0;
  for (let i = 0; i < n; i++) {
    const s = scales[Math.floor(i / QUANT_GROUP)]!, se = s * Math.sqrt(0.37 * 0.63 / N);
    worst = Math.max(worst, Math.abs(sum[i]! / N - target[i]!) / se);
  }
  // 600 elements: the largest of 600 |z| is ≈ 3.3 typically; 4.5 leaves room and still fails a bias of 0.1 step (≈ 13 SE).
  assert.ok(worst < 4.5, `worst |mean − value| / SE = ${worst}`);
  // A value past ±127 steps grows its group's scale; the others keep theirs.
  const big = Float64Array.from(held);
  big[5] = 300 * scales[0]!;
  w.store(big, rand);
  assert.ok(w.scales[0]! > scales[0]! * 2, 'group 0 grew');
  assert.is(w.scales[1], scales[1]);
  assert.ok(Math.abs(w.value(5) - big[5]!) <= w.scales[0]!, `the large value is held (${w.value(5)} vs ${big[5]})`);
  assert.is(w.bytes(), n + 3 * 4);
});

test('INT4 projector: every value comes back within half its group\'s step; two codes a byte', () => {
  for (const [m, k] of [[64, 64], [172, 32], [9, 5]] as const) {
    // An orthonormal projector, as GaLore makes them, and a Gaussian matrix.
    const p = svd(randn(m * k), m, k).u;
    for (const values of [p, randn(m * k)]) {
      const q = new Int4Matrix(values);
      const back = q.dequantize();
      let worstRatio = 0;
      for (let i = 0; i < values.length; i++) {
        const s = q.scales[Math.floor(i / QUANT_GROUP)]!;
        const ratio = Math.abs(back[i]! - values[i]!) / s;
        worstRatio = Math.max(worstRatio, ratio);
      }
      assert.ok(worstRatio <= 0.5 + 1e-4, `${m}×${k}: worst error ${worstRatio} steps`);
      // Not trivially exact: some value is a good part of a step away.
      assert.ok(worstRatio > 0.3, `${m}×${k}: worst ${worstRatio}`);
      const groups = Math.ceil(values.length / QUANT_GROUP);
      assert.is(q.bytes(), Math.ceil(values.length / 2) + 5 * groups);
      // The step is (max − min)/15 of its group.
      const g0 = Array.from(values.slice(0, QUANT_GROUP));
      assert.ok(Math.abs(q.scales[0]! - (Math.max(...g0) - Math.min(...g0)) / 15) < 1e-6 * q.scales[0]!);
    }
  }
});

/** A unit vector near `base` (noise of relative size `noise`), with a random sign. */
function near(base: Float64Array, noise: number): Float64Array {
  const v = Float64Array.from(base, (x) => x + noise * gaussian(rand) / Math.sqrt(base.length));
  const sign = rand() < 0.5 ? -1 : 1;
  return v.map((x) => sign * x);
}

test('lazy interval: doubles after 5 consecutive |cos| ≥ 0.4, again while it stays; never on dissimilar subspaces', () => {
  const d = 200, base = randn(d);
  const similar = new LazyInterval(10);
  const seen: number[] = [];
  for (let k = 0; k < 8; k++) { similar.observe(near(base, 0.5)); seen.push(similar.interval); }
  // Comparisons start at the 2nd vector; the 5th comparison is the 6th vector.
  assert.equal(seen, [10, 10, 10, 10, 10, 20, 40, 80]);
  // Random directions in 200 dimensions: |cos| ≈ 0.06, never stable.
  const random = new LazyInterval(10);
  for (let k = 0; k < 20; k++) assert.ok((random.observe(randn(d)) ?? 0) < 0.4);
  assert.is(random.interval, 10);
  assert.is(random.doublings, 0);
  // One dissimilar decomposition restarts the count: stable ×4, unstable, stable ×5 → one doubling at the end.
  const mixed = new LazyInterval(3);
  const other = randn(d);
  const plan = [base, base, base, base, base, other, other, other, other, other, other];
  const when: number[] = [];
  plan.forEach((v, i) => { const before = mixed.interval; mixed.observe(near(v, 0.3)); if (mixed.interval !== before) when.push(i); });
  assert.equal(when, [10]);
  assert.is(mixed.interval, 6);
});

const hyper = (step: number): TensorOptimizerHyper => ({ lr: 0.01, step, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, gradScale: 1 });

test('inside the optimizer: planted gradients with a fixed leading direction take SVDs at steps 1–6, 8, 12; random ones every step', () => {
  const m = 12, n = 20, u = randn(m), v = randn(n);
  const run = (planted: boolean): QGaLoreAdam => {
    const opt = new QGaLoreAdam(m, n, { rank: 3, interval: 1, scale: 0.25, cosThreshold: 0.4, window: 5 }, seededRandom(3));
    const param = Float32Array.from(randn(m * n));
    for (let s = 1; s <= 12; s++) {
      const g = randn(m * n);
      if (planted) for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) g[i * n + j] = 0.1 * g[i * n + j]! + 5 * u[i]! * v[j]!;
      opt.update(param, Float32Array.from(g), hyper(s));
      // The weight the graph gets is exactly the INT8 one.
      const w = opt.int8()!;
      for (let i = 0; i < param.length; i++) if (param[i] !== Math.fround(w.value(i))) throw new Error(`step ${s}: param ${i} is not its INT8 value`);
    }
    return opt;
  };
  const planted = run(true), random = run(false);
  assert.is(planted.svds, 8);
  assert.is(planted.interval, 8);
  assert.is(random.svds, 12);
  assert.is(random.interval, 1);
  // State: INT8 codes and scales, INT4 projector (m < n: left, m × r), f32 moments r × n, the lazy rule's previous vector.
  const r = 3, groupsW = Math.ceil(m * n / QUANT_GROUP), groupsP = Math.ceil(m * r / QUANT_GROUP);
  assert.is(planted.stateBytes(), (m * n + 4 * groupsW) + (Math.ceil(m * r / 2) + 5 * groupsP) + 4 * 2 * r * n + 8 * m);
});

test('through trainBaseWeights: every projected weight of the trained model is its INT8 value; the rest moved by AdamW; state counted', async () => {
  const { ckpt, train } = await storyData();
  const up = qGaLoreUpdater({ rank: 8, interval: 1 });
  const r = await trainBaseWeights(up, { checkpoint: ckpt, backend: createJsBackend(), data: train, steps: 2, batch: 2, lr: 1e-3, decay: 'constant', seed: 4 });
  assert.is(up.optimizers.size, 7 * ckpt.config.nLayers);
  let held = 0;
  for (const [name, opt] of up.optimizers) {
    const got = (r.checkpoint.tensors.get(name) as { data: Float32Array }).data;
    const w = opt.int8()!;
    for (let i = 0; i < got.length; i++) if (got[i] !== Math.fround(w.value(i))) throw new Error(`${name}[${i}] is ${got[i]}, its INT8 value ${w.value(i)}`);
    held += opt.stateBytes();
  }
  // The embeddings (tied head) and norms: AdamW's two f32 moments each.
  const rest = [...ckpt.tensors].filter(([n]) => !up.optimizers.has(n)).reduce((a, [, t]) => a + 8 * t.shape.reduce((x, y) => x * y, 1), 0);
  assert.is(r.optimizerStateBytes, held + rest);
  const emb = (r.checkpoint.tensors.get('model.embed_tokens.weight') as { data: Float32Array }).data;
  const emb0 = tensorF32(ckpt.tensors.get('model.embed_tokens.weight')!);
  assert.ok(emb.some((x, i) => Math.abs(x - emb0[i]!) > 1e-4), 'the embeddings trained');
});

test('bad settings are refused by name', () => {
  assert.throws(() => qGaLoreUpdater({ cosThreshold: 1.5 }), /q-galore: cos threshold must be in \[0, 1\] \(got 1\.5\)/);
  assert.throws(() => qGaLoreUpdater({ window: 0 }), /q-galore: window must be an integer ≥ 1/);
  assert.throws(() => qGaLoreUpdater({ rank: 2.5 }), /q-galore: rank must be an integer ≥ 1/);
  assert.throws(() => Int8Weights.nearest([1, 2]).store([1], rand), /2 codes/);
});

test.run();
