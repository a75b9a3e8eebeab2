// Frozen weights read by the WebGPU kernels in their compact layouts (f16, bf16, q8_0, q4_0, q4_1), against a
// float64 reference computed here from the weight as dequantised by an independent reader of the layouts
// (written below from the byte layouts in src/quant/types.ts).
// - matmul x·Wᵀ (W [N, K], a layer's forward) and dy·W (W [K, N], its activation gradient), every type,
//   ragged shapes, batched A (folded into the rows), and each of the three matmul kernels (`small`, the
//   64×64 `main`, the 128×128 `large`). Tolerance: |C − C₆₄| ≤ K·2⁻²²·Σ_k|a_ik·w_kj| + 1e-7, four times
//   the forward-error bound of an f32 dot product of length K (the dequantised weight is exact in f32,
//   so only the summation rounds), plus an absolute floor for f32 subnormal products that a GPU may
//   flush to zero. A misread element or scale gives an error of the order of the value itself.
// - embedding gather from a compact table and dequantize: exact (every value of these layouts is an f32).
// - the autodiff path: the activation gradient of a product with a compact weight.
// - webgpuPlanBuffers: the buffers it predicts are those a loaded plan allocates.
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Executable } from '../../src/backends/backend.js';
import { createWebgpuBackend, webgpuPlanBuffers, type WebgpuBackend } from '../../src/backends/webgpu/index.js';
import type { WebgpuExecutable } from '../../src/backends/webgpu/executable.js';
import { matmulDims, matmulKernel } from '../../src/backends/webgpu/kernels/matmul.js';
import * as F from '../../src/graph/api.js';
import { gradients } from '../../src/graph/autodiff.js';
import { Graph, type Tensor } from '../../src/graph/graph.js';
import { numel, type CompactDType } from '../../src/graph/types.js';
import { COMPACT_DTYPES, compactBytes, isBlockQuant } from '../../src/quant/types.js';
import { planGraph } from '../../src/scheduler/plan.js';
import { randn, rng } from '../helpers.js';

const DTYPES = COMPACT_DTYPES;

// ------------------------------------------------------------------------------------ layouts, by hand

function f16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1024 + m) * 2 ** (e - 25);
}

/** Element values of a compact tensor of n elements, in float64. */
function dequantizeRef(dtype: CompactDType, bytes: Uint8Array, n: number): Float64Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float64Array(n);
  const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
  for (let i = 0; i < n; i++) {
    if (dtype === 'f16') out[i] = f16Value(view.getUint16(2 * i, true));
    else if (dtype === 'bf16') { u32[0] = view.getUint16(2 * i, true) << 16; out[i] = f32[0]!; }
    else if (dtype === 'q8_0') out[i] = view.getFloat32(n + 4 * Math.floor(i / 32), true) * view.getInt8(i);
    else {
      const b = Math.floor(i / 32), j = i % 32;
      const byte = view.getUint8(16 * b + (j % 16));
      const q = j < 16 ? byte & 15 : byte >> 4;
      // q4_1: scale · q + min (scale · q exact, the sum rounded once to float32); q4_0: scale · (q − 8).
      if (dtype === 'q4_1') out[i] = Math.fround(view.getFloat32(n / 2 + 8 * b, true) * q + view.getFloat32(n / 2 + 8 * b + 4, true));
      else out[i] = view.getFloat32(n / 2 + 4 * b, true) * (q - 8);
    }
  }
  return out;
}

/**
 * Random layout bytes: 16-bit values with exponents around 1 (some f16 subnormals and zeros); for the
 * quantised types every quant value and binary16 scales of either sign.
 */
function randomCompact(dtype: CompactDType, n: number, seed: number): Uint8Array {
  const r = rng(seed);
  const int = (k: number): number => Math.floor(r() * k);
  const bytes = new Uint8Array(compactBytes(dtype, n));
  const view = new DataView(bytes.buffer);
  const f16Bits = (lo: number, hi: number): number => (int(2) << 15) | ((lo + int(hi - lo + 1)) << 10) | int(1024);
  if (dtype === 'f16') {
    // Exponent 0: subnormals (and the odd signed zero).
    for (let i = 0; i < n; i++) view.setUint16(2 * i, r() < 0.05 ? (int(2) << 15) | int(1024) : f16Bits(10, 17), true);
  } else if (dtype === 'bf16') {
    for (let i = 0; i < n; i++) view.setUint16(2 * i, (int(2) << 15) | ((122 + int(8)) << 7) | int(128), true);
  } else {
    const quantBytes = dtype === 'q8_0' ? n : n / 2;
    for (let i = 0; i < quantBytes; i++) bytes[i] = int(256);
    for (let b = 0; b < n / 32; b++) {
      if (dtype !== 'q4_1') view.setFloat32(quantBytes + 4 * b, f16Value(f16Bits(8, 14)), true);
      else {
        // Q4_K's products: d·sc with a 6-bit sc, and −dmin·m.
        view.setFloat32(quantBytes + 8 * b, f16Value(f16Bits(8, 14)) * (1 + int(63)), true);
        view.setFloat32(quantBytes + 8 * b + 4, -f16Value(f16Bits(8, 14)) * int(64), true);
      }
    }
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------- cases

interface MatCase {
  name: string;
  dtype: CompactDType;
  /** x·Wᵀ with W [N, K] when true, dy·W with W [K, N] otherwise. */
  forward: boolean;
  a: number[];
  w: [number, number];
  kernel: 'small' | 'main' | 'large';
}

const matCases: MatCase[] = [];
for (const dtype of DTYPES) {
  const quant = isBlockQuant(dtype);
  // The weight's row length (its contiguous dimension): a multiple of 32 for the quantised types; for
  // f16/bf16 sometimes not a multiple of 4 (element-wise loads) and sometimes one (vector loads).
  const ragged = quant ? 64 : 37, aligned = quant ? 96 : 64;
  // [kernel, A's leading dims, W's shape]; A's last dim is K: W's row length forward, its rows for dy·W.
  const forward: [MatCase['kernel'], number[], [number, number]][] = [
    ['small', [3], [45, ragged]],
    ['main', [2, 37], [70, aligned]],
    ['main', [75], [83, ragged]],
    ['large', [2, 260], [516, quant ? 32 : 35]],
  ];
  const backward: [MatCase['kernel'], number[], [number, number]][] = [
    ['small', [3], [45, ragged]],
    ['main', [2, 37], [70, aligned]],
    ['main', [150], [83, ragged]],
    ['large', [2, 260], [40, quant ? 512 : 515]],
  ];
  for (const [kernel, lead, w] of forward) {
    matCases.push({ name: `${dtype} x·Wᵀ ${[...lead, w[1]].join('×')} · [${w.join(', ')}]ᵀ (${kernel})`, dtype, forward: true, a: [...lead, w[1]], w, kernel });
  }
  for (const [kernel, lead, w] of backward) {
    matCases.push({ name: `${dtype} dy·W ${[...lead, w[0]].join('×')} · [${w.join(', ')}] (${kernel})`, dtype, forward: false, a: [...lead, w[0]], w, kernel });
  }
}

/** C = A·Wᵀ or A·W in float64 from the dequantised weight, and Σ|a||w| per element. */
function matReference(c: MatCase, A: Float32Array, W: Float64Array): { C: Float64Array; mag: Float64Array; K: number } {
  const K = c.a[c.a.length - 1]!, M = numel(c.a) / K;
  const N = c.forward ? c.w[0] : c.w[1];
  const C = new Float64Array(M * N), mag = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0, m = 0;
      for (let k = 0; k < K; k++) {
        const p = A[i * K + k]! * (c.forward ? W[j * K + k]! : W[k * N + j]!);
        s += p; m += Math.abs(p);
      }
      C[i * N + j] = s; mag[i * N + j] = m;
    }
  }
  return { C, mag, K };
}

interface TableCase { dtype: CompactDType; V: number; D: number; ids: number[] }
const tableCases: TableCase[] = DTYPES.map((dtype, i) => ({
  dtype,
  V: 11 + i,
  D: dtype === 'f16' || dtype === 'bf16' ? 37 : 64,
  // Out-of-range ids give zero rows.
  ids: [0, 3, 10, -1, 10 + i, 11 + i, 2, 2, 7],
}));

interface DequantCase { dtype: CompactDType; shape: [number, number] }
const dequantCases: DequantCase[] = DTYPES.flatMap((dtype): DequantCase[] => [
  { dtype, shape: dtype === 'f16' || dtype === 'bf16' ? [5, 19] : [7, 32] },
  { dtype, shape: [300, 64] },
]);

// ---------------------------------------------------------------------------------------------- setup

let backend: WebgpuBackend;
let exe: Executable;
let plan: ReturnType<typeof planGraph>;
const matOut: Tensor[] = [];
const matData: { a: Float32Array; w: Uint8Array }[] = [];
const tableOut: Tensor[] = [];
const tableData: Uint8Array[] = [];
const dequantOut: Tensor[] = [];
const dequantData: Uint8Array[] = [];
let gradX: Tensor, gradW: Tensor, gradR: Tensor;
const gradCase = { dtype: 'q4_0' as CompactDType, x: [2, 5, 64], w: [40, 64] as [number, number] };
const gradData: { x: Float32Array; w: Uint8Array; r: Float32Array } = {
  x: Float32Array.from(randn(640, 91)), w: randomCompact('q4_0', 40 * 64, 92), r: Float32Array.from(randn(2 * 5 * 40, 93)),
};
let results: ArrayLike<number>[] = [];

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
  const writes: [Tensor, Float32Array | Int32Array | Uint8Array][] = [];
  matCases.forEach((c, i) => {
    const a = g.input(`a${i}`, c.a);
    const w = g.param(`w${i}`, c.w, c.dtype);
    const out = F.matmul(a, w, { transB: c.forward });
    g.markOutput(out);
    matOut.push(out);
    const d = { a: Float32Array.from(randn(numel(c.a), 100 + i)), w: randomCompact(c.dtype, numel(c.w), 200 + i) };
    matData.push(d);
    writes.push([a, d.a], [w, d.w]);
  });
  tableCases.forEach((c, i) => {
    const t = g.param(`table${i}`, [c.V, c.D], c.dtype);
    const ids = g.input(`ids${i}`, [c.ids.length], 'i32');
    const out = F.embedding(t, ids);
    g.markOutput(out);
    tableOut.push(out);
    const bytes = randomCompact(c.dtype, c.V * c.D, 300 + i);
    tableData.push(bytes);
    writes.push([t, bytes], [ids, Int32Array.from(c.ids)]);
  });
  dequantCases.forEach((c, i) => {
    const w = g.param(`dq${i}`, c.shape, c.dtype);
    const out = F.dequantize(w);
    g.markOutput(out);
    dequantOut.push(out);
    const bytes = randomCompact(c.dtype, numel(c.shape), 400 + i);
    dequantData.push(bytes);
    writes.push([w, bytes]);
  });
  // loss = Σ r ∘ (x·Wᵀ); ∂loss/∂x = r·W runs as a matmul with the compact weight untransposed.
  gradX = g.param('gx', gradCase.x);
  gradW = g.param('gw', gradCase.w, gradCase.dtype);
  gradR = g.input('gr', [2, 5, 40]);
  const loss = F.sum(F.mul(F.matmul(gradX, gradW, { transB: true }), gradR));
  const dx = gradients(loss, [gradX]).get(gradX);
  g.markOutput(dx);
  writes.push([gradX, gradData.x], [gradW, gradData.w], [gradR, gradData.r]);

  plan = planGraph(g);
  exe = await backend.load(plan);
  for (const [t, d] of writes) exe.write(t.id, d);
  await exe.run();
  results = await exe.read([...matOut, ...tableOut, ...dequantOut, dx].map((t) => t.id));
}

test.after(() => {
  exe?.dispose();
  backend?.dispose();
});

// ---------------------------------------------------------------------------------------------- tests

function checkBound(got: ArrayLike<number>, C: Float64Array, mag: Float64Array, K: number): void {
  assert.is(got.length, C.length, 'output size');
  for (let e = 0; e < C.length; e++) {
    const err = Math.abs(got[e]! - C[e]!), bound = K * 2 ** -22 * mag[e]! + 1e-7;
    if (!(err <= bound)) assert.unreachable(`element ${e}: got ${got[e]}, expected ${C[e]} (error ${err.toExponential(2)} > bound ${bound.toExponential(2)})`);
  }
}

matCases.forEach((c, i) => {
  test(`matmul ${c.name}`, () => {
    if (setupError) throw setupError;
    const W = dequantizeRef(c.dtype, matData[i]!.w, numel(c.w));
    const { C, mag, K } = matReference(c, matData[i]!.a, W);
    checkBound(results[i]!, C, mag, K);
  });
});

test('the matmul cases run the kernels they are named after (A\'s batch folded into its rows)', () => {
  if (setupError) throw setupError;
  matCases.forEach((c, i) => {
    assert.is(matmulKernel(matmulDims(c.a, c.w, matOut[i]!.shape, false, c.forward)).entry, c.kernel, c.name);
  });
});

tableCases.forEach((c, i) => {
  test(`embedding from a ${c.dtype} table [${c.V}, ${c.D}] is exact`, () => {
    if (setupError) throw setupError;
    const T = dequantizeRef(c.dtype, tableData[i]!, c.V * c.D);
    const got = results[matCases.length + i]!;
    assert.is(got.length, c.ids.length * c.D);
    c.ids.forEach((id, n) => {
      for (let e = 0; e < c.D; e++) {
        const want = id >= 0 && id < c.V ? T[id * c.D + e]! : 0;
        if (!Object.is(got[n * c.D + e]!, want) && got[n * c.D + e] !== want) assert.unreachable(`row ${n} (id ${id}), column ${e}: got ${got[n * c.D + e]}, expected ${want}`);
      }
    });
  });
});

dequantCases.forEach((c, i) => {
  test(`dequantize ${c.dtype} [${c.shape.join(', ')}] is exact`, () => {
    if (setupError) throw setupError;
    const want = dequantizeRef(c.dtype, dequantData[i]!, numel(c.shape));
    const got = results[matCases.length + tableCases.length + i]!;
    assert.is(got.length, want.length);
    for (let e = 0; e < want.length; e++) {
      if (got[e] !== want[e]) assert.unreachable(`element ${e}: got ${got[e]}, expected ${want[e]}`);
    }
  });
});

test('the activation gradient through a compact weight (autodiff: dx = r·W)', () => {
  if (setupError) throw setupError;
  const W = dequantizeRef(gradCase.dtype, gradData.w, numel(gradCase.w));
  const c: MatCase = { name: 'dx', dtype: gradCase.dtype, forward: false, a: [2, 5, 40], w: gradCase.w, kernel: 'small' };
  const { C, mag, K } = matReference(c, gradData.r, W);
  checkBound(results[results.length - 1]!, C, mag, K);
});

test('a compact weight reads back as the bytes written', async () => {
  if (setupError) throw setupError;
  const [w] = await exe.read([gradW.id]);
  assert.ok(w instanceof Uint8Array);
  assert.equal(Array.from(w as Uint8Array), Array.from(gradData.w));
});

test('webgpuPlanBuffers predicts the buffers loading allocates', async () => {
  if (setupError) throw setupError;
  const gpu = exe as WebgpuExecutable;
  const est = await webgpuPlanBuffers(plan, backend.context.limits);
  assert.is(est.arena.bytes, gpu.arena.size);
  assert.is(est.weights.length, gpu.weights.size);
  for (const w of est.weights) assert.is(w.bytes, gpu.weights.get(w.value)!.size, `weight %${w.value}`);
  // Compact weights take their layout's bytes, not 4 per element.
  const q = est.weights.find((w) => w.value === gradW.id)!;
  assert.is(q.bytes, compactBytes('q4_0', numel(gradCase.w)));
  const sum = est.arena.bytes + est.weights.reduce((a, w) => a + w.bytes, 0) + est.uniforms;
  assert.is(est.total, sum);
  assert.ok(est.arena.values >= plan.arenaElems * 4 && est.arena.bytes >= est.arena.values + est.arena.constants + est.arena.scratch);
});

test('kernels that include compact.wgsl build from sources given in memory, as in a bundle', async () => {
  if (setupError) throw setupError;
  const dir = new URL('../../wgsl/', import.meta.url);
  const wgsl = Object.fromEntries(readdirSync(dir).filter((f) => f.endsWith('.wgsl')).map((f) => [f.slice(0, -5), readFileSync(new URL(f, dir), 'utf8')]));
  const bundled = await createWebgpuBackend({ context: backend.context, wgsl });
  const g = new Graph();
  const w = g.param('w', [2, 32], 'q8_0');
  const out = F.dequantize(w);
  g.markOutput(out);
  const e = await bundled.load(planGraph(g));
  try {
    const bytes = randomCompact('q8_0', 64, 500);
    e.write(w.id, bytes);
    await e.run();
    const [got] = await e.read([out.id]);
    assert.equal(Array.from(got!), Array.from(dequantizeRef('q8_0', bytes, 64)));
  } finally {
    e.dispose();
    bundled.dispose();
  }
});

test.run();
