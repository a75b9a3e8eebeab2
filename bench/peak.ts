/**
 * The arithmetic ceilings a training benchmark runs under, measured in the same run:
 * - wasm: the f32x4 fused multiply-add rate of a register-only loop shaped like the matmul kernel's 6×8 tile
 *   (12 independent accumulators, the B row and A splats loaded from L1), on each of `threads` workers at
 *   once. No matmul in WebAssembly SIMD (128-bit vectors) can beat it.
 * - PyTorch: torch.mm on 2048² float32 with the thread count and environment the PyTorch baseline runs with
 *   (its BLAS picks 256- or 512-bit kernels where the CPU has them).
 * Their ratio bounds how far a compute-bound wasm step can get ahead of PyTorch's on this CPU.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import asc from 'assemblyscript/asc';
import type { ExecutionPlan } from '../src/backends/backend.js';

const TILE_SOURCE = `
export function fmaTile(n: i32, pa: usize, pb: usize): f32 {
  let c00 = f32x4.splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  let c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (let i = 0; i < n; i++) {
    const o = <usize>(i & 63);
    const b0 = v128.load(pb + o * 32), b1 = v128.load(pb + o * 32, 16);
    const p = pa + o * 24;
    let a = v128.load32_splat(p);
    c00 = f32x4.relaxed_madd(a, b0, c00); c01 = f32x4.relaxed_madd(a, b1, c01);
    a = v128.load32_splat(p, 4);
    c10 = f32x4.relaxed_madd(a, b0, c10); c11 = f32x4.relaxed_madd(a, b1, c11);
    a = v128.load32_splat(p, 8);
    c20 = f32x4.relaxed_madd(a, b0, c20); c21 = f32x4.relaxed_madd(a, b1, c21);
    a = v128.load32_splat(p, 12);
    c30 = f32x4.relaxed_madd(a, b0, c30); c31 = f32x4.relaxed_madd(a, b1, c31);
    a = v128.load32_splat(p, 16);
    c40 = f32x4.relaxed_madd(a, b0, c40); c41 = f32x4.relaxed_madd(a, b1, c41);
    a = v128.load32_splat(p, 20);
    c50 = f32x4.relaxed_madd(a, b0, c50); c51 = f32x4.relaxed_madd(a, b1, c51);
  }
  const s = f32x4.add(f32x4.add(f32x4.add(c00, c01), f32x4.add(c10, c11)), f32x4.add(f32x4.add(c20, c21), f32x4.add(c30, c31)));
  return f32x4.extract_lane(f32x4.add(s, f32x4.add(f32x4.add(c40, c41), f32x4.add(c50, c51))), 0);
}`;

// Runs in each worker: warm the function up (V8 tiers wasm up after a few calls), then time one long call.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
WebAssembly.instantiate(workerData.binary).then(({ instance }) => {
  const f = instance.exports.fmaTile;
  for (let i = 0; i < 30; i++) f(200000, 1024, 8192);
  parentPort.postMessage('ready');
  parentPort.once('message', () => {
    const t0 = performance.now();
    f(workerData.iterations, 1024, 8192);
    parentPort.postMessage((performance.now() - t0) / 1e3);
  });
});`;

/** Aggregate GFLOP/s of the wasm FMA tile loop on `threads` workers running together. */
export async function wasmFmaPeak(threads: number, iterations = 100_000_000): Promise<number> {
  const { binary, error } = await asc.compileString(TILE_SOURCE, { optimizeLevel: 3, enable: ['simd', 'relaxed-simd'], runtime: 'stub', initialMemory: 1 });
  if (!binary) throw new Error(`peak probe did not compile: ${error?.message}`);
  const workers = Array.from({ length: threads }, () => new Worker(WORKER_SOURCE, { eval: true, workerData: { binary, iterations } }));
  try {
    await Promise.all(workers.map((w) => new Promise((res) => w.once('message', res))));
    const times = await Promise.all(workers.map((w) => new Promise<number>((res) => { w.once('message', res); w.postMessage('go'); })));
    // 12 fused multiply-adds of 4 lanes per iteration, 2 FLOP each.
    return times.reduce((s, t) => s + (iterations * 96) / t / 1e9, 0);
  } finally {
    for (const w of workers) await w.terminate();
  }
}

const TORCH_SGEMM = `
import json, time, torch
torch.set_num_threads(THREADS)
n = 2048
a, b = torch.rand(n, n), torch.rand(n, n)
a @ b
best = 0.0
for _ in range(3):
    t0 = time.perf_counter(); a @ b; a @ b
    best = max(best, 2 * 2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
print(json.dumps(best))
`;

/** torch.mm GFLOP/s as the PyTorch baseline sees it, or undefined without /usr/bin/python3 and torch. */
export function torchSgemm(threads: number): number | undefined {
  if (!existsSync('/usr/bin/python3')) return undefined;
  const r = spawnSync('/usr/bin/python3', ['-c', TORCH_SGEMM.replace('THREADS', String(threads))], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(threads) } });
  return r.status === 0 ? Number(r.stdout.trim().split('\n').pop()) : undefined;
}

/** Floating-point operations of a plan's matmul steps (2·M·N·K per product; attention and elementwise ops left out). */
export function planMatmulFlops(plan: ExecutionPlan): number {
  let flops = 0;
  for (const s of plan.steps) {
    if (s.op !== 'matmul') continue;
    const a = plan.values[s.inputs[0]!]!.shape, out = plan.values[s.outputs[0]!]!.shape;
    const k = s.attrs.transA ? a[a.length - 2]! : a[a.length - 1]!;
    flops += 2 * k * out.reduce((p, d) => p * d, 1);
  }
  return flops;
}
