// The cross-entropy loss (op rules in src/graph/ops/nn.ts, js kernels in src/backends/js/kernels/nn.ts)
// against a float64 reference written here from the definition: the mean over counted rows of
// log Σ_j exp(l_j) − l_target, rows whose target is ignoreIndex or outside [0, V) not counted; its gradient
// (softmax − one-hot) · dloss / count, zero on rows not counted.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { nn } from '../../src/backends/js/kernels/nn.js';
import type { View } from '../../src/backends/js/kernels/types.js';
import * as F from '../../src/graph/api.js';
import { Graph } from '../../src/graph/graph.js';
import { gradCheck, maxRelErr, randn } from '../helpers.js';

/** Reference loss and gradient in float64. */
function reference(logits: ArrayLike<number>, targets: readonly number[], V: number, ignore: number, dloss: number): { loss: number; grad: Float64Array } {
  const rows = targets.map((t, n) => ({ t, n })).filter(({ t }) => t !== ignore && t >= 0 && t < V);
  const grad = new Float64Array(targets.length * V);
  let total = 0;
  for (const { t, n } of rows) {
    const row = Array.from({ length: V }, (_, j) => logits[n * V + j]!);
    const mx = Math.max(...row);
    const z = row.reduce((a, x) => a + Math.exp(x - mx), 0);
    total += mx + Math.log(z) - row[t]!;
    for (let j = 0; j < V; j++) grad[n * V + j] = (Math.exp(row[j]! - mx) / z - (j === t ? 1 : 0)) * dloss / rows.length;
  }
  return { loss: rows.length ? total / rows.length : 0, grad };
}

/** Run the js kernels directly, outputs prefilled with NaN so that an element left unwritten shows. */
function kernels(logits: Float64Array, targets: Int32Array, V: number, attrs: Record<string, number>, dloss: number): { loss: number; grad: Float64Array } {
  const l: View<Float64Array> = { data: logits, shape: [targets.length, V] };
  const t: View<Int32Array> = { data: targets, shape: [targets.length] };
  const out = { data: Float64Array.of(NaN), shape: [] };
  nn.cross_entropy!([l, t], [out], attrs);
  const grad = { data: new Float64Array(logits.length).fill(NaN), shape: [targets.length, V] };
  nn.cross_entropy_backward!([l, t, { data: Float64Array.of(dloss), shape: [] }], [grad], attrs);
  return { loss: out.data[0]!, grad: grad.data };
}

const V = 7;
const TOL = 1e-12;

test('loss and gradient equal the reference; -100 and out-of-range targets do not count', () => {
  const targets = [3, -100, 0, 6, 7, -2, 5];
  const logits = randn(targets.length * V, 1, 2);
  const want = reference(logits, targets, V, -100, 0.7);
  const got = kernels(logits, Int32Array.from(targets), V, {}, 0.7);
  assert.ok(Math.abs(got.loss - want.loss) < TOL, `loss ${got.loss} vs ${want.loss}`);
  assert.ok(maxRelErr(got.grad, want.grad) < TOL, `gradient error ${maxRelErr(got.grad, want.grad)}`);
  // Rows 1, 4, 5 are not counted: their gradient is exactly zero.
  for (const n of [1, 4, 5]) assert.equal(Array.from(got.grad.subarray(n * V, n * V + V)), new Array(V).fill(0));
});

test('a custom ignoreIndex drops rows with that class and keeps -100 out of range', () => {
  const targets = [2, 4, 2, 1, -100];
  const logits = randn(targets.length * V, 2);
  const want = reference(logits, targets, V, 2, 1.3);
  const got = kernels(logits, Int32Array.from(targets), V, { ignoreIndex: 2 }, 1.3);
  assert.ok(Math.abs(got.loss - want.loss) < TOL, `loss ${got.loss} vs ${want.loss}`);
  assert.ok(maxRelErr(got.grad, want.grad) < TOL);
  assert.equal(Array.from(got.grad.subarray(0, V)), new Array(V).fill(0));
});

test('logits in the thousands stay finite (log-sum-exp subtracts the row maximum)', () => {
  const targets = [0, 4];
  const logits = Float64Array.from(randn(2 * V, 3), (x, i) => x + (i < V ? 1000 : -1000));
  const want = reference(logits, targets, V, -100, 1);
  const got = kernels(logits, Int32Array.from(targets), V, {}, 1);
  assert.ok(Number.isFinite(got.loss) && Math.abs(got.loss - want.loss) < 1e-9, `loss ${got.loss} vs ${want.loss}`);
  assert.ok(maxRelErr(got.grad, want.grad) < 1e-9);
});

test('without an ignoreIndex attribute the kernels ignore -100 only: class 100 of a large vocabulary counts', () => {
  const W = 128, targets = [100, -100, 3];
  const logits = randn(targets.length * W, 5);
  const want = reference(logits, targets, W, -100, 1);
  const got = kernels(logits, Int32Array.from(targets), W, {}, 1);
  assert.ok(Math.abs(got.loss - want.loss) < TOL, `loss ${got.loss} vs ${want.loss}`);
  assert.ok(maxRelErr(got.grad, want.grad) < TOL);
});

test('a batch with every row ignored has loss 0 and gradient 0', () => {
  const logits = randn(3 * V, 4);
  const got = kernels(logits, Int32Array.of(-100, -100, 9), V, {}, 1);
  assert.is(got.loss, 0);
  assert.equal(Array.from(got.grad), new Array(3 * V).fill(0));
});

test('through the graph: the gradient rule matches finite differences, with ignoreIndex carried to the backward op', async () => {
  const leaves = [{ name: 'l', shape: [4, 5] }, { name: 'y', shape: [4], dtype: 'i32' as const, data: [1, 3, 4, 0] }];
  const err = await gradCheck(leaves, ([l, y]) => F.crossEntropy(l!, y!, 3));
  assert.ok(err < 1e-6, `relative error ${err}`);
  const g = new Graph();
  const l = g.input('l', [4, 5]), y = g.input('y', [4], 'i32');
  const loss = F.crossEntropy(l, y, 3);
  assert.equal(loss.shape, []);
  assert.is(g.nodes[loss.info.producer]!.attrs.ignoreIndex, 3);
  assert.is(g.nodes[F.crossEntropy(l, y).info.producer]!.attrs.ignoreIndex, -100);
});

test('bad shapes and types are refused with what was expected', () => {
  const g = new Graph();
  const l = g.input('l', [4, 5]), y = g.input('y', [4], 'i32');
  assert.throws(() => F.crossEntropy(g.input('l3', [2, 2, 5]), y), /logits must be f32 \[N, V\]/);
  assert.throws(() => F.crossEntropy(g.input('li', [4, 5], 'i32'), y), /logits must be f32 \[N, V\]/);
  assert.throws(() => g.apply1('cross_entropy', [l, y], { ignoreIndex: 'x' }), /attribute ignoreIndex must be a finite number/);
  assert.throws(() => g.apply1('cross_entropy_backward', [l, y, g.input('d1', [])], { ignoreIndex: NaN }), /attribute ignoreIndex must be a finite number/);
  assert.throws(() => F.crossEntropy(l, g.input('yf', [4])), /targets must be i32 \[N\]/);
  assert.throws(() => F.crossEntropy(l, g.input('y2', [4, 1], 'i32')), /targets must be i32 \[N\]/);
  assert.throws(() => F.crossEntropy(l, g.input('y3', [3], 'i32')), /targets must be i32 \[N\]/);
  assert.throws(() => g.apply1('cross_entropy_backward', [l, y, g.input('d', [1])], { ignoreIndex: -100 }), /dloss must be a scalar/);
  const d = g.apply1('cross_entropy_backward', [l, y, g.input('d0', [])], { ignoreIndex: -100 });
  assert.equal([d.shape, d.dtype], [[4, 5], 'f32']);
});

test.run();
