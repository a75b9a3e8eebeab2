/**
 * Frozen weights kept in their compact layout (f16, bf16, q8_0, q4_0; see wgsl/compact.wgsl): the codes
 * kernels specialise on, and the `dequantize` op.
 */
import { numel, type CompactDType, type DType } from '../../../graph/types.js';
import { scalesOffset } from '../../../quant/codec.js';
import { WebgpuError } from '../errors.js';
import type { KernelImpl } from '../executable.js';
import { checkU32, threadGrid } from './util.js';

/** W_TYPE of wgsl/compact.wgsl for each dtype a weight may have. */
export const W_TYPES: Readonly<Record<'f32' | CompactDType, number>> = { f32: 0, f16: 1, bf16: 2, q8_0: 3, q4_0: 4, q4_1: 5 };

export interface WeightLayout {
  /** W_TYPE override value. */
  readonly type: number;
  /** Word index of the scale plane (0 when there is none). */
  readonly scales: number;
}

/** How a kernel reads a value of `dtype` with `n` elements bound as `w`. */
export function weightLayout(dtype: DType, n: number, label: string): WeightLayout {
  if (dtype === 'i32') throw new WebgpuError(`${label}: a weight of dtype ${dtype} cannot be read by the webgpu kernels (f32, f16, bf16, q8_0, q4_0, q4_1)`);
  if ((dtype === 'q8_0' || dtype === 'q4_0' || dtype === 'q4_1') && n % 32 !== 0) throw new WebgpuError(`${label}: a ${dtype} tensor of ${n} elements is not made of 32-element blocks`);
  const type = W_TYPES[dtype];
  checkU32(n, label);
  const scales = dtype === 'q8_0' || dtype === 'q4_0' || dtype === 'q4_1' ? scalesOffset(dtype, n) / 4 : 0;
  return { type, scales };
}

/** dequantize(x) → f32, same shape: every element exactly. */
export const dequantize: KernelImpl = async (s) => {
  const n = numel(s.inShape(0));
  const { type, scales } = weightLayout(s.inInfo(0).dtype, n, s.label);
  const { grid, stride } = threadGrid(s, n, 256);
  const k = await s.kernel('dequantize', 'main', { W_TYPE: type });
  s.dispatch(k, { p: s.uniform(new Uint32Array([n, stride, scales, 0])), w: s.input(0), out: s.output(0) }, grid);
};
