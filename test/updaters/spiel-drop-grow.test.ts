// SpIEL's drop/grow: on planted deltas and gradients it drops exactly the smallest |Δ| and grows exactly the
// planted indices (|mean g| and SM3 scores); sparse Adam moves only active entries and equals a dense Adam there.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { dropGrow, randomIndices, reselectionCount, SparseAdam, sm3Score } from '../../src/updaters/spiel/drop-grow.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

test('drop/grow by |mean g| picks the planted indices', () => {
  const r = rng(5), size = 200;
  const indices = randomIndices(size, 20, r);
  const values = Float32Array.from(indices, () => 0.5 + r());
  values[3] = 1e-4; values[7] = -2e-4; values[11] = 3e-4; // planted smallest deltas
  const score = Float32Array.from({ length: size }, () => (r() - 0.5) * 0.01);
  const planted = [0, 1, 2].map((i) => { let k = 17 + 50 * i; while (indices.includes(k)) k++; return k; });
  for (const k of planted) score[k] = -5; // large in magnitude, negative: the score is |mean g|
  for (const k of indices) score[k] = 100; // active entries are never grown
  const res = dropGrow(indices, values, score, 3);
  const dropped = [3, 7, 11].map((p) => indices[p]);
  for (const k of dropped) assert.not.ok(res.indices.includes(k), `dropped ${k}`);
  for (const k of planted) assert.ok(res.indices.includes(k), `grew ${k}`);
  assert.is(res.indices.length, 20);
  for (let p = 1; p < res.indices.length; p++) assert.ok(res.indices[p] > res.indices[p - 1]);
  for (let p = 0; p < res.indices.length; p++) {
    if (res.from[p] < 0) assert.is(res.values[p], 0);
    else assert.is(res.values[p], values[res.from[p]]);
  }
});

test('SM3 variant grows the planted row × column entry', () => {
  const rows = 6, cols = 8;
  const g2 = new Float32Array(rows * cols).fill(0.01);
  g2[4 * cols + 2] = 9; // row 4 and column 2 dominate
  const score = sm3Score(g2, rows, cols);
  assert.is(score[4 * cols + 5], Math.fround(9 * Math.fround(0.01)));
  const indices = Int32Array.from([0, 1]), values = Float32Array.from([0.3, 1e-5]);
  const res = dropGrow(indices, values, score, 1);
  assert.equal([...res.indices], [0, 4 * cols + 2]);
});

test('reselection count decays linearly', () => {
  assert.is(reselectionCount(1000, 0, 100), 200);
  assert.is(reselectionCount(1000, 50, 100), 100);
  assert.is(reselectionCount(1000, 100, 100), 0);
  assert.throws(() => reselectionCount(10, 0, 10, 2), /rate/);
});

test('sparse Adam moves only active entries, as a float64 Adam would', () => {
  const idx = Int32Array.from([1, 4]);
  const opt = new SparseAdam(idx);
  const p = Float32Array.from([1, 2, 3, 4, 5]), g = Float32Array.from([0.1, -0.2, 0.3, 0.4, -0.5]);
  const h = { lr: 0.01, step: 1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, gradScale: 1 };
  opt.update(p, g, h);
  assert.equal([p[0], p[2], p[3]], [1, 3, 4]);
  // First Adam step moves by lr·sign(g) (bias-corrected m/√v = g/|g|).
  assert.ok(Math.abs(p[1] - (2 + 0.01)) < 1e-6);
  assert.ok(Math.abs(p[4] - (5 + 0.01)) < 1e-6);
  opt.reindex({ indices: Int32Array.from([1, 3]), values: new Float32Array(2), from: Int32Array.from([0, -1]) });
  assert.is(opt.m[1], 0); assert.ok(opt.m[0] !== 0);
});

test.run();
