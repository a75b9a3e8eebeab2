/**
 * Host side of the matmul kernel (assembly/matmul.ts): C[b] = op(A[b]) · op(B[b]), row-major f32, or
 * with B a compact frozen weight (src/backends/wasm/compact.ts) read in its stored type.
 */
import type { CompactDType } from '../../quant/types.js';
import { checkCompactShape, DTYPE_CODE, scalesOf } from './compact.js';
import { JOB_MATMUL, type WasmRuntime } from './runtime.js';

// Descriptor words, mirrored from assembly/matmul.ts.
const MM_A = 0, MM_B = 1, MM_C = 2, MM_BATCH = 3, MM_M = 4, MM_N = 5, MM_K = 6, MM_FLAGS = 7;
const MM_STRIDE_A = 8, MM_STRIDE_B = 9, MM_STRIDE_C = 10, MM_SCRATCH = 11, MM_SCRATCH_STRIDE = 12, MM_COUNTER = 13;
const MM_B_TYPE = 14, MM_B_SCALES = 15;

/** Below this many flops a matmul runs on one thread: waking workers costs tens of microseconds. */
const PARALLEL_MIN_FLOPS = 1 << 21;

export interface MatmulCall {
  /** Byte offsets of A, B and C in the runtime's memory. */
  readonly a: number;
  readonly b: number;
  readonly c: number;
  readonly batch: number;
  readonly M: number;
  readonly N: number;
  readonly K: number;
  readonly transA?: boolean;
  readonly transB?: boolean;
  /** C += op(A)·op(B) instead of C = op(A)·op(B). */
  readonly accumulate?: boolean;
  /** Elements between consecutive batch items; 0 when the operand is shared by the whole batch. */
  readonly strideA: number;
  readonly strideB: number;
  readonly strideC: number;
  /** Thread cap for this call (default: all the runtime has). */
  readonly threads?: number;
  /**
   * How B is stored (default f32). A compact B is one 2-D matrix shared by the batch (strideB 0), in the
   * layout of its type; the result is bit for bit the f32 product of the dequantised matrix.
   */
  readonly bType?: 'f32' | CompactDType;
}

export function matmul(rt: WasmRuntime, p: MatmulCall): void {
  const bType = p.bType ?? 'f32';
  if (bType !== 'f32') {
    if (p.strideB !== 0 && p.batch > 1) throw new Error(`matmul: a ${bType} B must be one matrix shared by the batch (strideB 0)`);
    const [rows, cols] = p.transB ? [p.N, p.K] : [p.K, p.N];
    checkCompactShape(bType, rows, cols, 'matmul B');
  }
  let { batch, M } = p;
  // A batch over a shared B with untransposed, contiguous A is one taller matmul: better tiles, one pack of B.
  if (batch > 1 && p.strideB === 0 && !p.transA && p.strideA === M * p.K && p.strideC === M * p.N) {
    M *= batch;
    batch = 1;
  }
  if (batch === 0 || M === 0 || p.N === 0) return;
  const { base, stride } = rt.scratch(rt.exports.scratchBytes(JOB_MATMUL, 0));
  const d = rt.descWords();
  d[MM_A] = p.a;
  d[MM_B] = p.b;
  d[MM_C] = p.c;
  d[MM_BATCH] = batch;
  d[MM_M] = M;
  d[MM_N] = p.N;
  d[MM_K] = p.K;
  d[MM_FLAGS] = (p.transA ? 1 : 0) | (p.transB ? 2 : 0) | (p.accumulate ? 4 : 0);
  d[MM_STRIDE_A] = p.strideA;
  d[MM_STRIDE_B] = p.strideB;
  d[MM_STRIDE_C] = p.strideC;
  d[MM_SCRATCH] = base;
  d[MM_SCRATCH_STRIDE] = stride;
  d[MM_COUNTER] = 0;
  d[MM_B_TYPE] = DTYPE_CODE[bType];
  d[MM_B_SCALES] = scalesOf(bType, p.b, p.K * p.N);
  const flops = 2 * batch * M * p.N * p.K;
  rt.runJob(JOB_MATMUL, flops < PARALLEL_MIN_FLOPS ? 1 : (p.threads ?? rt.threads));
}
