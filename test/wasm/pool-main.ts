// Run under Deno and Bun by deno.test.ts and bun.test.ts: the worker pool there uses Web Workers from a
// Blob URL, the path a browser takes. Prints one line, `ok <backend description>`, or throws.
import { matmul } from '../../src/backends/wasm/matmul.js';
import { WasmRuntime } from '../../src/backends/wasm/runtime.js';

const M = 67, N = 301, K = 129;
async function product(threads: number): Promise<{ out: Float32Array; describe: string }> {
  const rt = await WasmRuntime.create({ threads });
  try {
    const a = rt.heap.alloc(M * K * 4), b = rt.heap.alloc(K * N * 4), c = rt.heap.alloc(M * N * 4);
    rt.f32(a, M * K).forEach((_, i, x) => (x[i] = Math.sin(i)));
    rt.f32(b, K * N).forEach((_, i, x) => (x[i] = Math.cos(i)));
    matmul(rt, { a, b, c, batch: 1, M, N, K, transB: false, strideA: 0, strideB: 0, strideC: 0 });
    return { out: rt.f32(c, M * N).slice(), describe: rt.describe() };
  } finally {
    rt.dispose();
  }
}

const one = await product(1);
const two = await product(2);
if (!two.describe.includes('2 threads')) throw new Error(`expected 2 threads, got ${two.describe}`);
two.out.forEach((v, i) => {
  if (v !== one.out[i]) throw new Error(`element ${i}: ${v} with 2 threads, ${one.out[i]} with 1`);
});
let ref = 0;
for (let k = 0; k < K; k++) ref += Math.sin(k) * Math.cos(k * N);
if (Math.abs(one.out[0]! - ref) > 1e-4) throw new Error(`C[0,0] = ${one.out[0]}, expected ${ref}`);
console.log(`ok ${two.describe}`);
