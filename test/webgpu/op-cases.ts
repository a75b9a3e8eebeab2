/**
 * Every op of the catalogue on a backend under test against the js backend (the oracle), forward and
 * backward: each case builds a small graph, and when it is differentiable appends
 * loss = Σ out ∘ w (w fixed random) and the gradients of the loss with respect to every f32 leaf. All
 * outputs, the loss and the gradients are compared.
 *
 * Tolerance: max |got − ref| ≤ tol · max |ref| per tensor, tol = 2e-4 unless a case says otherwise.
 * The js backend stores f32 but accumulates in float64; a WebGPU kernel accumulates in f32 in its own
 * order, so sums of n terms differ by up to about n·2⁻²⁴ relative to their magnitude (n ≤ 600 here);
 * exp/log/tanh/sin/cos of WGSL are not correctly rounded (a few ulp). Index or masking mistakes give
 * errors of the order of the values, far above.
 *
 * No test-runner or runtime-specific imports: Node (uvu), Deno and the browser harness share it.
 */
import type { Backend, HostArray } from '../../src/backends/backend.js';
import * as F from '../../src/graph/api.js';
import { gradients } from '../../src/graph/autodiff.js';
import { Graph, type Tensor } from '../../src/graph/graph.js';
import { numel } from '../../src/graph/types.js';
import { planGraph } from '../../src/scheduler/plan.js';
import { seededRandom } from '../../src/util/random.js';

export const DEFAULT_TOL = 2e-4;

interface Leaf {
  name: string;
  shape: number[];
  kind?: 'input' | 'param' | 'state';
  dtype?: 'f32' | 'i32';
  data?: ArrayLike<number>;
  scale?: number;
  offset?: number;
}

export interface OpCase {
  name: string;
  leaves: Leaf[];
  body: (ts: Tensor[], g: Graph) => Tensor | Tensor[];
  /** Append a loss and gradients (default: true). */
  grad?: boolean;
  tol?: number;
}


function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = seededRandom(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12), v = r();
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v) * scale;
  }
  return out;
}

const L = (name: string, shape: number[], extra: Partial<Leaf> = {}): Leaf => ({ name, shape, ...extra });
const ids = (name: string, shape: number[], data: number[]): Leaf => ({ name, shape, dtype: 'i32', kind: 'input', data });

export const cases: OpCase[] = [
  // matmul: the dedicated matmul test covers shapes; here the gradient graph (transposed products) runs.
  { name: 'matmul', leaves: [L('a', [5, 7]), L('b', [7, 6])], body: ([a, b]) => F.matmul(a!, b!) },
  { name: 'matmul batched × shared Bᵀ', leaves: [L('a', [2, 5, 8]), L('b', [6, 8])], body: ([a, b]) => F.matmul(a!, b!, { transB: true }) },
  { name: 'matmul shared Aᵀ × batch', leaves: [L('a', [4, 3]), L('b', [2, 4, 5])], body: ([a, b]) => F.matmul(a!, b!, { transA: true }) },
  { name: 'add broadcast', leaves: [L('a', [2, 3, 4]), L('b', [3, 1])], body: ([a, b]) => F.add(a!, b!) },
  { name: 'sub broadcast', leaves: [L('a', [4]), L('b', [2, 3, 4])], body: ([a, b]) => F.sub(a!, b!) },
  { name: 'mul broadcast', leaves: [L('a', [2, 1, 4]), L('b', [3, 1])], body: ([a, b]) => F.mul(a!, b!) },
  { name: 'mul same value twice', leaves: [L('a', [3, 5])], body: ([a]) => F.mul(a!, a!) },
  { name: 'div broadcast', leaves: [L('a', [2, 3]), L('b', [3], { offset: 3 })], body: ([a, b]) => F.div(a!, b!) },
  { name: 'add contiguous, 3000 elements', leaves: [L('a', [3, 1000]), L('b', [3, 1000])], body: ([a, b]) => F.add(a!, b!) },
  { name: 'scale', leaves: [L('a', [5])], body: ([a]) => F.scale(a!, -2.5) },
  { name: 'neg', leaves: [L('a', [5])], body: ([a]) => F.neg(a!) },
  { name: 'exp', leaves: [L('a', [9])], body: ([a]) => F.exp(a!) },
  { name: 'log', leaves: [L('a', [9], { scale: 0.2, offset: 2 })], body: ([a]) => F.log(a!) },
  { name: 'sqrt', leaves: [L('a', [9], { scale: 0.2, offset: 2 })], body: ([a]) => F.sqrt(a!) },
  { name: 'silu', leaves: [L('a', [300], { scale: 4 })], body: ([a]) => F.silu(a!) },
  { name: 'gelu', leaves: [L('a', [300], { scale: 4 })], body: ([a]) => F.gelu(a!) },
  { name: 'erf', leaves: [L('a', [300], { scale: 4 })], body: ([a]) => F.erf(a!) },
  { name: 'tanh', leaves: [L('a', [300], { scale: 4 })], body: ([a]) => F.tanh(a!) },
  { name: 'relu', leaves: [L('a', [300], { scale: 4 })], body: ([a]) => F.relu(a!) },
  { name: 'sum axes', leaves: [L('a', [2, 3, 4])], body: ([a]) => F.sum(a!, [0, 2]) },
  { name: 'sum keepDims', leaves: [L('a', [2, 3, 4])], body: ([a]) => F.sum(a!, [1], true) },
  { name: 'sum long rows', leaves: [L('a', [3, 500])], body: ([a]) => F.sum(a!, [1]) },
  { name: 'sum over the leading axis, long', leaves: [L('a', [300, 7])], body: ([a]) => F.sum(a!, [0]) },
  { name: 'mean all', leaves: [L('a', [20, 30])], body: ([a]) => F.mean(a!) },
  { name: 'mean last', leaves: [L('a', [2, 3, 4])], body: ([a]) => F.mean(a!, [-1]) },
  { name: 'broadcast_to', leaves: [L('a', [3, 1])], body: ([a]) => F.broadcastTo(a!, [2, 3, 4]) },
  { name: 'reshape', leaves: [L('a', [2, 6])], body: ([a]) => F.mul(F.reshape(a!, [3, -1]), F.reshape(a!, [3, 4])) },
  { name: 'transpose', leaves: [L('a', [2, 3, 4])], body: ([a]) => F.transpose(a!, [2, 0, 1]) },
  { name: 'transpose heads', leaves: [L('a', [2, 5, 3, 4])], body: ([a]) => F.transpose(a!, [0, 2, 1, 3]) },
  { name: 'slice', leaves: [L('a', [3, 5, 2])], body: ([a]) => F.slice(a!, 1, 1, 4) },
  { name: 'pad', leaves: [L('a', [3, 2])], body: ([a]) => F.pad(a!, 0, 1, 2) },
  { name: 'concat', leaves: [L('a', [2, 3]), L('b', [2, 1])], body: ([a, b]) => F.concat([a!, b!, a!], 1) },
  { name: 'concat i32', leaves: [ids('a', [2, 2], [1, -2, 3, 2147483647]), ids('b', [1, 2], [-5, 6])], body: ([a, b]) => F.concat([a!, b!], 0), grad: false },
  { name: 'transpose i32', leaves: [ids('a', [2, 3], [1, 2, 3, -4, 5, -2147483648])], body: ([a]) => F.transpose(a!, [1, 0]), grad: false },
  { name: 'fill', leaves: [L('a', [2])], body: ([a], g) => F.add(F.fill(g, [3, 2], 1.5), a!) },
  { name: 'stop_gradient', leaves: [L('a', [4])], body: ([a]) => F.mul(F.stopGradient(a!), a!) },
  { name: 'dropout', leaves: [L('x', [3, 50]), ids('seed', [1], [12345])], body: ([x, s]) => F.dropout(x!, s!, 0.3, 7) },
  { name: 'uniform', leaves: [L('x', [3, 50]), ids('seed', [1], [-12345])], body: ([x, s]) => F.mul(F.uniform(s!, [3, 50], 9), x!) },
  { name: 'dropout negative seed', leaves: [L('x', [100]), ids('seed', [1], [-7])], body: ([x, s]) => F.dropout(x!, s!, 0.5) },
  { name: 'accumulate (in place)', leaves: [L('acc', [4, 5], { kind: 'state' }), L('x', [4, 5])], body: ([acc, x]) => F.accumulate(acc!, x!), grad: false },
  { name: 'rmsnorm', leaves: [L('x', [3, 8]), L('w', [8])], body: ([x, w]) => F.rmsnorm(x!, w!, 1e-5) },
  { name: 'rmsnorm wide, many rows', leaves: [L('x', [70, 600]), L('w', [600])], body: ([x, w]) => F.rmsnorm(x!, w!, 1e-6) },
  { name: 'layernorm', leaves: [L('x', [3, 8]), L('w', [8]), L('b', [8])], body: ([x, w, b]) => F.layernorm(x!, w!, b!, 1e-5) },
  { name: 'layernorm wide, many rows', leaves: [L('x', [70, 300], { offset: 1 }), L('w', [300]), L('b', [300])], body: ([x, w, b]) => F.layernorm(x!, w!, b!, 1e-5) },
  { name: 'rope pairs', leaves: [L('x', [2, 3, 2, 8])], body: ([x]) => F.rope(x!, { theta: 10000, layout: 'pairs' }) },
  { name: 'rope half offset', leaves: [L('x', [1, 4, 3, 6])], body: ([x]) => F.rope(x!, { theta: 500, layout: 'half', offset: 5 }) },
  { name: 'rope positions', leaves: [L('x', [1, 3, 2, 4]), ids('pos', [3], [7, 2, 9])], body: ([x, pos]) => F.rope(x!, { theta: 100, layout: 'pairs' }, pos) },
  { name: 'rope positions, large and negative', leaves: [L('x', [1, 4, 1, 64]), ids('pos', [4], [0, 1000, 300000001, -4095])], body: ([x, pos]) => F.rope(x!, { theta: 10000, layout: 'half' }, pos) },
  { name: 'attention causal', leaves: [L('q', [2, 4, 2, 3]), L('k', [2, 4, 2, 3]), L('v', [2, 4, 2, 3])], body: ([q, k, v]) => F.attention(q!, k!, v!) },
  { name: 'attention gqa', leaves: [L('q', [1, 3, 4, 2]), L('k', [1, 3, 2, 2]), L('v', [1, 3, 2, 2])], body: ([q, k, v]) => F.attention(q!, k!, v!, { scale: 0.7 }) },
  { name: 'attention kv longer than q', leaves: [L('q', [1, 2, 2, 3]), L('k', [1, 5, 1, 3]), L('v', [1, 5, 1, 3])], body: ([q, k, v]) => F.attention(q!, k!, v!) },
  { name: 'attention not causal', leaves: [L('q', [1, 3, 2, 2]), L('k', [1, 4, 2, 2]), L('v', [1, 4, 2, 2])], body: ([q, k, v]) => F.attention(q!, k!, v!, { causal: false }) },
  {
    name: 'attention causal gqa, several tiles, head 64',
    leaves: [L('q', [1, 37, 4, 64]), L('k', [1, 37, 2, 64]), L('v', [1, 37, 2, 64])],
    body: ([q, k, v]) => F.attention(q!, k!, v!),
  },
  {
    name: 'attention head 80, kv longer than q, not causal',
    leaves: [L('q', [2, 9, 2, 80]), L('k', [2, 21, 1, 80]), L('v', [2, 21, 1, 80])],
    body: ([q, k, v]) => F.attention(q!, k!, v!, { causal: false }),
  },
  {
    name: 'attention with kvLen (KV cache)',
    leaves: [L('q', [1, 2, 2, 4]), L('k', [1, 8, 1, 4]), L('v', [1, 8, 1, 4]), ids('len', [1], [5])],
    body: ([q, k, v, len]) => F.attention(q!, k!, v!, {}, len),
    grad: false,
  },
  {
    name: 'attention with kvLen 0',
    leaves: [L('q', [1, 1, 1, 4]), L('k', [1, 3, 1, 4]), L('v', [1, 3, 1, 4]), ids('len', [1], [0])],
    body: ([q, k, v, len], g) => g.apply('attention', [q!, k!, v!, len!], { causal: true, scale: 0.5 }),
    grad: false,
  },
  {
    name: 'kv_write (in place)',
    leaves: [L('cache', [2, 6, 2, 3], { kind: 'state' }), L('rows', [2, 3, 2, 3]), ids('pos', [1], [4])],
    body: ([c, r, p]) => F.kvWrite(c!, r!, p!),
    grad: false,
  },
  { name: 'embedding', leaves: [L('t', [5, 3]), ids('ids', [2, 3], [0, 4, 2, 2, 9, 1])], body: ([t, i]) => F.embedding(t!, i!) },
  { name: 'embedding, repeated ids', leaves: [L('t', [7, 40]), ids('ids', [12], [3, 3, 3, 0, 6, 3, -1, 3, 2, 3, 3, 7])], body: ([t, i]) => F.embedding(t!, i!) },
  { name: 'cross_entropy', leaves: [L('l', [4, 6]), ids('y', [4], [1, -100, 5, 0])], body: ([l, y]) => F.crossEntropy(l!, y!) },
  { name: 'cross_entropy wide vocabulary', leaves: [L('l', [5, 1000], { scale: 3 }), ids('y', [5], [999, 0, 17, 1000, 500])], body: ([l, y]) => F.crossEntropy(l!, y!) },
  { name: 'cross_entropy, nothing counts', leaves: [L('l', [2, 3]), ids('y', [2], [-100, -100])], body: ([l, y]) => F.crossEntropy(l!, y!) },
  {
    name: 'a small transformer block',
    leaves: [L('x', [2, 5, 16]), L('wn', [16], { offset: 1 }), L('wq', [16, 16], { scale: 0.25 }), L('wk', [16, 8], { scale: 0.25 }), L('wv', [16, 8], { scale: 0.25 }), L('wo', [16, 16], { scale: 0.25 })],
    body: ([x, wn, wq, wk, wv, wo]) => {
      const h = F.rmsnorm(x!, wn!, 1e-5);
      const q = F.rope(F.reshape(F.matmul(h, wq!), [2, 5, 4, 4]), { theta: 10000, layout: 'half' });
      const k = F.rope(F.reshape(F.matmul(h, wk!), [2, 5, 2, 4]), { theta: 10000, layout: 'half' });
      const v = F.reshape(F.matmul(h, wv!), [2, 5, 2, 4]);
      const a = F.reshape(F.attention(q, k, v), [2, 5, 16]);
      return F.add(x!, F.silu(F.matmul(a, wo!)));
    },
  },
];

export interface CaseResult {
  name: string;
  ok: boolean;
  /** Worst max|got − ref| / max|ref| over the compared tensors. */
  worst: number;
  tol: number;
  detail: string;
}

function relErr(got: ArrayLike<number>, ref: ArrayLike<number>): { err: number; at: number } {
  let scale = 0, err = 0, at = -1;
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i]!, g = got[i]!;
    scale = Math.max(scale, Math.abs(r));
    // Matching infinities (an empty softmax's lse) and NaNs (0/0 in both) count as equal.
    if (r === g || (Number.isNaN(r) && Number.isNaN(g))) continue;
    const e = Math.abs(g - r);
    if (!(e <= err)) { err = Number.isNaN(e) ? Infinity : e; at = i; }
  }
  return { err: scale > 0 ? err / scale : err, at };
}

function leafData(l: Leaf, i: number): HostArray {
  if (l.dtype === 'i32') return Int32Array.from(l.data ?? new Array(numel(l.shape)).fill(0));
  const d = l.data ? Float32Array.from(l.data) : randn(numel(l.shape), 1000 + 37 * i, l.scale ?? 1);
  if (l.offset) for (let k = 0; k < d.length; k++) d[k]! += l.offset;
  return d;
}

/** Build the case's graph; the tensors to compare, by label. */
function build(c: OpCase): { g: Graph; leaves: Tensor[]; data: HostArray[]; compare: [string, Tensor][] } {
  const g = new Graph();
  const leaves = c.leaves.map((l) => {
    if (l.kind === 'state') return g.state(l.name, l.shape, l.dtype ?? 'f32');
    if (l.kind === 'input' || l.dtype === 'i32') return g.input(l.name, l.shape, l.dtype ?? 'f32');
    return g.param(l.name, l.shape);
  });
  const data = c.leaves.map((l, i) => leafData(l, i));
  const result = c.body(leaves, g);
  const outs = Array.isArray(result) ? result : [result];
  const compare: [string, Tensor][] = outs.map((t, i) => [`output ${i}`, t]);
  if (c.grad !== false) {
    const out = outs[0]!;
    const w = g.input('__w', out.shape);
    leaves.push(w);
    data.push(randn(numel(out.shape), 4242));
    const loss = F.sum(F.mul(out, w));
    const wrt = leaves.filter((t, i) => t.dtype === 'f32' && c.leaves[i] !== undefined);
    const grads = gradients(loss, wrt);
    compare.push(['loss', loss]);
    for (const t of wrt) compare.push([`d${t.info.name}`, grads.get(t)]);
  }
  for (const [, t] of compare) g.markOutput(t);
  return { g, leaves, data, compare };
}

async function runOn(backend: Backend, c: ReturnType<typeof build>): Promise<HostArray[]> {
  const exe = await backend.load(planGraph(c.g));
  try {
    c.leaves.forEach((t, i) => exe.write(t.id, c.data[i]!));
    await exe.run();
    return await exe.read(c.compare.map(([, t]) => t.id));
  } finally {
    exe.dispose();
  }
}

export async function checkCase(backend: Backend, oracle: Backend, c: OpCase): Promise<CaseResult> {
  const built = build(c);
  const tol = c.tol ?? DEFAULT_TOL;
  const [got, ref] = [await runOn(backend, built), await runOn(oracle, built)];
  let worst = 0;
  const bad: string[] = [];
  built.compare.forEach(([label], i) => {
    const { err, at } = relErr(got[i]!, ref[i]!);
    worst = Math.max(worst, err);
    if (!(err <= tol)) bad.push(`${label}: relative error ${err.toExponential(2)} at [${at}] (got ${got[i]![at]}, expected ${ref[i]![at]})`);
  });
  return { name: c.name, ok: bad.length === 0, worst, tol, detail: bad.join('; ') };
}

/** AdamW on the backend against js over a few steps with changing hyper-parameters. */
export async function checkAdamw(backend: Backend, oracle: Backend): Promise<CaseResult> {
  const g = new Graph();
  const n = 1000;
  const p = g.param('p', [n]), gr = g.input('g', [n]), m = g.state('m', [n]), v = g.state('v', [n]);
  g.markOutput(p, m, v);
  const plan = planGraph(g);
  const results: HostArray[][] = [];
  for (const b of [backend, oracle]) {
    const exe = await b.load(plan);
    exe.write(p.id, randn(n, 1));
    exe.write(m.id, new Float32Array(n));
    exe.write(v.id, new Float32Array(n));
    for (let step = 1; step <= 3; step++) {
      exe.write(gr.id, randn(n, 10 + step));
      exe.adamw(p.id, gr.id, m.id, v.id, { lr: 0.01 / step, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step, gradScale: 0.5 });
    }
    results.push(await exe.read([p.id, m.id, v.id]));
    exe.dispose();
  }
  let worst = 0;
  const bad: string[] = [];
  ['param', 'm', 'v'].forEach((label, i) => {
    const { err } = relErr(results[0]![i]!, results[1]![i]!);
    worst = Math.max(worst, err);
    if (!(err <= 1e-5)) bad.push(`${label}: relative error ${err.toExponential(2)}`);
  });
  return { name: 'adamw', ok: bad.length === 0, worst, tol: 1e-5, detail: bad.join('; ') };
}
