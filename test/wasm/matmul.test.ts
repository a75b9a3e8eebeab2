// The wasm matmul against a float64 reference: odd shapes, every transpose pair, batches and broadcasts,
// in each SIMD build this runtime validates, and thread counts that must agree bit for bit.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hasRelaxedSimd } from '../../src/backends/wasm/loader.js';
import { matmul } from '../../src/backends/wasm/matmul.js';
import { WasmRuntime } from '../../src/backends/wasm/runtime.js';

interface Case {
  batchA: number; // 0: A is rank 2, shared by the batch
  batchB: number;
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  accumulate?: boolean;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
}

function fill(n: number, r: () => number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = r();
  return x;
}

/** C in float64 and, per element, Σ|a·b| (the scale its rounding error is measured against). */
function reference(c: Case, a: Float32Array, b: Float32Array, c0: Float32Array): { ref: Float64Array; mag: Float64Array } {
  const { M, N, K } = c;
  const batch = Math.max(c.batchA, c.batchB, 1);
  const ref = new Float64Array(batch * M * N);
  const mag = new Float64Array(batch * M * N);
  for (let t = 0; t < batch; t++) {
    const ao = c.batchA ? t * M * K : 0;
    const bo = c.batchB ? t * K * N : 0;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = c.accumulate ? c0[t * M * N + i * N + j] : 0;
        let m = Math.abs(s);
        for (let k = 0; k < K; k++) {
          const av = a[ao + (c.transA ? k * M + i : i * K + k)];
          const bv = b[bo + (c.transB ? j * K + k : k * N + j)];
          s += av * bv;
          m += Math.abs(av * bv);
        }
        ref[t * M * N + i * N + j] = s;
        mag[t * M * N + i * N + j] = m;
      }
    }
  }
  return { ref, mag };
}

function run(rt: WasmRuntime, c: Case, a: Float32Array, b: Float32Array, c0: Float32Array, threads?: number): Float32Array {
  const batch = Math.max(c.batchA, c.batchB, 1);
  const pa = rt.heap.alloc(a.length * 4);
  const pb = rt.heap.alloc(b.length * 4);
  const pc = rt.heap.alloc(c0.length * 4);
  rt.f32(pa, a.length).set(a);
  rt.f32(pb, b.length).set(b);
  rt.f32(pc, c0.length).set(c0);
  matmul(rt, {
    a: pa, b: pb, c: pc, batch, M: c.M, N: c.N, K: c.K, transA: c.transA, transB: c.transB,
    accumulate: c.accumulate, strideA: c.batchA ? c.M * c.K : 0, strideB: c.batchB ? c.K * c.N : 0,
    strideC: c.M * c.N, threads,
  });
  const out = rt.f32(pc, c0.length).slice();
  rt.heap.release(pa);
  rt.heap.release(pb);
  rt.heap.release(pc);
  return out;
}

function inputs(c: Case, seed: number): { a: Float32Array; b: Float32Array; c0: Float32Array } {
  const r = rng(seed);
  const batch = Math.max(c.batchA, c.batchB, 1);
  return {
    a: fill(Math.max(c.batchA, 1) * c.M * c.K, r),
    b: fill(Math.max(c.batchB, 1) * c.K * c.N, r),
    c0: fill(batch * c.M * c.N, r),
  };
}

// f32 accumulation of K products: error grows like √K·u·Σ|a·b| for random signs (u = 2^-24 ≈ 6e-8);
// 1e-6·√K·Σ|a·b| leaves a wide margin for that and still catches any wrong index (errors of order 1).
function check(c: Case, got: Float32Array, ref: Float64Array, mag: Float64Array, label: string): void {
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    const tol = 1e-6 * Math.sqrt(Math.max(c.K, 1)) * Math.max(mag[i], 1e-30);
    const err = Math.abs(got[i] - ref[i]);
    if (!(err <= tol)) assert.unreachable(`${label}: element ${i} is ${got[i]}, expected ${ref[i]} (tolerance ${tol})`);
    worst = Math.max(worst, err / tol);
  }
  assert.ok(worst <= 1, label);
}

const SIZES = [1, 2, 3, 5, 7, 8, 9, 13, 17, 31, 33, 47, 64, 65, 70];
const cases: Case[] = [];
{
  const r = rng(7);
  const pick = () => SIZES[Math.floor(((r() + 1) / 2) * SIZES.length) % SIZES.length];
  for (let n = 0; n < 48; n++) {
    const transA = (n & 1) === 1;
    const transB = (n & 2) === 2;
    const kind = (n >> 2) % 4; // plain, batched, A shared, B shared
    const batch = 1 + (n % 3);
    cases.push({
      M: pick(), N: pick(), K: pick(), transA, transB,
      batchA: kind === 0 ? 0 : kind === 2 ? 0 : batch,
      batchB: kind === 0 ? 0 : kind === 3 ? 0 : batch,
      accumulate: n % 5 === 4,
    });
  }
  // K beyond one depth block (256) and N beyond one column block (1024), and zero-size depth.
  cases.push({ batchA: 0, batchB: 0, M: 13, N: 1031, K: 600, transA: false, transB: true });
  cases.push({ batchA: 2, batchB: 2, M: 67, N: 19, K: 517, transA: true, transB: false, accumulate: true });
  // At most 4 rows take the matrix-vector path, in every transpose combination.
  cases.push({ batchA: 0, batchB: 0, M: 1, N: 1031, K: 600, transA: false, transB: true });
  cases.push({ batchA: 0, batchB: 0, M: 3, N: 77, K: 301, transA: true, transB: false, accumulate: true });
  cases.push({ batchA: 2, batchB: 2, M: 4, N: 9, K: 70, transA: true, transB: true });
  cases.push({ batchA: 0, batchB: 3, M: 2, N: 1100, K: 33, transA: false, transB: false });
  cases.push({ batchA: 0, batchB: 0, M: 5, N: 6, K: 0, transA: false, transB: false });
  cases.push({ batchA: 0, batchB: 0, M: 5, N: 6, K: 0, transA: false, transB: false, accumulate: true });
}

// Large enough to pass the parallel threshold, split along M, along N, and over batch items.
const parallelCases: Case[] = [
  { batchA: 0, batchB: 0, M: 131, N: 97, K: 133, transA: false, transB: false },
  { batchA: 0, batchB: 0, M: 7, N: 1030, K: 300, transA: true, transB: true },
  { batchA: 3, batchB: 3, M: 61, N: 67, K: 190, transA: false, transB: true, accumulate: true },
  { batchA: 4, batchB: 0, M: 50, N: 70, K: 129, transA: true, transB: false },
  { batchA: 0, batchB: 5, M: 45, N: 88, K: 101, transA: false, transB: false },
  { batchA: 0, batchB: 0, M: 2, N: 3001, K: 400, transA: false, transB: true },
];

const describe = (c: Case) =>
  `${c.batchA}/${c.batchB}×${c.M}×${c.N}×${c.K}${c.transA ? ' tA' : ''}${c.transB ? ' tB' : ''}${c.accumulate ? ' +=' : ''}`;

const flavours = hasRelaxedSimd() ? (['simd', 'relaxed'] as const) : (['simd'] as const);

for (const simd of flavours) {
  test(`${simd}: matmul matches float64 on odd shapes, transposes, batches, broadcasts`, async () => {
    const rt = await WasmRuntime.create({ simd, threads: 1 });
    try {
      assert.is(rt.flavour, simd);
      cases.forEach((c, n) => {
        const { a, b, c0 } = inputs(c, 100 + n);
        const { ref, mag } = reference(c, a, b, c0);
        check(c, run(rt, c, a, b, c0), ref, mag, `${simd} ${describe(c)}`);
      });
    } finally {
      rt.dispose();
    }
  });

  test(`${simd}: 2 threads give the single-thread result exactly`, async () => {
    const one = await WasmRuntime.create({ simd, threads: 1 });
    const two = await WasmRuntime.create({ simd, threads: 2 });
    try {
      assert.is(two.threads, 2);
      assert.ok(two.shared);
      parallelCases.forEach((c, n) => {
        const { a, b, c0 } = inputs(c, 500 + n);
        const { ref, mag } = reference(c, a, b, c0);
        const single = run(one, c, a, b, c0);
        check(c, single, ref, mag, `${simd} ${describe(c)}`);
        assert.equal(run(two, c, a, b, c0), single, `${simd} 2 threads ${describe(c)}`);
        assert.equal(run(two, c, a, b, c0, 1), single, `${simd} shared build, 1 thread ${describe(c)}`);
      });
    } finally {
      one.dispose();
      two.dispose();
    }
  });
}

test('relaxed build is chosen only where relaxed SIMD validates', async () => {
  const rt = await WasmRuntime.create({ threads: 1 });
  try {
    assert.is(rt.flavour, hasRelaxedSimd() ? 'relaxed' : 'simd');
  } finally {
    rt.dispose();
  }
});

test.run();
