/**
 * WebGPU matmul throughput (GFLOP/s, square n³) through the backend as the scheduler uses it: a plan
 * with one matmul, loaded once, run repeatedly. Two timings:
 * - wall: runs submitted back to back, ended by a one-value readback (mapAsync waits for the queue), so
 *   it includes submission and synchronisation costs;
 * - kernel: GPU timestamps around the matmul's compute pass, where the device has `timestamp-query`.
 * A software adapter (SwiftShader, llvmpipe) measures the CPU, not a GPU: its numbers say only that the
 * path works, and 4096 is skipped there.
 */
import type { Executable } from '../src/backends/backend.js';
import type { WebgpuExecutable } from '../src/backends/webgpu/executable.js';
import { createWebgpuBackend } from '../src/backends/webgpu/index.js';
import * as F from '../src/graph/api.js';
import { Graph } from '../src/graph/graph.js';
import { planGraph } from '../src/scheduler/plan.js';

export interface WebgpuBenchOptions {
  readonly json: boolean;
  readonly sizes?: number[];
}

interface Result {
  suite: 'webgpu';
  adapter: string;
  software: boolean;
  size: number;
  reps: number;
  wallMs: number;
  gflops: number;
  kernelMs: number | null;
  kernelGflops: number | null;
}

const MIN_SECONDS = 0.5;
const MAX_REPS = 200;

function random(n: number, seed: number): Float32Array {
  const x = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = s / 2 ** 31 - 1;
  }
  return x;
}

export async function benchWebgpu(opts: WebgpuBenchOptions): Promise<void> {
  const backend = await createWebgpuBackend();
  const ctx = backend.context;
  const adapter = ctx.describe();
  const software = ctx.adapter.software;
  const sizes = opts.sizes ?? (software ? [256, 512, 1024, 2048] : [256, 512, 1024, 2048, 4096]);
  if (!opts.json) {
    console.log(adapter);
    console.log(`timestamp-query: ${ctx.timestamps ? 'yes' : 'no'}${software ? '; software adapter: CPU speed, not GPU speed' : ''}`);
    console.log('     n   reps    wall ms  wall GFLOP/s   kernel ms  kernel GFLOP/s');
  }
  try {
    for (const n of sizes) {
      const g = new Graph();
      const a = g.input('a', [n, n]), b = g.input('b', [n, n]);
      const c = F.matmul(a, b);
      g.markOutput(c);
      const exe: Executable = await backend.load(planGraph(g));
      try {
        exe.write(a.id, random(n * n, 1));
        exe.write(b.id, random(n * n, 2));
        const flops = 2 * n ** 3;
        // Warm-up (first-use costs stay out of the timing); its duration sizes the timed loop to about
        // MIN_SECONDS.
        let t0 = performance.now();
        await exe.run();
        await exe.read([a.id]);
        const single = Math.max((performance.now() - t0) / 1e3, 1e-4);
        const reps = Math.max(1, Math.min(MAX_REPS, Math.round(MIN_SECONDS / single)));
        t0 = performance.now();
        for (let r = 0; r < reps; r++) await exe.run();
        await exe.read([a.id]);
        const wall = (performance.now() - t0) / 1e3 / reps;
        let kernelMs: number | null = null;
        const timed = await (exe as WebgpuExecutable).runTimed();
        if (timed && timed.length) {
          // Best of a few: timestamps are noisy on a shared machine.
          kernelMs = timed[0]!.ms;
          for (let r = 1; r < Math.min(3, reps); r++) kernelMs = Math.min(kernelMs, (await (exe as WebgpuExecutable).runTimed())![0]!.ms);
          if (!(kernelMs > 0)) kernelMs = null;
        }
        const res: Result = {
          suite: 'webgpu', adapter, software, size: n, reps,
          wallMs: wall * 1e3, gflops: flops / wall / 1e9,
          kernelMs, kernelGflops: kernelMs ? flops / (kernelMs / 1e3) / 1e9 : null,
        };
        if (opts.json) console.log(JSON.stringify(res));
        else {
          console.log(`${String(n).padStart(6)} ${String(reps).padStart(6)} ${res.wallMs.toFixed(2).padStart(10)} ${res.gflops.toFixed(1).padStart(13)}`
            + ` ${kernelMs === null ? '          -' : kernelMs.toFixed(2).padStart(11)} ${res.kernelGflops === null ? '              -' : res.kernelGflops.toFixed(1).padStart(15)}`);
        }
      } finally {
        exe.dispose();
      }
    }
  } finally {
    backend.dispose();
  }
}

const invokedDirectly = typeof process !== 'undefined' && process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'));
if (invokedDirectly) await benchWebgpu({ json: process.argv.includes('--json') });
