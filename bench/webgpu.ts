/**
 * WebGPU benchmarks, through the backend as the scheduler uses it.
 *
 * 1. Matmul throughput (GFLOP/s, square n³): a plan with one matmul, loaded once, run repeatedly: A·B
 *    with both f32, then a linear layer's A·Wᵀ with the weight W stored f32, f16, q8_0 and q4_0 (read
 *    compact by the kernel, dequantised while its tiles load). Two timings:
 *    - wall: runs submitted back to back, ended by a one-value readback (mapAsync waits for the queue), so
 *      it includes submission and synchronisation costs;
 *    - kernel: GPU timestamps around the matmul's compute pass, where the device has `timestamp-query`.
 *    With the card's f32 peak (known for a few cards, or `--peak-tflops=N`) each is also a fraction of it.
 * 2. A LoRA training step (r=8 on all seven projections): wall time per step, and the kernels of one
 *    profiled step (GPU timestamps) as a share of it; the rest is submission, readback and host work.
 *    A hardware adapter trains a synthetic dim-1024, 8-layer, 32k-vocabulary Llama on batch 8 × 256
 *    (smaller batches where one buffer cannot hold the plan); a software one stories260K on batch 4 × 64.
 *
 * A software adapter (SwiftShader, llvmpipe) measures the CPU, not a GPU: its numbers say only that the
 * path works, and 4096 is skipped there.
 */
import type { Executable } from '../src/backends/backend.js';
import { createWebgpuBackend } from '../src/backends/webgpu/index.js';
import type { LlamaConfig } from '../src/formats/checkpoint.js';
import * as F from '../src/graph/api.js';
import { Graph } from '../src/graph/graph.js';
import { isCompact, type DType } from '../src/graph/types.js';
import { quantize } from '../src/quant/index.js';
import { planGraph } from '../src/scheduler/plan.js';
import { formatProfile } from '../src/scheduler/profile.js';
import { SYNTH_512, loadStories, syntheticCheckpoint } from './models.js';
import { loraRun } from './train.js';

export interface WebgpuBenchOptions {
  readonly json: boolean;
  readonly sizes?: number[];
  /** The card's f32 peak in TFLOP/s; default: from the adapter's name where known, or `--peak-tflops=N`. */
  readonly peakTflops?: number;
}

interface MatmulResult {
  suite: 'webgpu';
  bench: 'matmul';
  /** 'A·B', or 'A·Wᵀ' with the weight stored as `dtype`. */
  product: 'A·B' | 'A·Wᵀ';
  dtype: DType;
  adapter: string;
  software: boolean;
  size: number;
  reps: number;
  wallMs: number;
  gflops: number;
  kernelMs: number | null;
  kernelGflops: number | null;
  peakTflops: number | null;
  wallOfPeak: number | null;
  kernelOfPeak: number | null;
}

/** Storage types of W in the A·Wᵀ rows. */
const WEIGHT_DTYPES = ['f32', 'f16', 'q8_0', 'q4_0'] as const;

const MIN_SECONDS = 0.5;
const MAX_REPS = 200;

/** f32 (non-tensor) peaks from the vendors' data sheets, matched against the adapter's description. */
const KNOWN_PEAKS: readonly [RegExp, number][] = [
  [/H100.*PCIe/i, 51],
  [/H100|H200/i, 66.9],
];

/** The synthetic model trained on a hardware adapter: large enough that kernels, not submission, should dominate. */
const GPU_TRAIN: LlamaConfig = { ...SYNTH_512, dim: 1024, hiddenDim: 2752, nLayers: 8, nHeads: 16, nKvHeads: 16 };

function random(n: number, seed: number): Float32Array {
  const x = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = s / 2 ** 31 - 1;
  }
  return x;
}

function peakFromArgs(): number | undefined {
  const a = process.argv.find((x) => x.startsWith('--peak-tflops='));
  if (!a) return undefined;
  const v = Number(a.split('=')[1]);
  if (!(v > 0)) throw new Error(`--peak-tflops wants a positive number of TFLOP/s (got ${a.split('=')[1]})`);
  return v;
}

type Timing = Pick<MatmulResult, 'reps' | 'wallMs' | 'gflops' | 'kernelMs' | 'kernelGflops' | 'peakTflops' | 'wallOfPeak' | 'kernelOfPeak'>;

/** Time a loaded one-matmul plan of `flops`; `probe` is a value to read back (the read waits for the queue). */
async function timeMatmul(exe: Executable, probe: number, flops: number, peak: number | undefined): Promise<Timing> {
  // Warm-up (first-use costs stay out of the timing); its duration sizes the timed loop to about
  // MIN_SECONDS.
  let t0 = performance.now();
  await exe.run();
  await exe.read([probe]);
  const single = Math.max((performance.now() - t0) / 1e3, 1e-4);
  const reps = Math.max(1, Math.min(MAX_REPS, Math.round(MIN_SECONDS / single)));
  t0 = performance.now();
  for (let r = 0; r < reps; r++) await exe.run();
  await exe.read([probe]);
  const wall = (performance.now() - t0) / 1e3 / reps;
  // Best of a few timed runs: timestamps are noisy on a shared machine.
  let kernelMs: number | null = null;
  for (let r = 0; r < 3; r++) {
    exe.beginProfile();
    await exe.run();
    const t = await exe.endProfile();
    if (!t || !t.length) break;
    const ms = t.reduce((x, k) => x + k.ms, 0);
    if (ms > 0) kernelMs = kernelMs === null ? ms : Math.min(kernelMs, ms);
  }
  const gflops = flops / wall / 1e9;
  const kernelGflops = kernelMs ? flops / (kernelMs / 1e3) / 1e9 : null;
  return {
    reps, wallMs: wall * 1e3, gflops, kernelMs, kernelGflops,
    peakTflops: peak ?? null,
    wallOfPeak: peak ? gflops / (peak * 1e3) : null,
    kernelOfPeak: peak && kernelGflops ? kernelGflops / (peak * 1e3) : null,
  };
}

export async function benchWebgpu(opts: WebgpuBenchOptions): Promise<void> {
  const backend = await createWebgpuBackend();
  const ctx = backend.context;
  const adapter = ctx.describe();
  const software = ctx.adapter.software;
  const sizes = opts.sizes ?? (software ? [256, 512, 1024, 2048] : [256, 512, 1024, 2048, 4096]);
  const peak = opts.peakTflops ?? peakFromArgs() ?? (software ? undefined : KNOWN_PEAKS.find(([re]) => re.test(adapter))?.[1]);
  if (!opts.json) {
    console.log(adapter);
    console.log(`timestamp-query: ${ctx.timestamps ? 'yes' : 'no'}${software ? '; software adapter: CPU speed, not GPU speed' : ''}`);
    console.log(peak ? `f32 peak: ${peak} TFLOP/s` : 'f32 peak: unknown (pass --peak-tflops=N for fractions of it)');
    console.log(`product         n   reps    wall ms  wall GFLOP/s   kernel ms  kernel GFLOP/s${peak ? '  wall/peak  kernel/peak' : ''}`);
  }
  try {
    const products = [
      { product: 'A·B' as const, dtype: 'f32' as DType },
      ...WEIGHT_DTYPES.map((dtype) => ({ product: 'A·Wᵀ' as const, dtype: dtype as DType })),
    ];
    for (const { product, dtype } of products) {
      for (const n of sizes) {
        const g = new Graph();
        const a = g.input('a', [n, n]);
        const b = product === 'A·B' ? g.input('b', [n, n]) : g.param('w', [n, n], dtype);
        const c = F.matmul(a, b, { transB: product === 'A·Wᵀ' });
        g.markOutput(c);
        const exe: Executable = await backend.load(planGraph(g));
        try {
          exe.write(a.id, random(n * n, 1));
          exe.write(b.id, isCompact(dtype) ? quantize(dtype, random(n * n, 2)) : random(n * n, 2));
          const res = await timeMatmul(exe, a.id, 2 * n ** 3, peak);
          const row: MatmulResult = { suite: 'webgpu', bench: 'matmul', product, dtype, adapter, software, size: n, ...res };
          if (opts.json) console.log(JSON.stringify(row));
          else {
            const pct = (x: number | null): string => (x === null ? '-' : `${(100 * x).toFixed(1)}%`);
            console.log(`${`${product} ${dtype}`.padEnd(10)} ${String(n).padStart(6)} ${String(row.reps).padStart(6)} ${row.wallMs.toFixed(2).padStart(10)} ${row.gflops.toFixed(1).padStart(13)}`
              + ` ${row.kernelMs === null ? '          -' : row.kernelMs.toFixed(2).padStart(11)} ${row.kernelGflops === null ? '              -' : row.kernelGflops.toFixed(1).padStart(15)}`
              + (peak ? ` ${pct(row.wallOfPeak).padStart(10)} ${pct(row.kernelOfPeak).padStart(12)}` : ''));
          }
        } finally {
          exe.dispose();
        }
      }
    }

    // The training step. On a GPU the batch halves while the plan outgrows the adapter's largest buffer
    // (batch 8 × 256 needs about 2.4 GiB in one arena).
    const [name, ckpt, batches, seq, steps] = software
      ? ['stories260K', await loadStories(), [4], 64, 4] as const
      : [`synthetic dim${GPU_TRAIN.dim}×${GPU_TRAIN.nLayers}L`, syntheticCheckpoint(GPU_TRAIN), [8, 4, 2], 256, 8] as const;
    let batch: number = batches[0]!;
    let r: Awaited<ReturnType<typeof loraRun>> | undefined;
    for (const b of batches) {
      batch = b;
      try {
        r = await loraRun(ckpt, backend, batch, seq, steps, true);
        break;
      } catch (e) {
        if (!/needs an arena of/.test((e as Error).message) || b === batches[batches.length - 1]) throw e;
        if (!opts.json) console.log(`batch ${b} × ${seq}: ${(e as Error).message}; trying batch ${b / 2}`);
      }
    }
    if (!r) throw new Error('no training-step measurement');
    const p = r.profile;
    const share = p && p.wallMs ? p.kernelMs / p.wallMs : null;
    if (opts.json) {
      console.log(JSON.stringify({
        suite: 'webgpu', bench: 'lora-train-step', adapter, software, model: name, batch, seq,
        stepMs: r.stepSeconds * 1e3, tokensPerSecond: r.tokensPerSecond,
        kernelMs: p?.kernelMs ?? null, kernels: p?.kernels.length ?? null, kernelShare: share, byOp: p?.byOp ?? null,
      }));
    } else {
      console.log(`LoRA r=8 training step, ${name}, batch ${batch} × ${seq}: ${(r.stepSeconds * 1e3).toFixed(2)} ms/step, ${r.tokensPerSecond.toFixed(0)} tokens/s`);
      console.log(p ? formatProfile(p, 'kernels of one step') : 'kernels of one step: not timed (no timestamp-query)');
    }
  } finally {
    backend.dispose();
  }
}
