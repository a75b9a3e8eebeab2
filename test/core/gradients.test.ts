// Every differentiable op: js-backend gradients (float64) against central finite differences.
// Tolerance: 1e-6 relative to the largest gradient entry probed (eps = 1e-6, so truncation error ~1e-12
// and rounding ~1e-10 relative; 1e-6 leaves room while still catching any wrong rule).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as F from '../../src/graph/api.js';
import { gradCheck, type LeafSpec } from '../helpers.js';

const TOL = 1e-6;
const p = (name: string, shape: number[], extra: Partial<LeafSpec> = {}): LeafSpec => ({ name, shape, ...extra });

const cases: [string, LeafSpec[], Parameters<typeof gradCheck>[1]][] = [
  ['matmul', [p('a', [3, 4]), p('b', [4, 5])], ([a, b]) => F.matmul(a!, b!)],
  ['matmul transA', [p('a', [4, 3]), p('b', [4, 5])], ([a, b]) => F.matmul(a!, b!, { transA: true })],
  ['matmul transB', [p('a', [3, 4]), p('b', [5, 4])], ([a, b]) => F.matmul(a!, b!, { transB: true })],
  ['matmul transA transB', [p('a', [4, 3]), p('b', [5, 4])], ([a, b]) => F.matmul(a!, b!, { transA: true, transB: true })],
  ['matmul batched', [p('a', [2, 3, 4]), p('b', [2, 4, 5])], ([a, b]) => F.matmul(a!, b!)],
  ['matmul batch × shared weight', [p('a', [2, 3, 4]), p('b', [4, 5])], ([a, b]) => F.matmul(a!, b!)],
  ['matmul batch × shared weight transB', [p('a', [2, 3, 4]), p('b', [5, 4])], ([a, b]) => F.matmul(a!, b!, { transB: true })],
  ['matmul shared × batch transA', [p('a', [4, 3]), p('b', [2, 4, 5])], ([a, b]) => F.matmul(a!, b!, { transA: true })],
  ['add broadcast', [p('a', [2, 3, 4]), p('b', [3, 1])], ([a, b]) => F.add(a!, b!)],
  ['sub broadcast', [p('a', [4]), p('b', [2, 3, 4])], ([a, b]) => F.sub(a!, b!)],
  ['mul broadcast', [p('a', [2, 1, 4]), p('b', [3, 1])], ([a, b]) => F.mul(a!, b!)],
  ['div broadcast', [p('a', [2, 3]), p('b', [3], { offset: 3 })], ([a, b]) => F.div(a!, b!)],
  ['scale', [p('a', [5])], ([a]) => F.scale(a!, -2.5)],
  ['neg', [p('a', [5])], ([a]) => F.neg(a!)],
  ['exp', [p('a', [5])], ([a]) => F.exp(a!)],
  ['log', [p('a', [5], { scale: 0.2, offset: 2 })], ([a]) => F.log(a!)],
  ['sqrt', [p('a', [5], { scale: 0.2, offset: 2 })], ([a]) => F.sqrt(a!)],
  ['silu', [p('a', [7])], ([a]) => F.silu(a!)],
  ['gelu', [p('a', [7])], ([a]) => F.gelu(a!)],
  ['erf', [p('a', [7], { scale: 2 })], ([a]) => F.erf(a!)],
  ['gelu erf form', [p('a', [7], { scale: 2 })], ([a]) => F.geluErf(a!)],
  ['tanh', [p('a', [7], { scale: 2 })], ([a]) => F.tanh(a!)],
  ['relu', [p('a', [7], { scale: 2 })], ([a]) => F.relu(a!)],
  ['sum axes', [p('a', [2, 3, 4])], ([a]) => F.sum(a!, [0, 2])],
  ['sum keepDims', [p('a', [2, 3, 4])], ([a]) => F.sum(a!, [1], true)],
  ['mean all', [p('a', [2, 3])], ([a]) => F.mean(a!)],
  ['mean last', [p('a', [2, 3, 4])], ([a]) => F.mean(a!, [-1])],
  ['broadcast_to', [p('a', [3, 1])], ([a]) => F.broadcastTo(a!, [2, 3, 4])],
  ['reshape', [p('a', [2, 6])], ([a]) => F.mul(F.reshape(a!, [3, -1]), F.reshape(a!, [3, 4]))],
  ['transpose', [p('a', [2, 3, 4])], ([a]) => F.transpose(a!, [2, 0, 1])],
  ['slice', [p('a', [3, 5, 2])], ([a]) => F.slice(a!, 1, 1, 4)],
  ['pad', [p('a', [3, 2])], ([a]) => F.pad(a!, 0, 1, 2)],
  ['concat', [p('a', [2, 3]), p('b', [2, 1])], ([a, b]) => F.concat([a!, b!, a!], 1)],
  ['rmsnorm', [p('x', [3, 8]), p('w', [8])], ([x, w]) => F.rmsnorm(x!, w!, 1e-5)],
  ['layernorm', [p('x', [3, 8]), p('w', [8]), p('b', [8])], ([x, w, b]) => F.layernorm(x!, w!, b!, 1e-5)],
  ['rope pairs', [p('x', [2, 3, 2, 8])], ([x]) => F.rope(x!, { theta: 10000, layout: 'pairs' })],
  ['rope half offset', [p('x', [1, 4, 3, 6])], ([x]) => F.rope(x!, { theta: 500, layout: 'half', offset: 5 })],
  ['rope positions', [p('x', [1, 3, 2, 4]), p('pos', [3], { dtype: 'i32', data: [7, 2, 9] })], ([x, pos]) => F.rope(x!, { theta: 100, layout: 'pairs' }, pos)],
  ['attention causal', [p('q', [2, 4, 2, 3]), p('k', [2, 4, 2, 3]), p('v', [2, 4, 2, 3])], ([q, k, v]) => F.attention(q!, k!, v!)],
  ['attention gqa', [p('q', [1, 3, 4, 2]), p('k', [1, 3, 2, 2]), p('v', [1, 3, 2, 2])], ([q, k, v]) => F.attention(q!, k!, v!, { scale: 0.7 })],
  ['attention kv longer than q', [p('q', [1, 2, 2, 3]), p('k', [1, 5, 1, 3]), p('v', [1, 5, 1, 3])], ([q, k, v]) => F.attention(q!, k!, v!)],
  ['attention not causal', [p('q', [1, 3, 2, 2]), p('k', [1, 4, 2, 2]), p('v', [1, 4, 2, 2])], ([q, k, v]) => F.attention(q!, k!, v!, { causal: false })],
  ['embedding', [p('t', [5, 3]), p('ids', [2, 3], { dtype: 'i32', data: [0, 4, 2, 2, 9, 1] })], ([t, ids]) => F.embedding(t!, ids!)],
  ['dropout', [p('a', [6, 5]), p('seed', [1], { dtype: 'i32', data: [1234] })], ([a, s]) => F.dropout(a!, s!, 0.3)],
  ['cross_entropy', [p('l', [4, 6]), p('y', [4], { dtype: 'i32', data: [1, -100, 5, 0] })], ([l, y]) => F.crossEntropy(l!, y!)],
];

for (const [name, leaves, body] of cases) {
  test(name, async () => {
    const err = await gradCheck(leaves, body);
    assert.ok(err < TOL, `${name}: relative gradient error ${err.toExponential(2)} ≥ ${TOL}`);
  });
}

test('a wrong gradient is caught (the check can fail)', async () => {
  // exp's rule with a deliberately wrong body: d/dx exp(2x) computed as if it were exp(x)·1 would differ by 2×.
  const err = await gradCheck([p('a', [4])], ([a]) => F.exp(F.scale(F.reshape(a!, [4]), 2)));
  assert.ok(err < TOL);
  const { getOp } = await import('../../src/graph/ops/index.js');
  const def = getOp('scale') as { grad?: unknown };
  const saved = def.grad;
  (def as { grad?: unknown }).grad = ({ dOutputs: [dy] }: { dOutputs: [import('../../src/graph/graph.js').Tensor] }) => [dy];
  try {
    const bad = await gradCheck([p('a', [4])], ([a]) => F.exp(F.scale(a!, 2)));
    assert.ok(bad > 0.1, `a broken rule went unnoticed (error ${bad})`);
  } finally {
    (def as { grad?: unknown }).grad = saved;
  }
});

test('stop_gradient: d/da [a · sg(exp a)] is exp(a) alone (the blocked path adds nothing)', async () => {
  const { Graph } = await import('../../src/graph/graph.js');
  const { gradients } = await import('../../src/graph/autodiff.js');
  const { runOnce } = await import('../helpers.js');
  const { createJsBackend } = await import('../../src/backends/js/index.js');
  const g = new Graph();
  const a = g.param('a', [4]);
  const loss = F.sum(F.mul(a, F.stopGradient(F.exp(a))));
  const d = gradients(loss, [a]).get(a);
  const x = Float64Array.of(0.1, -0.5, 1.2, 2);
  const [got] = await runOnce(g, createJsBackend({ precision: 'f64' }), [a], [x], [d]);
  x.forEach((v, i) => assert.ok(Math.abs(got![i]! - Math.exp(v)) < 1e-12));
});

test.run();
