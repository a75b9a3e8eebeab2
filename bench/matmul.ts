/**
 * Matmul throughput (GFLOP/s, square n³): a plain TypeScript loop, the wasm kernel on one thread and on
 * all threads, and native single-thread SGEMM (OpenBLAS through numpy) measured in the same run, so
 * the ratio wasm/native compares like with like on whatever machine this runs on. Then the products of
 * a frozen linear layer at LLM shapes with the weight f32 and compact (f16, bf16, q8_0, q4_0), in the
 * same run, with each compact type's rate as a ratio of f32's.
 */
import { spawnSync } from 'node:child_process';
import { matmul } from '../src/backends/wasm/matmul.js';
import { WasmRuntime } from '../src/backends/wasm/runtime.js';
import { compactBytes, type CompactDType } from '../src/quant/types.js';

export interface BenchOptions {
  readonly json: boolean;
  readonly sizes?: number[];
}

interface Result {
  backend: 'js' | 'wasm' | 'native' | 'native-128bit';
  threads: number;
  size: number;
  gflops: number;
}

const DEFAULT_SIZES = [256, 512, 1024, 2048];
const MIN_SECONDS = 0.5;
const ROUNDS = 3;
/** The js loop is skipped at a size whose timing would take longer than this. */
const JS_BUDGET_SECONDS = 20;

/** Best of ROUNDS rounds, each repeating `fn` until MIN_SECONDS have passed. */
function gflops(n: number, fn: () => void): number {
  const flops = 2 * n ** 3;
  let best = 0;
  for (let r = 0; r < ROUNDS; r++) {
    let reps = 0;
    const t0 = performance.now();
    let dt = 0;
    do {
      fn();
      reps++;
      dt = (performance.now() - t0) / 1e3;
    } while (dt < MIN_SECONDS);
    best = Math.max(best, (flops * reps) / dt / 1e9);
  }
  return best;
}

function random(n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.random() * 2 - 1;
  return x;
}

/** The reference baseline: row-major, i-k-j order so the inner loop walks B and C contiguously. */
function jsMatmul(a: Float32Array, b: Float32Array, c: Float32Array, n: number): void {
  c.fill(0);
  for (let i = 0; i < n; i++) {
    const ci = i * n;
    for (let k = 0; k < n; k++) {
      const aik = a[ci + k];
      const bk = k * n;
      for (let j = 0; j < n; j++) c[ci + j] += aik * b[bk + j];
    }
  }
}

const NATIVE_SCRIPT = `
import json, sys, time
import numpy as np
for n in json.loads(sys.argv[1]):
    a = np.random.rand(n, n).astype(np.float32)
    b = np.random.rand(n, n).astype(np.float32)
    best = 0.0
    for _ in range(${ROUNDS}):
        reps, t0 = 0, time.perf_counter()
        while True:
            a @ b
            reps += 1
            dt = time.perf_counter() - t0
            if dt >= ${MIN_SECONDS}:
                break
        best = max(best, 2 * n ** 3 * reps / dt / 1e9)
    print(json.dumps({"size": n, "gflops": best}), flush=True)
`;

/**
 * Native single-thread SGEMM, or undefined when python3 with numpy is not available. `coretype` pins
 * OpenBLAS to one kernel family: NEHALEM is its 128-bit SSE kernel, the vector width WebAssembly SIMD has,
 * for a like-for-like comparison on CPUs whose best kernel uses 256- or 512-bit vectors.
 */
function nativeSgemm(sizes: number[], coretype?: string): Map<number, number> | undefined {
  const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: '1' };
  // Tuning overrides from the environment would make the comparison something other than stock OpenBLAS.
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  if (coretype) env.OPENBLAS_CORETYPE = coretype;
  const probe = spawnSync('python3', ['-c', 'import numpy'], { env, stdio: 'ignore' });
  if (probe.status !== 0) return undefined;
  const r = spawnSync('python3', ['-c', NATIVE_SCRIPT, JSON.stringify(sizes)], { env, encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const out = new Map<number, number>();
  for (const line of r.stdout.split('\n')) {
    if (!line.trim()) continue;
    const { size, gflops: g } = JSON.parse(line) as { size: number; gflops: number };
    out.set(size, g);
  }
  return out;
}

export async function benchMatmul(opts: BenchOptions): Promise<void> {
  const sizes = opts.sizes ?? DEFAULT_SIZES;
  const results: Result[] = [];
  const say = (line: string) => {
    if (!opts.json) console.log(line);
  };
  const emit = (r: Result) => {
    results.push(r);
    if (opts.json) console.log(JSON.stringify(r));
  };

  const rt = await WasmRuntime.create();
  say(`matmul, n×n·n×n f32, GFLOP/s (best of ${ROUNDS}, each ≥ ${MIN_SECONDS} s); ${rt.describe()}`);
  try {
    let jsRate = 0;
    for (const n of sizes) {
      const a = random(n * n);
      const b = random(n * n);
      const c = new Float32Array(n * n);
      // Timing takes ROUNDS × max(MIN_SECONDS, one call); estimate one call from the last size measured.
      const estimate = jsRate > 0 ? (ROUNDS * 2 * n ** 3) / (jsRate * 1e9) : 0;
      if (estimate > JS_BUDGET_SECONDS) {
        const note = `js ${n}: skipped (about ${Math.round(estimate)} s at ${jsRate.toFixed(2)} GFLOP/s)`;
        if (opts.json) console.error(note);
        else say(`  ${note}`);
      } else {
        jsRate = gflops(n, () => jsMatmul(a, b, c, n));
        emit({ backend: 'js', threads: 1, size: n, gflops: jsRate });
      }

      const pa = rt.heap.alloc(n * n * 4);
      const pb = rt.heap.alloc(n * n * 4);
      const pc = rt.heap.alloc(n * n * 4);
      rt.f32(pa, n * n).set(a);
      rt.f32(pb, n * n).set(b);
      const threadCounts = rt.threads > 1 ? [1, rt.threads] : [1];
      for (const threads of threadCounts) {
        const g = gflops(n, () =>
          matmul(rt, { a: pa, b: pb, c: pc, batch: 1, M: n, N: n, K: n, strideA: 0, strideB: 0, strideC: 0, threads }),
        );
        emit({ backend: 'wasm', threads, size: n, gflops: g });
      }
      rt.heap.release(pa);
      rt.heap.release(pb);
      rt.heap.release(pc);
    }
  } finally {
    rt.dispose();
  }

  const native = nativeSgemm(sizes);
  if (native) for (const [size, g] of native) emit({ backend: 'native', threads: 1, size, gflops: g });
  else say('native: python3 with numpy not found, skipped');
  const native128 = native && nativeSgemm(sizes, 'NEHALEM');
  if (native128) for (const [size, g] of native128) emit({ backend: 'native-128bit', threads: 1, size, gflops: g });

  if (!opts.json) {
    const get = (backend: Result['backend'], threads: number, size: number) =>
      results.find((r) => r.backend === backend && r.threads === threads && r.size === size)?.gflops;
    const fmt = (x: number | undefined, digits = 1) => (x === undefined ? '—' : x.toFixed(digits)).padStart(9);
    const all = rt.threads;
    const head = ['size', 'js', 'wasm×1', ...(all > 1 ? [`wasm×${all}`] : []), 'native×1', 'wasm/nat', 'nat128×1', 'w/nat128', ...(all > 1 ? [`×${all}/×1`] : [])];
    console.log(head.map((h) => h.padStart(9)).join(''));
    console.log('  (native×1: OpenBLAS with its best kernel for this CPU; nat128×1: its 128-bit SSE kernel, the width of WebAssembly SIMD)');
    for (const n of sizes) {
      const w1 = get('wasm', 1, n);
      const wa = get('wasm', all, n);
      const nat = get('native', 1, n);
      const row = [
        String(n).padStart(9), fmt(get('js', 1, n)), fmt(w1), ...(all > 1 ? [fmt(wa)] : []), fmt(nat),
        fmt(w1 !== undefined && nat ? w1 / nat : undefined, 2),
        fmt(get('native-128bit', 1, n)),
        fmt(w1 !== undefined && get('native-128bit', 1, n) ? w1 / get('native-128bit', 1, n)! : undefined, 2),
        ...(all > 1 ? [fmt(w1 && wa !== undefined ? wa / w1 : undefined, 2)] : []),
      ];
      console.log(row.join(''));
    }
  }
  await benchCompactMatmul(opts);
}

interface CompactResult {
  bench: 'matmul-compact';
  /** forward: C[M, N] = x[M, K]·Wᵀ; backward: C[M, K] = dy[M, N]·W; W is [N, K] either way. */
  product: 'x·Wᵀ' | 'dy·W';
  M: number;
  N: number;
  K: number;
  dtype: 'f32' | CompactDType;
  threads: number;
  /** Per second of wall time. */
  gflops: number;
  /** Per second of the process's CPU time, all threads. */
  cpuGflops: number;
}

/** A linear layer's weight [N, K] and the rows it meets: Qwen2.5-0.5B's MLP and attention projections. */
const COMPACT_SHAPES: readonly { M: number; N: number; K: number; products: readonly CompactResult['product'][] }[] = [
  { M: 512, N: 4864, K: 896, products: ['x·Wᵀ', 'dy·W'] },
  { M: 512, N: 896, K: 4864, products: ['x·Wᵀ'] },
  { M: 512, N: 896, K: 896, products: ['x·Wᵀ'] },
  // Decoding one token: matrix-vector, bound by reading the weight.
  { M: 1, N: 4864, K: 896, products: ['x·Wᵀ'] },
];
const COMPACT_DTYPES: readonly ('f32' | CompactDType)[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0'];

/**
 * Layout bytes of a random [N, K] weight with magnitudes like a trained layer's (about 0.01–0.5):
 * binary16 / bfloat16 bit patterns with a bounded exponent, or random quants with binary16 scales.
 */
function randomWeight(dtype: 'f32' | CompactDType, n: number): Uint8Array {
  if (dtype === 'f32') return new Uint8Array(random(n).map((x) => x * 0.1).buffer);
  const bytes = new Uint8Array(compactBytes(dtype, n));
  const dv = new DataView(bytes.buffer);
  const bits16 = (expMin: number, expSpan: number, mantBits: number) =>
    ((Math.random() < 0.5 ? 1 : 0) << 15) | ((expMin + Math.floor(Math.random() * expSpan)) << mantBits) | Math.floor(Math.random() * (1 << mantBits));
  if (dtype === 'f16' || dtype === 'bf16') {
    for (let i = 0; i < n; i++) dv.setUint16(2 * i, dtype === 'f16' ? bits16(8, 6, 10) : bits16(120, 6, 7), true);
    return bytes;
  }
  const quants = dtype === 'q8_0' ? n : n / 2;
  for (let i = 0; i < quants; i++) bytes[i] = Math.floor(Math.random() * 256);
  for (let b = 0; b < n / 32; b++) dv.setFloat32(quants + 4 * b, 0.002 + Math.random() * 0.004, true);
  return bytes;
}

/**
 * Best GFLOP/s of each of `fns` over COMPACT_ROUNDS rounds, per second of wall time and per second of
 * this process's CPU time (every thread's, spinning included: robust to other load on a shared machine,
 * where wall time is not). Within a round every function runs for at least COMPACT_SECONDS in turn, so
 * a change in the machine's load hits all of them alike.
 */
function interleaved(flops: number, fns: (() => void)[]): { wall: number; cpu: number }[] {
  const best = fns.map(() => ({ wall: 0, cpu: 0 }));
  for (let r = 0; r < COMPACT_ROUNDS; r++) {
    fns.forEach((fn, i) => {
      let reps = 0, dt = 0;
      const t0 = performance.now(), c0 = process.cpuUsage();
      do {
        fn();
        reps++;
        dt = (performance.now() - t0) / 1e3;
      } while (dt < COMPACT_SECONDS);
      const c = process.cpuUsage(c0);
      const b = best[i]!;
      b.wall = Math.max(b.wall, (flops * reps) / dt / 1e9);
      b.cpu = Math.max(b.cpu, (flops * reps) / ((c.user + c.system) / 1e6) / 1e9);
    });
  }
  return best;
}

const COMPACT_ROUNDS = 5;
const COMPACT_SECONDS = 0.2;

/** x·Wᵀ and dy·W with W f32 or compact, on one thread and all; a table of GFLOP/s and ratios to f32. */
export async function benchCompactMatmul(opts: BenchOptions): Promise<void> {
  const rt = await WasmRuntime.create();
  const results: CompactResult[] = [];
  const threadCounts = rt.threads > 1 ? [1, rt.threads] : [1];
  if (!opts.json) {
    console.log(`\nfrozen linear layer, W [N, K] f32 or compact, GFLOP/s (best of ${COMPACT_ROUNDS} interleaved rounds, each ≥ ${COMPACT_SECONDS} s per type); ${rt.describe()}`);
  }
  try {
    for (const { M, N, K, products } of COMPACT_SHAPES) {
      const weights = COMPACT_DTYPES.map((dtype) => {
        const w = randomWeight(dtype, N * K);
        const p = rt.heap.alloc(w.length);
        new Uint8Array(rt.memory.buffer, p, w.length).set(w);
        return p;
      });
      for (const product of products) {
        const [inner, outer] = product === 'x·Wᵀ' ? [K, N] : [N, K];
        const pa = rt.heap.alloc(M * inner * 4);
        const pc = rt.heap.alloc(M * outer * 4);
        rt.f32(pa, M * inner).set(random(M * inner));
        for (const threads of threadCounts) {
          const calls = COMPACT_DTYPES.map((dtype, i) => () => matmul(rt, {
            a: pa, b: weights[i]!, c: pc, batch: 1, M, N: outer, K: inner, transB: product === 'x·Wᵀ',
            strideA: 0, strideB: 0, strideC: 0, bType: dtype, threads,
          }));
          interleaved(2 * M * N * K, calls).forEach((g, i) => {
            const r: CompactResult = { bench: 'matmul-compact', product, M, N, K, dtype: COMPACT_DTYPES[i]!, threads, gflops: g.wall, cpuGflops: g.cpu };
            results.push(r);
            if (opts.json) console.log(JSON.stringify(r));
          });
        }
        rt.heap.release(pa);
        rt.heap.release(pc);
      }
      for (const p of weights) rt.heap.release(p);
    }
  } finally {
    rt.dispose();
  }
  if (opts.json) return;
  const types = COMPACT_DTYPES.slice(1);
  console.log('  (GFLOP/s per second of wall time; ratios to f32 also per second of CPU time, which other load on the machine disturbs less)');
  const head = ['product', 'M', 'N', 'K', 'threads', ...COMPACT_DTYPES, ...types.map((d) => `${d}/f32`), ...types.map((d) => `cpu ${d}`)];
  console.log(head.map((h, i) => (i === 0 ? h.padEnd(7) : h.padStart(9))).join(''));
  for (const { M, N, K, products } of COMPACT_SHAPES) {
    for (const product of products) {
      for (const threads of threadCounts) {
        const row = (d: string) => results.find((r) => r.product === product && r.M === M && r.N === N && r.K === K && r.threads === threads && r.dtype === d)!;
        const f32 = row('f32');
        console.log([
          product.padEnd(7), ...[M, N, K, threads].map((x) => String(x).padStart(9)),
          ...COMPACT_DTYPES.map((d) => row(d).gflops.toFixed(1).padStart(9)),
          ...types.map((d) => (row(d).gflops / f32.gflops).toFixed(2).padStart(9)),
          ...types.map((d) => (row(d).cpuGflops / f32.cpuGflops).toFixed(2).padStart(9)),
        ].join(''));
      }
    }
  }
}
