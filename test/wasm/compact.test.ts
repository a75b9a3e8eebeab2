// Compact frozen weights read directly by the wasm kernels (f16, bf16, q8_0, q4_0, q4_1): matmul in both
// orientations against a float64 product of the weight dequantised here, from the layout description
// alone; the embedding gather and dequantize exactly.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { dequantize, embedding } from '../../src/backends/wasm/compact.js';
import { createWasmBackend } from '../../src/backends/wasm/index.js';
import * as F from '../../src/graph/api.js';
import { Graph } from '../../src/graph/graph.js';
import type { DType } from '../../src/graph/types.js';
import { Session } from '../../src/scheduler/session.js';
import { hasRelaxedSimd } from '../../src/backends/wasm/loader.js';
import { matmul } from '../../src/backends/wasm/matmul.js';
import { WasmRuntime } from '../../src/backends/wasm/runtime.js';
import { COMPACT_DTYPES, isBlockQuant, type CompactDType } from '../../src/quant/types.js';

const DTYPES = COMPACT_DTYPES;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
const int = (r: () => number, n: number) => Math.floor(r() * n);

/** binary16 bits → value: sign · 2^(e−15) · (1 + m/1024), subnormals 2^−14 · m/1024. */
function half(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  if (e === 0) return s * 2 ** -14 * (m / 1024);
  if (e === 31) return m ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + m / 1024);
}

/** bfloat16 bits → value: the same with 8 exponent and 7 mantissa bits. */
function bfloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 7) & 255, m = h & 127;
  if (e === 0) return s * 2 ** -126 * (m / 128);
  if (e === 255) return m ? NaN : s * Infinity;
  return s * 2 ** (e - 127) * (1 + m / 128);
}

/** A binary16 bit pattern, exponent field drawn from [eMin, eMax], random sign and mantissa. */
const randomHalf = (r: () => number, eMin: number, eMax: number) =>
  (int(r, 2) << 15) | ((eMin + int(r, eMax - eMin + 1)) << 10) | int(r, 1024);

interface Compact {
  bytes: Uint8Array;
  /** The dequantised values, as the layout description defines them. */
  values: Float64Array;
}

/**
 * A random [rows, cols] tensor of `dtype`, made directly as layout bytes: no encoder is involved, so
 * the only codec under test is the kernel's. Magnitudes near 1 unless `special` (all bit patterns).
 */
function randomCompact(dtype: CompactDType, n: number, r: () => number, special = false): Compact {
  const values = new Float64Array(n);
  if (dtype === 'f16' || dtype === 'bf16') {
    const bytes = new Uint8Array(Math.ceil((2 * n) / 4) * 4);
    const dv = new DataView(bytes.buffer);
    for (let i = 0; i < n; i++) {
      const h = special ? int(r, 65536) : dtype === 'f16' ? randomHalf(r, 0, 15) : (int(r, 2) << 15) | ((118 + int(r, 10)) << 7) | int(r, 128);
      dv.setUint16(2 * i, h, true);
      values[i] = dtype === 'f16' ? half(h) : bfloat(h);
    }
    return { bytes, values };
  }
  const blocks = n / 32;
  const quantBytes = dtype === 'q8_0' ? n : n / 2;
  // q4_1 keeps a (scale, minimum) pair per block, the others a scale.
  const perBlock = dtype === 'q4_1' ? 8 : 4;
  const bytes = new Uint8Array(Math.ceil((quantBytes + perBlock * blocks) / 4) * 4);
  const dv = new DataView(bytes.buffer);
  for (let b = 0; b < blocks; b++) {
    // Scales are binary16 values stored as float32, the layout's contract; q4_1's may also be a binary16
    // value times a 6-bit integer (Q4_K's d·sc), and its minimum −dmin·m.
    let scale = half(randomHalf(r, special ? 0 : 5, special ? 30 : 13));
    let min = 0;
    if (dtype === 'q4_1' && !special) {
      scale *= 1 + int(r, 63);
      min = -half(randomHalf(r, 5, 13)) * int(r, 64);
    } else if (dtype === 'q4_1') min = half(randomHalf(r, 0, 30));
    dv.setFloat32(quantBytes + perBlock * b, scale, true);
    if (dtype === 'q4_1') dv.setFloat32(quantBytes + 8 * b + 4, min, true);
    for (let j = 0; j < 32; j++) {
      const i = 32 * b + j;
      if (dtype === 'q8_0') {
        const q = int(r, 256) - 128;
        dv.setInt8(i, q);
        values[i] = scale * q;
      } else {
        // Element 32b+j: byte 16b + (j mod 16), low nibble for j < 16, high for j ≥ 16.
        const nibble = int(r, 16);
        const at = 16 * b + (j & 15);
        bytes[at] = j < 16 ? (bytes[at]! & 0xf0) | nibble : (bytes[at]! & 0x0f) | (nibble << 4);
        // q4_1: scale · nibble is exact, so the value is the sum rounded once to float32.
        values[i] = dtype === 'q4_1' ? Math.fround(scale * nibble + min) : scale * (nibble - 8);
      }
    }
  }
  return { bytes, values };
}

function fill(n: number, r: () => number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = r() * 2 - 1;
  return x;
}

function put(rt: WasmRuntime, data: Uint8Array | Float32Array | Int32Array): number {
  const p = rt.heap.alloc(data.byteLength);
  new Uint8Array(rt.memory.buffer, p, data.byteLength).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return p;
}

interface Case {
  /** Items of A (0: rank 2); a compact weight is shared by the batch. */
  batch: number;
  M: number;
  /** The weight is [N, K]. forward: C[M, N] = A[M, K]·Wᵀ; backward: C[M, K] = A[M, N]·W. */
  N: number;
  K: number;
  forward: boolean;
}

const describe = (c: Case, dtype: string) => `${dtype} ${c.forward ? 'x·Wᵀ' : 'dy·W'} ${c.batch}×${c.M}, W [${c.N}, ${c.K}]`;

/** C from the wasm kernel with the compact weight, and with the same weight given as float32. */
function run(rt: WasmRuntime, c: Case, dtype: CompactDType, w: Compact, a: Float32Array, threads?: number): { got: Float32Array; f32: Float32Array } {
  const rows = Math.max(c.batch, 1) * c.M;
  const [inner, outer] = c.forward ? [c.K, c.N] : [c.N, c.K];
  const pa = put(rt, a), pw = put(rt, w.bytes), pf = put(rt, Float32Array.from(w.values));
  const pc = rt.heap.alloc(rows * outer * 4);
  const call = {
    a: pa, c: pc, batch: Math.max(c.batch, 1), M: c.M, N: outer, K: inner, transB: c.forward,
    strideA: c.batch ? c.M * inner : 0, strideB: 0, strideC: c.M * outer, threads,
  };
  matmul(rt, { ...call, b: pw, bType: dtype });
  const got = rt.f32(pc, rows * outer).slice();
  matmul(rt, { ...call, b: pf });
  const f32 = rt.f32(pc, rows * outer).slice();
  for (const p of [pa, pw, pf, pc]) rt.heap.release(p);
  return { got, f32 };
}

/**
 * The stated bound: |C − C64| ≤ K·2^−22·Σ|a||w| + 1e-7 per element, with C64 the float64 product of
 * the dequantised weight and K the length of each dot product. (Float32 accumulation of K products is
 * within about K·2^−24·Σ|a||w| in the worst case; the bound leaves a factor 4 over that and still
 * fails for any wrong index or scale, whose errors are of the order of the terms themselves.)
 */
function check(c: Case, dtype: string, a: Float32Array, w: Float64Array, got: Float32Array): void {
  const rows = Math.max(c.batch, 1) * c.M;
  const [inner, outer] = c.forward ? [c.K, c.N] : [c.N, c.K];
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < outer; j++) {
      let s = 0, mag = 0;
      for (let k = 0; k < inner; k++) {
        const wv = c.forward ? w[j * c.K + k]! : w[k * c.K + j]!;
        const t = a[i * inner + k]! * wv;
        s += t;
        mag += Math.abs(t);
      }
      const err = Math.abs(got[i * outer + j]! - s);
      const tol = inner * 2 ** -22 * mag + 1e-7;
      if (!(err <= tol)) assert.unreachable(`${describe(c, dtype)}: C[${i}, ${j}] = ${got[i * outer + j]}, expected ${s} (bound ${tol})`);
    }
  }
}

/** Ragged shapes: M ≤ 4 takes the matrix-vector path, more rows the packed one; K and N cross blocks. */
function casesFor(dtype: CompactDType): Case[] {
  const q = isBlockQuant(dtype);
  const Ks = q ? [32, 96, 288, 544] : [1, 7, 33, 300];
  const out: Case[] = [];
  let n = 0;
  for (const forward of [true, false]) {
    for (const M of [1, 3, 5, 13, 37]) {
      for (const N of [1, 9, 33, 67]) {
        // The weight's row length is K in both orientations, so only K need hold whole q blocks.
        const K = Ks[n++ % Ks.length]!;
        out.push({ batch: n % 3 === 0 ? 3 : 0, M, N, K, forward });
      }
    }
  }
  // Beyond one depth block (256) and one column block (1024).
  out.push({ batch: 0, M: 7, N: 1030, K: q ? 320 : 301, forward: true });
  out.push({ batch: 2, M: 9, N: 300, K: q ? 1056 : 1031, forward: false });
  out.push({ batch: 0, M: 2, N: 40, K: q ? 1088 : 1100, forward: false });
  return out;
}

const flavours = hasRelaxedSimd() ? (['simd', 'relaxed'] as const) : (['simd'] as const);

for (const simd of flavours) {
  test(`${simd}: compact matmul in both orientations equals the f32 product of the dequantised weight`, async () => {
    const rt = await WasmRuntime.create({ simd, threads: 1 });
    try {
      DTYPES.forEach((dtype, d) => {
        casesFor(dtype).forEach((c, n) => {
          const r = rng(1000 * d + n);
          const w = randomCompact(dtype, c.N * c.K, r);
          const a = fill(Math.max(c.batch, 1) * c.M * (c.forward ? c.K : c.N), r);
          const { got, f32 } = run(rt, c, dtype, w, a);
          check(c, dtype, a, w.values, got);
          // The weight is widened to its exact f32 values before the same arithmetic.
          assert.equal(got, f32, `${simd} ${describe(c, dtype)}: differs from the f32 kernel`);
        });
      });
    } finally {
      rt.dispose();
    }
  });

  test(`${simd}: compact matmul on 2 threads gives the single-thread result exactly`, async () => {
    const one = await WasmRuntime.create({ simd, threads: 1 });
    const two = await WasmRuntime.create({ simd, threads: 2 });
    try {
      assert.is(two.threads, 2);
      DTYPES.forEach((dtype, d) => {
        const cases: Case[] = [
          { batch: 0, M: 130, N: 67, K: 288, forward: true },
          { batch: 3, M: 45, N: 96, K: 160, forward: false },
          { batch: 0, M: 2, N: 3001, K: 416, forward: true },
        ];
        cases.forEach((c, n) => {
          const r = rng(5000 + 10 * d + n);
          const w = randomCompact(dtype, c.N * c.K, r);
          const a = fill(Math.max(c.batch, 1) * c.M * (c.forward ? c.K : c.N), r);
          const single = run(one, c, dtype, w, a).got;
          check(c, dtype, a, w.values, single);
          assert.equal(run(two, c, dtype, w, a).got, single, `${simd} 2 threads ${describe(c, dtype)}`);
        });
      });
    } finally {
      one.dispose();
      two.dispose();
    }
  });
}

/** Bit-exact comparison that tells −0 from +0 and accepts any NaN for a NaN. */
function sameValues(got: Float32Array, want: Float64Array, label: string): void {
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, w = want[i]!;
    if (Number.isNaN(w) ? !Number.isNaN(g) : !Object.is(g, w)) assert.unreachable(`${label}: element ${i} is ${g}, expected ${w}`);
  }
}

test('dequantize gives every value exactly, binary16 subnormals, infinities and NaNs included', async () => {
  const rt = await WasmRuntime.create({ threads: 1 });
  try {
    DTYPES.forEach((dtype, d) => {
      for (const n of [32, 96, 4096]) {
        const w = randomCompact(dtype, n, rng(77 + d * 7 + n), true);
        const src = put(rt, w.bytes), dst = rt.heap.alloc(n * 4);
        dequantize(rt, dtype, src, n, dst);
        sameValues(rt.f32(dst, n), w.values, `${dtype} n=${n}`);
        rt.heap.release(src);
        rt.heap.release(dst);
      }
    });
    // Every binary16 bit pattern.
    const all = new Uint16Array(65536).map((_, i) => i);
    const src = put(rt, new Uint8Array(all.buffer)), dst = rt.heap.alloc(65536 * 4);
    dequantize(rt, 'f16', src, 65536, dst);
    sameValues(rt.f32(dst, 65536), Float64Array.from(all, half), 'every binary16');
    dequantize(rt, 'bf16', src, 65536, dst);
    sameValues(rt.f32(dst, 65536), Float64Array.from(all, bfloat), 'every bfloat16');
  } finally {
    rt.dispose();
  }
});

test('embedding gathers dequantised rows of a compact table, zeros for ids out of range', async () => {
  const rt = await WasmRuntime.create({ threads: 1 });
  try {
    DTYPES.forEach((dtype, d) => {
      const V = 37, D = dtype === 'f16' || dtype === 'bf16' ? 45 : 96;
      const r = rng(900 + d);
      const w = randomCompact(dtype, V * D, r);
      const ids = Int32Array.from([0, V - 1, 5, -1, V, 17, 17, 36, 2 ** 30]);
      const pt = put(rt, w.bytes), pi = put(rt, ids), po = rt.heap.alloc(ids.length * D * 4);
      embedding(rt, dtype, pt, pi, po, ids.length, V, D);
      const want = new Float64Array(ids.length * D);
      ids.forEach((id, i) => {
        if (id >= 0 && id < V) want.set(w.values.subarray(id * D, (id + 1) * D), i * D);
      });
      sameValues(rt.f32(po, want.length), want, `${dtype} embedding`);
      for (const p of [pt, pi, po]) rt.heap.release(p);
    });
  } finally {
    rt.dispose();
  }
});

test('a graph with compact params runs on the wasm backend as with their dequantised f32 copies', async () => {
  const backend = await createWasmBackend({ threads: 2 });
  const [B, T, N, K, V] = [2, 5, 40, 64, 11];
  /** A linear layer's forward x·Wᵀ and input gradient dy·W, an embedding and dequantize(W). */
  const build = (dtype: DType) => {
    const g = new Graph();
    const x = g.input('x', [B, T, K]), dy = g.input('dy', [B, T, N]), ids = g.input('ids', [6], 'i32');
    const w = g.param('w', [N, K], dtype), table = g.param('table', [V, K], dtype);
    const outs = [F.matmul(x, w, { transB: true }), F.matmul(dy, w), F.embedding(table, ids), F.dequantize(w)];
    for (const o of outs) g.markOutput(o);
    return { g, outs };
  };
  try {
    for (const [d, dtype] of DTYPES.entries()) {
      const r = rng(3000 + d);
      const w = randomCompact(dtype, N * K, r), table = randomCompact(dtype, V * K, r);
      const x = fill(B * T * K, r), dy = fill(B * T * N, r), ids = Int32Array.from([3, 0, 10, 11, -2, 3]);
      const results: Float32Array[][] = [];
      for (const [kind, wData, tData] of [[dtype, w.bytes, table.bytes], ['f32', Float32Array.from(w.values), Float32Array.from(table.values)]] as const) {
        const { g, outs } = build(kind);
        const s = await Session.create(g, backend);
        try {
          s.set('x', x); s.set('dy', dy); s.set('ids', ids); s.set('w', wData); s.set('table', tData);
          await s.run();
          results.push((await s.getMany(outs)) as Float32Array[]);
          // A compact param reads back as the bytes written.
          if (kind !== 'f32') assert.equal(await s.get('w'), w.bytes, `${dtype}: read of the weight`);
        } finally {
          s.dispose();
        }
      }
      const [compact, plain] = results as [Float32Array[], Float32Array[]];
      ['x·Wᵀ', 'dy·W', 'embedding', 'dequantize'].forEach((name, i) => assert.equal(compact[i], plain[i], `${dtype} ${name}`));
      sameValues(compact[3]!, w.values, `${dtype} dequantize`);
    }
  } finally {
    backend.dispose();
  }
});

test('a q type whose rows are not whole blocks is refused before any work', async () => {
  const rt = await WasmRuntime.create({ threads: 1 });
  try {
    const p = rt.heap.alloc(1024);
    assert.throws(
      () => matmul(rt, { a: p, b: p, c: p, batch: 1, M: 2, N: 3, K: 48, transB: true, strideA: 0, strideB: 0, strideC: 0, bType: 'q8_0' }),
      /q8_0 tensor \[3, 48\].*multiple of 32/,
    );
    assert.throws(() => embedding(rt, 'q4_0', p, p, p, 1, 4, 40), /embedding: a q4_0 tensor \[4, 40\]/);
    rt.heap.release(p);
  } finally {
    rt.dispose();
  }
});

test.run();
