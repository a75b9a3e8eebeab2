// Graph construction, JSON round trip, error messages, memory planning and forward semantics of the js kernels.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createJsBackend } from '../../src/backends/js/index.js';
import * as F from '../../src/graph/api.js';
import { gradients } from '../../src/graph/autodiff.js';
import { Graph } from '../../src/graph/graph.js';
import { graphFromJSON, graphToJSON } from '../../src/graph/serialize.js';
import { planGraph } from '../../src/scheduler/plan.js';
import { Session } from '../../src/scheduler/session.js';
import { trainTransformerBlock } from '../../src/toy/tasks.js';
import { gradCheck, maxRelErr, randn, rejection } from '../helpers.js';

test('a shape mismatch names the node, the op and both shapes', () => {
  const g = new Graph();
  const a = g.input('a', [2, 3]), b = g.param('b', [4, 5]);
  g.within('model.layers.0.mlp', () => {
    assert.throws(() => F.matmul(a, b), (e: Error) => /node #0 matmul \(model\.layers\.0\.mlp\)/.test(e.message) && /\[2, 3\]/.test(e.message) && /\[4, 5\]/.test(e.message) && /inner dimensions differ: 3 vs 4/.test(e.message));
  });
  assert.throws(() => F.add(a, g.input('c', [4])), /do not broadcast/);
});

test('JSON round trip keeps every value and node, and runs the same', async () => {
  const { trainer } = await trainTransformerBlock(createJsBackend(), { steps: 1 });
  const g = trainer.session.graph;
  const json = JSON.parse(JSON.stringify(graphToJSON(g)));
  const back = graphFromJSON(json);
  assert.equal(graphToJSON(back), json);
  trainer.dispose();
});

test('a training graph sent through JSON runs to the same loss and gradients on wasm as the original on js', async () => {
  const { trainer } = await trainTransformerBlock(createJsBackend(), { steps: 0 });
  const g = trainer.session.graph;
  const back = graphFromJSON(JSON.parse(JSON.stringify(graphToJSON(g))));
  const { createBackend } = await import('../../src/scheduler/backends.js');
  const wasm = (await createBackend('wasm')).backend;
  const [a, b] = [trainer.session, await Session.create(back, wasm)];
  for (const v of g.values.filter((x) => x.kind !== 'node')) {
    const n = v.shape.reduce((x, y) => x * y, 1);
    const data = v.dtype === 'i32' ? Int32Array.from({ length: n }, (_, i) => (i * 5) % 16) : Float32Array.from(randn(n, v.id, 0.2));
    a.set(v.id, data); b.set(v.id, data);
  }
  await a.run(); await b.run();
  const [ra, rb] = [await a.getMany(g.outputs), await b.getMany(back.outputs)];
  ra.forEach((x, i) => assert.ok(maxRelErr(rb[i]!, x) < 1e-4, `output %${g.outputs[i]}: ${maxRelErr(rb[i]!, x)}`));
  b.dispose(); wasm.dispose(); trainer.dispose();
});

test('an unknown op in a JSON graph is reported with its node', () => {
  const g = new Graph();
  const a = g.input('a', [2]);
  F.exp(a);
  const json = graphToJSON(g);
  json.nodes[0]!.op = 'frobnicate';
  assert.throws(() => graphFromJSON(json), (e: Error) => /node #0 frobnicate/.test(e.message) && /unknown op 'frobnicate'/.test(e.message));
  assert.throws(() => graphFromJSON({ format: 'other' }), /not an adaptkit graph/);
  const bad = graphToJSON(g);
  bad.values[1]!.shape = [3];
  assert.throws(() => graphFromJSON(bad), /output 0 is f32\[2\]/);
});

test('a NaN in a gradient check is an error naming the tensor', async () => {
  // log of negative numbers gives NaN gradients.
  try {
    await gradCheck([{ name: 'a', shape: [3], data: [-1, -2, -3] }], ([a]) => F.log(a!));
    assert.unreachable('expected an error');
  } catch (e) {
    assert.match((e as Error).message, /gradient check of %0\(a\)\[3\]: NaN/);
  }
});

test('a gradient check refuses an all-zero analytic gradient, which finite differences cannot contradict', async () => {
  const unused = await rejection(gradCheck([{ name: 'a', shape: [3] }, { name: 'b', shape: [2] }], ([a]) => F.exp(a!)));
  assert.match(unused.message, /gradient check of %1\(b\)\[2\]: the analytic gradient is all zero/);
  const zeroed = await rejection(gradCheck([{ name: 'a', shape: [4] }], ([a]) => F.scale(a!, 0)));
  assert.match(zeroed.message, /gradient check of %0\(a\)\[4\]: the analytic gradient is all zero/);
  // The same graphs with the leaf in use pass.
  assert.ok((await gradCheck([{ name: 'a', shape: [3] }, { name: 'b', shape: [2] }], ([a, b]) => F.add(F.sum(F.exp(a!)), F.sum(b!)))) < 1e-6);
});

test('the planner reuses dead memory: a long chain needs far less than the sum of its values', async () => {
  const g = new Graph();
  const input = g.input('x', [1024]);
  // Distinct factors (a chain of exp would overflow to Infinity and leave nothing to check): a step
  // that read memory already reused, or wrote over a live value, changes the product.
  const factors = Array.from({ length: 50 }, (_, i) => 1 + i / 50);
  let x = input;
  for (const f of factors) x = F.scale(x, f);
  g.markOutput(x);
  const plan = planGraph(g);
  assert.ok(plan.arenaElems <= 4 * 1024, `arena ${plan.arenaElems} elements for 51 values of 1024`);
  // The chain still computes the right thing after reuse: x·∏factors, in float64 here.
  const data = Float32Array.from(randn(1024, 11));
  const s = await Session.create(g, createJsBackend());
  s.set(input, data);
  await s.run();
  const got = await s.get(x);
  const product = factors.reduce((a, f) => a * f, 1);
  // 50 float32 roundings: relative error ≤ 50·2⁻²⁴ ≈ 3e-6.
  assert.ok(maxRelErr(got, Array.from(data, (v) => v * product)) < 1e-5, `max relative error ${maxRelErr(got, Array.from(data, (v) => v * product))}`);
  s.dispose();
});

test('memory reuse changes nothing: a training graph gives bit-identical results with and without reuse', async () => {
  const { trainer } = await trainTransformerBlock(createJsBackend(), { steps: 0 });
  const planned = trainer.session.plan;
  // The same plan with every value in memory of its own (views still alias their input).
  const offsets: number[] = [];
  let top = 0;
  for (const v of planned.values) {
    const producer = planned.nodes[v.producer];
    if (producer && (producer.op === 'reshape' || producer.op === 'kv_write')) { offsets.push(offsets[producer.inputs[0]!]!); continue; }
    offsets.push(top);
    top += Math.ceil(Math.max(1, v.shape.reduce((a, b) => a * b, 1)) / 64) * 64;
  }
  const separate = { ...planned, offsets, arenaElems: top };
  assert.ok(planned.arenaElems < top * 0.8, `reuse should save memory: ${planned.arenaElems} vs ${top}`);
  const backend = createJsBackend();
  const [a, b] = [await backend.load(planned), await backend.load(separate)];
  const leaves = planned.values.filter((v) => v.kind !== 'node');
  for (const v of leaves) {
    const n = v.shape.reduce((x, y) => x * y, 1);
    const data = v.dtype === 'i32' ? Int32Array.from({ length: n }, (_, i) => (i * 7) % 16) : Float32Array.from(randn(n, v.id, 0.3));
    a.write(v.id, data); b.write(v.id, data);
  }
  await a.run(); await b.run();
  const outs = trainer.session.graph.outputs;
  const [ra, rb] = [await a.read(outs), await b.read(outs)];
  ra.forEach((x, i) => assert.equal(Array.from(x), Array.from(rb[i]!), `output %${outs[i]} differs`));
  trainer.dispose();
});

async function run1(build: (g: Graph) => { feeds: [ReturnType<Graph['input']>, Float32Array | Int32Array][]; out: ReturnType<Graph['input']> }) {
  const g = new Graph();
  const { feeds, out } = build(g);
  g.markOutput(out);
  const s = await Session.create(g, createJsBackend());
  for (const [t, d] of feeds) s.set(t, d);
  await s.run();
  return s.get(out);
}

test('attention forward equals a naive softmax(QKᵀ·scale + causal mask)·V', async () => {
  const [T, H, D] = [5, 2, 3];
  const q = Float32Array.from(randn(T * H * D, 1)), k = Float32Array.from(randn(T * H * D, 2)), v = Float32Array.from(randn(T * H * D, 3));
  const got = await run1((g) => {
    const [tq, tk, tv] = ['q', 'k', 'v'].map((n) => g.input(n, [1, T, H, D]));
    return { feeds: [[tq!, q], [tk!, k], [tv!, v]], out: F.attention(tq!, tk!, tv!, { scale: 0.5 }) };
  });
  const want = new Float64Array(T * H * D);
  for (let h = 0; h < H; h++) for (let t = 0; t < T; t++) {
    const s = Array.from({ length: t + 1 }, (_, j) => { let d = 0; for (let e = 0; e < D; e++) d += q[(t * H + h) * D + e]! * k[(j * H + h) * D + e]!; return d * 0.5; });
    const mx = Math.max(...s), p = s.map((x) => Math.exp(x - mx)), z = p.reduce((a, b) => a + b);
    for (let e = 0; e < D; e++) want[(t * H + h) * D + e] = p.reduce((acc, pj, j) => acc + (pj / z) * v[(j * H + h) * D + e]!, 0);
  }
  assert.ok(maxRelErr(got, want) < 1e-5);
});

test('cross-entropy forward equals −mean log softmax at the targets, ignoring -100', async () => {
  const logits = Float32Array.from(randn(12, 5));
  const got = await run1((g) => {
    const l = g.input('l', [3, 4]), y = g.input('y', [3], 'i32');
    return { feeds: [[l, logits], [y, Int32Array.of(2, -100, 0)]], out: F.crossEntropy(l, y) };
  });
  const nll = (r: number, t: number) => { const row = [...logits.slice(r * 4, r * 4 + 4)]; const mx = Math.max(...row); return Math.log(row.reduce((a, x) => a + Math.exp(x - mx), 0)) + mx - row[t]!; };
  assert.ok(Math.abs(got[0]! - (nll(0, 2) + nll(2, 0)) / 2) < 1e-6);
});

test('rope (rotate-half layout, offset) forward matches its formula', async () => {
  const x = Float32Array.from(randn(8, 9));
  const r = await run1((g) => {
    const t = g.input('x', [1, 1, 1, 8]);
    return { feeds: [[t, x]], out: F.rope(t, { theta: 100, layout: 'half', offset: 3 }) };
  });
  for (let i = 0; i < 4; i++) {
    const a = 3 * Math.pow(100, -2 * i / 8);
    assert.ok(Math.abs(r[i]! - (x[i]! * Math.cos(a) - x[i + 4]! * Math.sin(a))) < 1e-6);
    assert.ok(Math.abs(r[i + 4]! - (x[i]! * Math.sin(a) + x[i + 4]! * Math.cos(a))) < 1e-6);
  }
});

test('gradients of a graph with no path to the loss are zeros, and a non-scalar loss is refused', () => {
  const g = new Graph();
  const a = g.param('a', [3]), b = g.param('b', [3]);
  const loss = F.sum(F.exp(a));
  const grads = gradients(loss, [a, b]);
  assert.is(g.nodes[grads.get(b).info.producer]!.op, 'fill');
  assert.throws(() => gradients(F.exp(a), [a]), /the loss must be a scalar/);
});

test.run();
