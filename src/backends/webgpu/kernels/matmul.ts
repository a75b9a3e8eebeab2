/** matmul on wgsl/matmul.wgsl; semantics in src/graph/ops/matmul.ts. */
import { numel } from '../../../graph/types.js';
import type { KernelImpl, Range, StepBuilder } from '../executable.js';
import { WebgpuError } from '../errors.js';
import { W_TYPES, weightLayout, type WeightLayout } from './compact.js';
import { checkU32, threadGrid } from './util.js';

/** Products with fewer outputs than this, or a side thinner than THIN, skip the 64×64 tiles. */
const SMALL_OUTPUTS = 4096;
const THIN = 16;
/**
 * Products with at least this many outputs and both sides ≥ 128 take the 128×128 tiles: 16 or more
 * workgroups of 256 threads. Below that the 64×64 tiles keep more workgroups in flight.
 */
const LARGE_OUTPUTS = 1 << 18;

export type MatmulKernel = 'small' | 'main' | 'large';

/** Which kernel of wgsl/matmul.wgsl a product runs, and its output tile (0: one thread per output). */
export function matmulKernel(d: Pick<MatmulDims, 'M' | 'N' | 'batch'>): { entry: MatmulKernel; tile: number } {
  const { M, N, batch } = d;
  if (M * N <= SMALL_OUTPUTS || Math.min(M, N) < THIN) return { entry: 'small', tile: 0 };
  if (Math.min(M, N) >= 128 && M * N * batch >= LARGE_OUTPUTS) return { entry: 'large', tile: 128 };
  return { entry: 'main', tile: 64 };
}

export interface MatmulDims {
  readonly M: number; readonly N: number; readonly K: number; readonly batch: number;
  readonly strideA: number; readonly strideB: number;
  readonly transA: boolean; readonly transB: boolean;
}

export function matmulDims(a: readonly number[], b: readonly number[], c: readonly number[], transA: boolean, transB: boolean): MatmulDims {
  const M = c[c.length - 2]!, N = c[c.length - 1]!;
  const K = a[transA ? a.length - 2 : a.length - 1]!;
  const batch = numel(c) / Math.max(1, M * N) || numel(c.slice(0, -2));
  // A batch of row-major A against one shared B is a single product with the batch folded into M (the
  // same addresses), which fills tiles better.
  if (b.length <= 2 && !transA && batch > 1) return { M: M * batch, N, K, batch: 1, strideA: 0, strideB: 0, transA, transB };
  return { M, N, K, batch, strideA: a.length > 2 ? M * K : 0, strideB: b.length > 2 ? K * N : 0, transA, transB };
}

/**
 * Record C = op(A) · op(B) over plan ranges; shared by the matmul op and kernels that need a product.
 * `bLayout` says how B is stored when it is a compact frozen weight (2-D, not batched).
 */
export async function recordMatmul(s: StepBuilder, d: MatmulDims, a: Range, b: Range, c: Range, bLayout: WeightLayout = F32): Promise<void> {
  const { M, N, K, batch, transA, transB } = d;
  if (M * N * batch === 0) return;
  checkU32(M * N * batch, s.label);
  if (bLayout.type !== F32.type && d.strideB !== 0) throw new WebgpuError(`${s.label}: a compact B must be 2-D`);
  const { entry, tile } = matmulKernel(d);
  if (entry === 'small') {
    const kernel = await s.kernel('matmul', 'small', { TRANS_A: transA, TRANS_B: transB, W_TYPE: bLayout.type });
    const { grid, stride } = threadGrid(s, M * N * batch, 64);
    const u = s.uniform(new Uint32Array([M, N, K, 0, d.strideA, d.strideB, M * N, stride, batch, bLayout.scales, 0, 0]));
    s.dispatch(kernel, { p: u, a, w: b, c }, grid);
    return;
  }
  const kernel = await s.kernel('matmul', entry, {
    TRANS_A: transA,
    TRANS_B: transB,
    VEC_A: (transA ? M : K) % 4 === 0,
    VEC_B: (transB ? K : N) % 4 === 0,
    W_TYPE: bLayout.type,
  });
  const zMax = s.limits.maxComputeWorkgroupsPerDimension;
  for (let b0 = 0; b0 < batch; b0 += zMax) {
    const u = s.uniform(new Uint32Array([M, N, K, b0, d.strideA, d.strideB, M * N, 0, batch, bLayout.scales, 0, 0]));
    s.dispatch(kernel, { p: u, a, w: b, c }, [Math.ceil(N / tile), Math.ceil(M / tile), Math.min(zMax, batch - b0)]);
  }
}

const F32: WeightLayout = { type: W_TYPES.f32, scales: 0 };

export const matmul: KernelImpl = async (s) => {
  const d = matmulDims(s.inShape(0), s.inShape(1), s.outShape(0), s.attrs.transA === true, s.attrs.transB === true);
  const bType = s.inInfo(1).dtype;
  if (s.inInfo(0).dtype !== 'f32') throw new WebgpuError(`${s.label}: A must be f32 (a compact weight is read as B only)`);
  await recordMatmul(s, d, s.input(0), s.input(1), s.output(0), bType === 'f32' ? F32 : weightLayout(bType, numel(s.inShape(1)), s.label));
};
