/** Elementwise, broadcast and fill kernels (wgsl/elementwise.wgsl, wgsl/layout.wgsl). */
import { numel } from '../../../graph/types.js';
import type { KernelImpl, Range, StepBuilder } from '../executable.js';
import { broadcastStrides, mergeDims, padTo, threadGrid, UniformWriter } from './util.js';

const UNARY: Record<string, number> = { scale: 0, neg: 1, exp: 2, log: 3, sqrt: 4, silu: 5, gelu: 6, erf: 7, tanh: 8, relu: 9 };
const BINARY: Record<string, number> = { add: 0, sub: 1, mul: 2, div: 3, silu_backward: 4, gelu_backward: 5, relu_backward: 6 };

interface ElemParams { n: number; stride: number; rank?: number; threshold?: number; factor?: number; salt?: number; dims?: number[]; sa?: number[]; sb?: number[] }

function params(p: ElemParams): ArrayBuffer {
  const w = new UniformWriter().u32(p.n, p.stride, p.rank ?? 0, p.threshold ?? 0).f32(p.factor ?? 1).i32(p.salt ?? 0).u32(0, 0);
  w.u32(...padTo(p.dims ?? [], 8, 1, 'elementwise')).u32(...padTo(p.sa ?? [], 8, 0, 'elementwise')).u32(...padTo(p.sb ?? [], 8, 0, 'elementwise'));
  return w.bytes();
}

const unary = (op: number): KernelImpl => async (s) => {
  const n = numel(s.outShape(0));
  const k = await s.kernel('elementwise', 'unary', { OP: op });
  const { grid, stride } = threadGrid(s, n, 256);
  const factor = typeof s.attrs.factor === 'number' ? s.attrs.factor : 1;
  s.dispatch(k, { p: s.uniform(params({ n, stride, factor })), a: s.input(0), out: s.output(0) }, grid);
};

const binary = (op: number): KernelImpl => async (s) => {
  const out = s.outShape(0), sa = s.inShape(0), sb = s.inShape(1);
  const n = numel(out);
  const contig = numel(sa) === n && numel(sb) === n;
  const k = await s.kernel('elementwise', 'binary', { OP: op, CONTIG: contig });
  const { grid, stride } = threadGrid(s, n, 256);
  let p: ElemParams = { n, stride };
  if (!contig) {
    const m = mergeDims(out, [broadcastStrides(sa, out), broadcastStrides(sb, out)]);
    p = { n, stride, rank: m.dims.length, dims: m.dims, sa: m.strides[0], sb: m.strides[1] };
  }
  s.dispatch(k, { p: s.uniform(params(p)), a: s.input(0), b: s.input(1), out: s.output(0) }, grid);
};

/** Every 32-bit word of `r` set to `word`. */
export async function recordFill(s: StepBuilder, r: Range, words: number, word: number): Promise<void> {
  const k = await s.kernel('layout', 'fill');
  const { grid, stride } = threadGrid(s, words, 256);
  s.dispatch(k, { flat: s.uniform(new Uint32Array([words, stride, word >>> 0, 0])), dst: r }, grid);
}

export const f32Bits = (x: number): number => new Uint32Array(new Float32Array([x]).buffer)[0]!;

export const elementwise: Record<string, KernelImpl> = {
  ...Object.fromEntries(Object.entries(UNARY).map(([name, op]) => [name, unary(op)])),
  ...Object.fromEntries(Object.entries(BINARY).map(([name, op]) => [name, binary(op)])),
  fill: async (s) => { await recordFill(s, s.output(0), numel(s.outShape(0)), f32Bits(s.attrs.value as number)); },
  // acc += x in place: output 0 is input 0's memory, so only the output is bound.
  accumulate: async (s) => {
    const n = numel(s.outShape(0));
    const k = await s.kernel('elementwise', 'accumulate');
    const { grid, stride } = threadGrid(s, n, 256);
    s.dispatch(k, { p: s.uniform(params({ n, stride })), a: s.input(1), out: s.output(0) }, grid);
  },
  uniform: async (s) => {
    const n = numel(s.outShape(0));
    const k = await s.kernel('elementwise', 'uniform_noise');
    const { grid, stride } = threadGrid(s, n, 256);
    const salt = ((s.attrs.salt as number | undefined) ?? 0) | 0;
    s.dispatch(k, { p: s.uniform(params({ n, stride, salt })), out: s.output(0), seed: s.input(0) }, grid);
  },
  dropout: async (s) => {
    const n = numel(s.outShape(0));
    const rate = s.attrs.p as number;
    const k = await s.kernel('elementwise', 'dropout');
    const { grid, stride } = threadGrid(s, n, 256);
    // Kept when hash/2²⁴ ≥ p, i.e. hash ≥ ⌈p·2²⁴⌉ (exact in float64), so f32 rounding of p cannot move it.
    const threshold = Math.ceil(rate * 2 ** 24);
    const salt = ((s.attrs.salt as number | undefined) ?? 0) | 0;
    s.dispatch(k, { p: s.uniform(params({ n, stride, threshold, factor: 1 / (1 - rate), salt })), a: s.input(0), out: s.output(0), seed: s.input(1) }, grid);
  },
};
