import { type JsKernel, f, floats } from './types.js';

/** C[b] = op(A[b]) · op(B[b]); see src/graph/ops/matmul.ts for the shapes. Accumulates in float64; a compact B is decoded first. */
export const matmul: JsKernel = ([va, vb], [vc], attrs) => {
  const A = f(va), B = floats(vb), C = vc!.data;
  const tA = attrs.transA === true, tB = attrs.transB === true;
  const sa = va!.shape, sb = vb!.shape, sc = vc!.shape;
  const M = sc[sc.length - 2]!, N = sc[sc.length - 1]!;
  const K = sa[tA ? sa.length - 2 : sa.length - 1]!;
  const batch = C.length / Math.max(1, M * N);
  const strideA = sa.length > 2 ? M * K : 0, strideB = sb.length > 2 ? K * N : 0;
  const row = new Float64Array(N);
  for (let bi = 0; bi < batch; bi++) {
    const oa = bi * strideA, ob = bi * strideB, oc = bi * M * N;
    for (let i = 0; i < M; i++) {
      row.fill(0);
      for (let k = 0; k < K; k++) {
        const a = tA ? A[oa + k * M + i]! : A[oa + i * K + k]!;
        if (a === 0) continue;
        if (tB) for (let j = 0; j < N; j++) row[j]! += a * B[ob + j * K + k]!;
        else { const base = ob + k * N; for (let j = 0; j < N; j++) row[j]! += a * B[base + j]!; }
      }
      for (let j = 0; j < N; j++) C[oc + i * N + j] = row[j]!;
    }
  }
};
