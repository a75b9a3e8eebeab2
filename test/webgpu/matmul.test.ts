// matmul on WebGPU against a float64 reference computed here from the same f32 inputs. Small or thin
// products run the untiled `small` kernel, big ones the 128×128-tiled `large`, the rest the 64×64-tiled
// `main` (wgsl/matmul.wgsl); the shapes cover all three, with ragged edges, transposes, batches and
// shared operands, and a test checks that each kernel is chosen for some of them.
// Tolerance: |C − C₆₄| ≤ 2·γ_K·Σ_k |A_ik·B_kj| + 1e-30, γ_K = K·u/(1 − K·u), u = 2⁻²⁴: twice the textbook
// forward-error bound of an f32 dot product of length K, whatever the summation order. A wrong index or
// a missed edge gives an error of the order of the value itself, far above it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createWebgpuBackend, type WebgpuBackend } from '../../src/backends/webgpu/index.js';
import type { Executable } from '../../src/backends/backend.js';
import { matmulDims, matmulKernel } from '../../src/backends/webgpu/kernels/matmul.js';
import * as F from '../../src/graph/api.js';
import { Graph, type Tensor } from '../../src/graph/graph.js';
import { numel } from '../../src/graph/types.js';
import { planGraph } from '../../src/scheduler/plan.js';
import { randn } from '../helpers.js';

interface Case {
  name: string;
  a: number[];
  b: number[];
  transA: boolean;
  transB: boolean;
}

const cases: Case[] = [];
const dims2: [number, number, number][] = [
  [1, 1, 1], [3, 5, 7], [4, 8, 4], [1, 33, 17], [17, 1, 9], [9, 13, 1], [64, 64, 64], [63, 65, 64],
  [65, 63, 66], [130, 70, 100], [16, 20, 300], [128, 8, 256], [2, 3, 0],
  // Large enough for the tiled kernel (more than 4096 outputs, both sides ≥ 16), with ragged edges.
  [97, 75, 33], [64, 128, 20], [70, 65, 17], [128, 96, 64],
  // Large enough for the 128×128 tiles (2¹⁸ outputs or more, both sides ≥ 128): ragged in every
  // dimension (K not a multiple of the 8-deep slice), and aligned (vec4 loads).
  [515, 520, 19], [516, 520, 32],
];
for (const [M, N, K] of dims2) {
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      cases.push({ name: `${M}×${N}×${K}${transA ? ' Aᵀ' : ''}${transB ? ' Bᵀ' : ''}`, a: transA ? [K, M] : [M, K], b: transB ? [N, K] : [K, N], transA, transB });
    }
  }
}
// Batched: equal batches, multi-dimensional batches, and a rank-2 side shared across the batch.
const batched: [string, number[], number[], boolean, boolean][] = [
  ['batch 3, 5×7×9', [3, 5, 9], [3, 9, 7], false, false],
  ['batch 2×3, 17×12×8 Bᵀ', [2, 3, 17, 8], [2, 3, 12, 8], false, true],
  ['batch 2, 33×65×40 Aᵀ', [2, 40, 33], [2, 40, 65], true, false],
  ['batch 3, 70×66×9 (tiled)', [3, 70, 9], [3, 9, 66], false, false],
  ['batch 2 × shared Bᵀ, 80×72×20 (tiled)', [2, 80, 20], [72, 20], false, true],
  ['batch 4, 6×6×6 Aᵀ Bᵀ', [4, 6, 6], [4, 6, 6], true, true],
  ['batch 3 × shared B, 70×20×12', [3, 70, 12], [12, 20], false, false],
  ['batch 2 × shared Bᵀ, 5×66×16', [2, 5, 16], [66, 16], false, true],
  ['shared A × batch 3, 7×9×11', [7, 11], [3, 11, 9], false, false],
  ['shared Aᵀ × batch 2×2, 12×5×8', [8, 12], [2, 2, 8, 5], true, false],
  ['batch 2, 390×350×9 (128-tiled)', [2, 390, 9], [2, 9, 350], false, false],
  ['batch 2 × shared Bᵀ, 384×360×24 (128-tiled)', [2, 384, 24], [360, 24], false, true],
  ['shared Aᵀ × batch 2, 260×520×12 (128-tiled)', [12, 260], [2, 12, 520], true, false],
];
for (const [name, a, b, transA, transB] of batched) cases.push({ name, a, b, transA, transB });

/** C = op(A)·op(B) in float64, and Σ|A||B| per element for the error bound. */
function reference(c: Case, A: Float32Array, B: Float32Array, outShape: readonly number[]): { C: Float64Array; mag: Float64Array; K: number } {
  const ra = c.a.length, rb = c.b.length;
  const M = c.a[c.transA ? ra - 1 : ra - 2]!, K = c.a[c.transA ? ra - 2 : ra - 1]!;
  const N = c.b[c.transB ? rb - 2 : rb - 1]!;
  const batch = numel(outShape) / Math.max(1, M * N) || numel(outShape.slice(0, -2));
  const sa = ra > 2 ? M * K : 0, sb = rb > 2 ? K * N : 0;
  const C = new Float64Array(batch * M * N), mag = new Float64Array(batch * M * N);
  for (let bi = 0; bi < batch; bi++) {
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0, m = 0;
        for (let k = 0; k < K; k++) {
          const x = c.transA ? A[bi * sa + k * M + i]! : A[bi * sa + i * K + k]!;
          const y = c.transB ? B[bi * sb + j * K + k]! : B[bi * sb + k * N + j]!;
          s += x * y; m += Math.abs(x * y);
        }
        C[(bi * M + i) * N + j] = s; mag[(bi * M + i) * N + j] = m;
      }
    }
  }
  return { C, mag, K };
}

let backend: WebgpuBackend;
let exe: Executable;
const outs: Tensor[] = [];
const inputs: [Tensor, Tensor, Float32Array, Float32Array][] = [];
let results: ArrayLike<number>[] = [];

// uvu reports nothing when a `before` hook throws, so a failure to set up is kept and fails every test.
let setupError: unknown = null;
test.before(async () => {
  try {
    await setup();
  } catch (e) {
    setupError = e;
    console.error(e);
  }
});

async function setup(): Promise<void> {
  backend = await createWebgpuBackend();
  console.log(`# ${backend.describe()}`);
  const g = new Graph();
  cases.forEach((c, i) => {
    const a = g.input(`a${i}`, c.a), b = g.input(`b${i}`, c.b);
    const out = F.matmul(a, b, { transA: c.transA, transB: c.transB });
    g.markOutput(out);
    outs.push(out);
    inputs.push([a, b, Float32Array.from(randn(numel(c.a), 11 + i)), Float32Array.from(randn(numel(c.b), 5011 + i))]);
  });
  exe = await backend.load(planGraph(g));
  for (const [a, b, da, db] of inputs) { exe.write(a.id, da); exe.write(b.id, db); }
  await exe.run();
  results = await exe.read(outs.map((o) => o.id));
}

test.after(() => {
  exe?.dispose();
  backend?.dispose();
});

cases.forEach((c, i) => {
  test(c.name, () => {
    if (setupError) throw setupError;
    const { C, mag, K } = reference(c, inputs[i]![2], inputs[i]![3], outs[i]!.shape);
    const got = results[i]!;
    assert.is(got.length, C.length, 'output size');
    const u = 2 ** -24, gamma = (K * u) / (1 - K * u);
    for (let e = 0; e < C.length; e++) {
      const err = Math.abs(got[e]! - C[e]!), bound = 2 * gamma * mag[e]! + 1e-30;
      if (!(err <= bound)) assert.unreachable(`element ${e}: got ${got[e]}, expected ${C[e]} (error ${err.toExponential(2)} > bound ${bound.toExponential(2)})`);
    }
  });
});

test('the cases exercise every matmul kernel', () => {
  const used = new Set(cases.map((c, i) => matmulKernel(matmulDims(c.a, c.b, outs[i]!.shape, c.transA, c.transB)).entry));
  assert.equal([...used].sort(), ['large', 'main', 'small']);
});

test('a second run with new data reuses the loaded plan', async () => {
  const c = cases[cases.length - 1]!, i = cases.length - 1;
  const [a, b] = inputs[i]!;
  const da = Float32Array.from(randn(numel(c.a), 777)), db = Float32Array.from(randn(numel(c.b), 778));
  exe.write(a.id, da); exe.write(b.id, db);
  await exe.run();
  const [got] = await exe.read([outs[i]!.id]);
  const { C, mag, K } = reference(c, da, db, outs[i]!.shape);
  const gamma = (K * 2 ** -24) / (1 - K * 2 ** -24);
  for (let e = 0; e < C.length; e++) assert.ok(Math.abs(got![e]! - C[e]!) <= 2 * gamma * mag[e]! + 1e-30, `element ${e}`);
});

test('skip leaves a step\'s output untouched', async () => {
  const before = await exe.read([outs[0]!.id, outs[1]!.id]);
  const [a] = inputs[0]!;
  exe.write(a.id, new Float32Array(numel(cases[0]!.a)).fill(1234));
  const skip = new Uint8Array(cases.length);
  skip[0] = 1;
  await exe.run(skip);
  const after = await exe.read([outs[0]!.id, outs[1]!.id]);
  assert.equal(Array.from(after[0]!), Array.from(before[0]!));
  assert.equal(Array.from(after[1]!), Array.from(before[1]!));
});

test.run();
