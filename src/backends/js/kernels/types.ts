import { type Attrs, type DType, isCompact } from '../../../graph/types.js';
import { dequantize } from '../../../quant/codec.js';

export type FloatArray = Float32Array | Float64Array;
/** What a value holds on the js backend: floats, i32, or a compact weight's layout bytes. */
export type JsData = FloatArray | Int32Array | Uint8Array;
export interface View<A = FloatArray> { readonly data: A; readonly shape: readonly number[]; readonly dtype?: DType }
/** A js kernel reads `ins` and writes every element of `outs`. */
export type JsKernel = (ins: readonly View<JsData>[], outs: readonly View[], attrs: Attrs) => void;

export const f = (v: View<JsData> | undefined): FloatArray => v!.data as FloatArray;
/** A float input that may be a compact weight: decoded (exactly) to float32 for this call. */
export const floats = (v: View<JsData> | undefined): FloatArray =>
  v!.dtype !== undefined && isCompact(v!.dtype) ? dequantize(v!.dtype, v!.data as Uint8Array, size(v!.shape)) : f(v);
export const i32 = (v: View<JsData> | undefined): Int32Array => v!.data as Int32Array;
export const size = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

/** Row-major strides of `shape`. */
export function strides(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) { st[i] = acc; acc *= shape[i]!; }
  return st;
}

/** Strides of `inShape` seen through broadcasting to `outShape` (0 along broadcast axes). */
export function broadcastStrides(inShape: readonly number[], outShape: readonly number[]): number[] {
  const st = strides(inShape);
  const lead = outShape.length - inShape.length;
  return outShape.map((d, i) => (i < lead || inShape[i - lead] !== d ? 0 : st[i - lead]!));
}

/**
 * Walk every index of `shape` in row-major order, calling fn(outIndex, offsetA, offsetB) with offsets
 * computed from two stride lists.
 */
export function walk(shape: readonly number[], sa: readonly number[], sb: readonly number[], fn: (o: number, a: number, b: number) => void): void {
  const rank = shape.length;
  const total = size(shape);
  if (total === 0) return;
  const idx = new Array<number>(rank).fill(0);
  let a = 0, b = 0;
  for (let o = 0; o < total; o++) {
    fn(o, a, b);
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]!++;
      a += sa[d]!; b += sb[d]!;
      if (idx[d]! < shape[d]!) break;
      a -= sa[d]! * shape[d]!; b -= sb[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
}
