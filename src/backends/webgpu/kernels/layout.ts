/** Layout kernels on 32-bit words (wgsl/layout.wgsl): they move f32 and i32 values alike. */
import { numel } from '../../../graph/types.js';
import type { KernelImpl, Range, StepBuilder } from '../executable.js';
import { recordFill } from './elementwise.js';
import { broadcastStrides, contiguousStrides, mergeDims, padTo, threadGrid, UniformWriter } from './util.js';

const axisOf = (a: unknown, rank: number): number => { const x = Number(a ?? 0); return x < 0 ? x + rank : x; };

/** dst[dstBase + Σ idx·dstStride] = src[srcBase + Σ idx·srcStride] over `dims`. */
export async function recordStrided(
  s: StepBuilder, src: Range, dst: Range, dims: readonly number[],
  srcStrides: readonly number[], dstStrides: readonly number[], srcBase = 0, dstBase = 0,
): Promise<void> {
  const n = numel(dims);
  if (n === 0) return;
  const m = mergeDims(dims, [srcStrides, dstStrides]);
  const { grid, stride } = threadGrid(s, n, 256);
  const u = new UniformWriter()
    .u32(n, stride, m.dims.length, srcBase, dstBase, 0, 0, 0)
    .u32(...padTo(m.dims, 8, 1, s.label))
    .u32(...padTo(m.strides[0]!, 8, 0, s.label))
    .u32(...padTo(m.strides[1]!, 8, 0, s.label));
  const k = await s.kernel('layout', 'strided');
  s.dispatch(k, { st: s.uniform(u.bytes()), src, dst }, grid);
}

export const layout: Record<string, KernelImpl> = {
  broadcast_to: async (s) => {
    const out = s.outShape(0);
    await recordStrided(s, s.input(0), s.output(0), out, broadcastStrides(s.inShape(0), out), contiguousStrides(out));
  },
  transpose: async (s) => {
    const perm = s.attrs.perm as number[];
    const inSt = contiguousStrides(s.inShape(0));
    const out = s.outShape(0);
    await recordStrided(s, s.input(0), s.output(0), out, perm.map((p) => inSt[p]!), contiguousStrides(out));
  },
  slice: async (s) => {
    const x = s.inShape(0), out = s.outShape(0);
    const axis = axisOf(s.attrs.axis, x.length);
    const inSt = contiguousStrides(x);
    await recordStrided(s, s.input(0), s.output(0), out, inSt, contiguousStrides(out), (s.attrs.start as number) * inSt[axis]!);
  },
  pad: async (s) => {
    const x = s.inShape(0), out = s.outShape(0);
    const axis = axisOf(s.attrs.axis, x.length);
    const outSt = contiguousStrides(out);
    await recordFill(s, s.output(0), numel(out), 0);
    await recordStrided(s, s.input(0), s.output(0), x, contiguousStrides(x), outSt, 0, (s.attrs.before as number) * outSt[axis]!);
  },
  concat: async (s) => {
    const out = s.outShape(0);
    const axis = axisOf(s.attrs.axis, out.length);
    const outSt = contiguousStrides(out);
    let at = 0;
    for (let i = 0; i < s.inputCount; i++) {
      const x = s.inShape(i);
      await recordStrided(s, s.input(i), s.output(0), x, contiguousStrides(x), outSt, 0, at * outSt[axis]!);
      at += x[axis]!;
    }
  },
  // Rows into the cache in place: output 0 is the cache's own memory, so input 0 is not bound.
  kv_write: async (s) => {
    const [B, S, H, D] = s.outShape(0) as [number, number, number, number];
    const T = s.inShape(1)[1]!;
    const row = H * D;
    const { grid, stride } = threadGrid(s, B * T * row, 256);
    const k = await s.kernel('layout', 'kv_write');
    s.dispatch(k, { kv: s.uniform(new Uint32Array([B, S, T, row, stride, 0, 0, 0])), src: s.input(1), dst: s.output(0), pos: s.input(2) }, grid);
  },
};
