// Every op of the catalogue on the wasm backend against the js backend (the oracle), forward and
// backward: the output and the gradient of sum(out · w) with respect to every f32 leaf, w a fixed random
// weighting. Both store float32; js accumulates in float64 where wasm uses float32 lanes, so each
// comparison allows a relative error (max |wasm − js| / max |js|) of TOL = 5e-6, about 40 float32 ulps
// (the worst seen is under 1e-6, from attention's backward and the larger matmuls). A wrong index or a
// missed edge gives errors of order 1. Parallel kernels must give bit-identical results on 1 and 2 threads.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Backend, HostArray } from '../../src/backends/backend.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { createWasmBackend } from '../../src/backends/wasm/index.js';
import { hasRelaxedSimd } from '../../src/backends/wasm/loader.js';
import * as F from '../../src/graph/api.js';
import { gradients } from '../../src/graph/autodiff.js';
import { Graph, type Tensor } from '../../src/graph/graph.js';
import { numel } from '../../src/graph/types.js';
import { Session } from '../../src/scheduler/session.js';
import { buildGraph, maxRelErr, randn, runOnce, type LeafSpec } from '../helpers.js';

const TOL = 5e-6;

interface Case {
  name: string;
  leaves: LeafSpec[];
  body: (ts: Tensor[]) => Tensor;
  /** Forward only (ops without a gradient rule). */
  noGrad?: boolean;
}

const p = (name: string, shape: number[], extra: Partial<LeafSpec> = {}): LeafSpec => ({ name, shape, ...extra });
const ids = (name: string, shape: number[], data: number[]): LeafSpec => ({ name, shape, dtype: 'i32', data });
const range = (n: number, f: (i: number) => number): number[] => Array.from({ length: n }, (_, i) => f(i));

const cases: Case[] = [
  { name: 'matmul', leaves: [p('a', [13, 37]), p('b', [37, 21])], body: ([a, b]) => F.matmul(a!, b!) },
  { name: 'matmul transA transB', leaves: [p('a', [37, 13]), p('b', [21, 37])], body: ([a, b]) => F.matmul(a!, b!, { transA: true, transB: true }) },
  { name: 'matmul batched transB', leaves: [p('a', [3, 9, 70]), p('b', [3, 11, 70])], body: ([a, b]) => F.matmul(a!, b!, { transB: true }) },
  { name: 'matmul batch × shared weight', leaves: [p('a', [2, 5, 33]), p('b', [33, 17])], body: ([a, b]) => F.matmul(a!, b!) },
  { name: 'matmul shared × batch transA', leaves: [p('a', [33, 7]), p('b', [2, 33, 19])], body: ([a, b]) => F.matmul(a!, b!, { transA: true }) },
  { name: 'matmul large (parallel)', leaves: [p('a', [2, 96, 130]), p('b', [130, 101])], body: ([a, b]) => F.matmul(a!, b!) },
  { name: 'add broadcast', leaves: [p('a', [2, 3, 9]), p('b', [3, 1])], body: ([a, b]) => F.add(a!, b!) },
  { name: 'sub broadcast', leaves: [p('a', [9]), p('b', [2, 3, 9])], body: ([a, b]) => F.sub(a!, b!) },
  { name: 'mul broadcast', leaves: [p('a', [2, 1, 7]), p('b', [3, 1])], body: ([a, b]) => F.mul(a!, b!) },
  { name: 'mul same shape', leaves: [p('a', [5, 19]), p('b', [5, 19])], body: ([a, b]) => F.mul(a!, b!) },
  { name: 'div broadcast', leaves: [p('a', [4, 6]), p('b', [6], { offset: 3 })], body: ([a, b]) => F.div(a!, b!) },
  { name: 'scale', leaves: [p('a', [23])], body: ([a]) => F.scale(a!, -2.5) },
  { name: 'neg', leaves: [p('a', [23])], body: ([a]) => F.neg(a!) },
  { name: 'exp', leaves: [p('a', [45], { scale: 3 })], body: ([a]) => F.exp(a!) },
  { name: 'log', leaves: [p('a', [23], { scale: 0.2, offset: 2 })], body: ([a]) => F.log(a!) },
  { name: 'sqrt', leaves: [p('a', [23], { scale: 0.2, offset: 2 })], body: ([a]) => F.sqrt(a!) },
  { name: 'silu', leaves: [p('a', [45], { scale: 4 })], body: ([a]) => F.silu(a!) },
  { name: 'gelu', leaves: [p('a', [45], { scale: 4 })], body: ([a]) => F.gelu(a!) },
  { name: 'erf', leaves: [p('a', [45], { scale: 4 })], body: ([a]) => F.erf(a!) },
  { name: 'tanh', leaves: [p('a', [45], { scale: 4 })], body: ([a]) => F.tanh(a!) },
  { name: 'relu', leaves: [p('a', [45], { scale: 4 })], body: ([a]) => F.relu(a!) },
  { name: 'sum axes', leaves: [p('a', [3, 5, 7])], body: ([a]) => F.sum(a!, [0, 2]) },
  { name: 'sum keepDims middle', leaves: [p('a', [3, 5, 7])], body: ([a]) => F.sum(a!, [1], true) },
  { name: 'mean all', leaves: [p('a', [6, 11])], body: ([a]) => F.mean(a!) },
  { name: 'sum leading axes (column blocks)', leaves: [p('a', [3, 2, 1100])], body: ([a]) => F.sum(a!, [0, 1]) },
  { name: 'mean middle axis', leaves: [p('a', [3, 5, 7])], body: ([a]) => F.mean(a!, [1]) },
  { name: 'mean last', leaves: [p('a', [2, 3, 13])], body: ([a]) => F.mean(a!, [-1]) },
  { name: 'broadcast_to', leaves: [p('a', [3, 1])], body: ([a]) => F.broadcastTo(a!, [2, 3, 5]) },
  { name: 'transpose', leaves: [p('a', [2, 3, 5, 4])], body: ([a]) => F.transpose(a!, [2, 0, 3, 1]) },
  { name: 'slice', leaves: [p('a', [3, 7, 2])], body: ([a]) => F.slice(a!, 1, 2, 6) },
  { name: 'pad', leaves: [p('a', [3, 2, 3])], body: ([a]) => F.pad(a!, 1, 1, 2) },
  { name: 'concat', leaves: [p('a', [2, 3]), p('b', [2, 1])], body: ([a, b]) => F.concat([a!, b!, a!], 1) },
  { name: 'rmsnorm', leaves: [p('x', [5, 37]), p('w', [37])], body: ([x, w]) => F.rmsnorm(x!, w!, 1e-5) },
  { name: 'layernorm', leaves: [p('x', [5, 37]), p('w', [37]), p('b', [37])], body: ([x, w, b]) => F.layernorm(x!, w!, b!, 1e-5) },
  { name: 'rope pairs', leaves: [p('x', [2, 5, 3, 8])], body: ([x]) => F.rope(x!, { theta: 10000, layout: 'pairs' }) },
  { name: 'rope half offset', leaves: [p('x', [1, 4, 3, 6])], body: ([x]) => F.rope(x!, { theta: 500, layout: 'half', offset: 5 }) },
  { name: 'rope positions', leaves: [p('x', [1, 3, 2, 4]), ids('pos', [3], [7, 2, 9])], body: ([x, pos]) => F.rope(x!, { theta: 100, layout: 'pairs' }, pos) },
  { name: 'attention causal', leaves: [p('q', [2, 9, 2, 6]), p('k', [2, 9, 2, 6]), p('v', [2, 9, 2, 6])], body: ([q, k, v]) => F.attention(q!, k!, v!) },
  { name: 'attention gqa', leaves: [p('q', [1, 7, 4, 5]), p('k', [1, 7, 2, 5]), p('v', [1, 7, 2, 5])], body: ([q, k, v]) => F.attention(q!, k!, v!, { scale: 0.7 }) },
  { name: 'attention kv longer than q', leaves: [p('q', [1, 3, 2, 7]), p('k', [1, 11, 1, 7]), p('v', [1, 11, 1, 7])], body: ([q, k, v]) => F.attention(q!, k!, v!) },
  { name: 'attention not causal', leaves: [p('q', [1, 5, 2, 4]), p('k', [1, 8, 2, 4]), p('v', [1, 8, 2, 4])], body: ([q, k, v]) => F.attention(q!, k!, v!, { causal: false }) },
  { name: 'attention large (parallel, several query blocks)', leaves: [p('q', [2, 150, 4, 32]), p('k', [2, 150, 2, 32]), p('v', [2, 150, 2, 32])], body: ([q, k, v]) => F.attention(q!, k!, v!) },
  {
    name: 'attention with kvLen (forward only)',
    leaves: [p('q', [1, 2, 2, 5]), p('k', [1, 9, 2, 5]), p('v', [1, 9, 2, 5]), ids('len', [1], [6])],
    body: ([q, k, v, len]) => F.attention(q!, k!, v!, {}, len), noGrad: true,
  },
  { name: 'embedding (ids out of range give zero rows)', leaves: [p('t', [5, 7]), ids('ids', [2, 3], [0, 4, 2, 2, 9, -1])], body: ([t, i]) => F.embedding(t!, i!) },
  { name: 'dropout', leaves: [p('a', [6, 45]), ids('seed', [1], [1234])], body: ([a, s]) => F.dropout(a!, s!, 0.3, 17) },
  { name: 'uniform', leaves: [p('a', [6, 45]), ids('seed', [1], [-4321])], body: ([a, s]) => F.mul(F.uniform(s!, [6, 45], 3), a!) },
  { name: 'cross_entropy', leaves: [p('l', [5, 37], { scale: 3 }), ids('y', [5], [1, -100, 36, 0, 40])], body: ([l, y]) => F.crossEntropy(l!, y!) },
  { name: 'cross_entropy wide vocabulary', leaves: [p('l', [3, 3001], { scale: 2 }), ids('y', [3], [5, 3000, 1])], body: ([l, y]) => F.crossEntropy(l!, y!) },
  // Shapes past the rows job's threshold (2^17 elements touched), split in many blocks.
  { name: 'sum leading axis large (parallel)', leaves: [p('a', [3, 130, 700])], body: ([a]) => F.sum(a!, [0]) },
  { name: 'silu large (parallel)', leaves: [p('a', [300, 501])], body: ([a]) => F.silu(a!) },
  { name: 'add broadcast large (parallel)', leaves: [p('a', [2, 300, 257]), p('b', [300, 1])], body: ([a, b]) => F.add(a!, b!) },
  { name: 'dropout large (parallel)', leaves: [p('a', [400, 401]), ids('seed', [1], [99])], body: ([a, s]) => F.dropout(a!, s!, 0.25) },
  { name: 'rmsnorm large (parallel)', leaves: [p('x', [600, 260]), p('w', [260])], body: ([x, w]) => F.rmsnorm(x!, w!, 1e-6) },
  { name: 'layernorm large (parallel)', leaves: [p('x', [600, 260]), p('w', [260]), p('b', [260])], body: ([x, w, b]) => F.layernorm(x!, w!, b!, 1e-5) },
  { name: 'rope large (parallel)', leaves: [p('x', [2, 130, 8, 64])], body: ([x]) => F.rope(x!, { theta: 10000, layout: 'half' }) },
  {
    name: 'cross_entropy large (parallel)',
    leaves: [p('l', [70, 2003], { scale: 2 }), ids('y', [70], range(70, (i) => (i % 7 === 3 ? -100 : (i * 131) % 2003)))],
    body: ([l, y]) => F.crossEntropy(l!, y!),
  },
  { name: 'fill (forward only)', leaves: [p('a', [3, 4])], body: ([a]) => F.add(a!, F.fill(a!.graph, [3, 4], 2.5)), noGrad: true },
  {
    name: 'kv_write (forward only)',
    leaves: [p('c', [2, 6, 2, 3]), p('r', [2, 3, 2, 3]), ids('pos', [1], [4])],
    body: ([c, r, pos]) => F.kvWrite(c!, r!, pos!), noGrad: true,
  },
];

async function evaluate(c: Case, backend: Backend, seed = 1): Promise<HostArray[]> {
  const { g, ts, out, data } = buildGraph(c.leaves, c.body, seed);
  const read: Tensor[] = [out];
  const allT = [...ts], allD = [...data];
  if (!c.noGrad) {
    const w = g.input('__w', out.shape);
    const loss = F.sum(F.mul(out, w));
    const wrt = ts.filter((t) => t.dtype === 'f32');
    const grads = gradients(loss, wrt);
    read.push(...wrt.map((t) => grads.get(t)));
    allT.push(w);
    allD.push(randn(numel(out.shape), 4242));
  }
  return runOnce(g, backend, allT, allD, read);
}

const js = createJsBackend();
const flavours = hasRelaxedSimd() ? (['relaxed', 'simd'] as const) : (['simd'] as const);

for (const simd of flavours) {
  test(`${simd}: every op matches js, forward and backward`, async () => {
    const wasm = await createWasmBackend({ simd, threads: 1 });
    try {
      for (const c of cases) {
        const want = await evaluate(c, js);
        const got = await evaluate(c, wasm);
        got.forEach((x, i) => {
          const err = maxRelErr(x, want[i]!);
          assert.ok(err <= TOL, `${simd} ${c.name}, ${i === 0 ? 'output' : `gradient ${i}`}: relative error ${err.toExponential(2)} > ${TOL}`);
        });
      }
    } finally {
      wasm.dispose();
    }
  });
}

test('the catalogue has a wasm kernel for every js kernel', async () => {
  const { jsKernels } = await import('../../src/backends/js/kernels/index.js');
  const { wasmKernels } = await import('../../src/backends/wasm/kernels.js');
  const missing = Object.keys(jsKernels).filter((k) => !wasmKernels[k]);
  assert.equal(missing, [], `no wasm kernel for ${missing.join(', ')}`);
});

test('1 and 2 threads give identical results (parallel matmul and attention, forward and backward)', async () => {
  const one = await createWasmBackend({ threads: 1 });
  const two = await createWasmBackend({ threads: 2 });
  try {
    assert.ok(two.describe().includes('2 threads'), two.describe());
    for (const c of cases.filter((x) => x.name.includes('parallel'))) {
      const a = await evaluate(c, one, 3);
      const b = await evaluate(c, two, 3);
      a.forEach((x, i) => assert.equal(b[i], x, `${c.name} result ${i}`));
    }
  } finally {
    one.dispose();
    two.dispose();
  }
});

test('dropout keeps exactly the elements js keeps', async () => {
  const c = cases.find((x) => x.name === 'dropout')!;
  const wasm = await createWasmBackend({ threads: 1 });
  try {
    const [want] = await evaluate({ ...c, noGrad: true }, js);
    const [got] = await evaluate({ ...c, noGrad: true }, wasm);
    want!.forEach((v, i) => assert.is(got![i] === 0, v === 0, `element ${i}`));
  } finally {
    wasm.dispose();
  }
});

test('accumulate adds into its state across runs', async () => {
  const build = () => {
    const g = new Graph();
    const acc = g.state('acc', [3, 5]);
    const x = g.input('x', [3, 5]);
    g.markOutput(F.accumulate(acc, F.scale(x, 2)));
    return { g, acc, x };
  };
  const results: HostArray[] = [];
  for (const backend of [js, await createWasmBackend({ threads: 1 })]) {
    const { g, acc, x } = build();
    const s = await Session.create(g, backend);
    s.set(acc, Float32Array.from(randn(15, 5)));
    s.set(x, Float32Array.from(randn(15, 6)));
    await s.run();
    await s.run();
    results.push(await s.get(acc));
    s.dispose();
    backend.dispose();
  }
  assert.ok(maxRelErr(results[1]!, results[0]!) <= TOL);
});

test('adamw matches js', async () => {
  const n = 37;
  const hyper = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step: 3, gradScale: 0.5 };
  const results: HostArray[][] = [];
  for (const backend of [js, await createWasmBackend({ threads: 1 })]) {
    const g = new Graph();
    const [w, grad, m, v] = [g.param('w', [n]), g.input('g', [n]), g.state('m', [n]), g.state('v', [n])];
    const s = await Session.create(g, backend);
    s.set(w, Float32Array.from(randn(n, 1)));
    s.set(grad, Float32Array.from(randn(n, 2)));
    s.set(m, Float32Array.from(randn(n, 3, 0.1)));
    s.set(v, Float32Array.from(randn(n, 4, 0.1)).map(Math.abs));
    s.exe.adamw(w.id, grad.id, m.id, v.id, hyper);
    s.exe.adamw(w.id, grad.id, m.id, v.id, { ...hyper, step: 4 });
    results.push(await s.getMany([w, m, v]));
    s.dispose();
    backend.dispose();
  }
  results[1]!.forEach((x, i) => assert.ok(maxRelErr(x, results[0]![i]!) <= TOL, `adamw result ${i}`));
});

test('values whose memory is shared by the plan, and a second plan on the same backend', async () => {
  const wasm = await createWasmBackend({ threads: 2 });
  try {
    const c = cases.find((x) => x.name === 'layernorm')!;
    const first = await evaluate(c, wasm, 9);
    const again = await evaluate(c, wasm, 9);
    first.forEach((x, i) => assert.equal(again[i], x));
  } finally {
    wasm.dispose();
  }
});

test.run();
