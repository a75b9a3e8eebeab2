/** Shapes, strides and uniform packing shared by the kernel implementations. */
import type { StepBuilder } from '../executable.js';
import { WebgpuError } from '../errors.js';

export function contiguousStrides(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) { st[i] = acc; acc *= shape[i]!; }
  return st;
}

/** Strides of `inShape` seen through broadcasting to `outShape` (0 along broadcast axes). */
export function broadcastStrides(inShape: readonly number[], outShape: readonly number[]): number[] {
  const st = contiguousStrides(inShape);
  const lead = outShape.length - inShape.length;
  return outShape.map((d, i) => (i < lead || inShape[i - lead] !== d ? 0 : st[i - lead]!));
}

/**
 * Fewer, larger dimensions with the same addressing: size-1 dimensions go, and a dimension merges into
 * the next when every stride list walks the pair as one run. Keeps kernels' index loops short.
 */
export function mergeDims(dims: readonly number[], strides: readonly (readonly number[])[]): { dims: number[]; strides: number[][] } {
  const outDims: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (let d = 0; d < dims.length; d++) {
    if (dims[d] === 1) continue;
    const last = outDims.length - 1;
    if (last >= 0 && strides.every((st, k) => outStrides[k]![last] === st[d]! * dims[d]!)) {
      outDims[last] = outDims[last]! * dims[d]!;
      strides.forEach((st, k) => { outStrides[k]![last] = st[d]!; });
      continue;
    }
    outDims.push(dims[d]!);
    strides.forEach((st, k) => outStrides[k]!.push(st[d]!));
  }
  return { dims: outDims, strides: outStrides };
}

/** Pad to `n` entries (unused dimensions have size 1 and stride 0). */
export function padTo(xs: readonly number[], n: number, fill: number, what: string): number[] {
  if (xs.length > n) throw new WebgpuError(`${what}: ${xs.length} dimensions after merging; the kernel handles ${n}`);
  return [...xs, ...new Array<number>(n - xs.length).fill(fill)];
}

/** A little-endian uniform block built field by field (u32, i32, f32), padded to 16 bytes. */
export class UniformWriter {
  private readonly words: { kind: 'u' | 'i' | 'f'; v: number }[] = [];
  u32(...v: number[]): this { for (const x of v) this.words.push({ kind: 'u', v: x }); return this; }
  i32(...v: number[]): this { for (const x of v) this.words.push({ kind: 'i', v: x }); return this; }
  f32(...v: number[]): this { for (const x of v) this.words.push({ kind: 'f', v: x }); return this; }
  pad16(): this { while (this.words.length % 4) this.u32(0); return this; }
  bytes(): ArrayBuffer {
    this.pad16();
    const buf = new ArrayBuffer(Math.max(16, this.words.length * 4));
    const view = new DataView(buf);
    this.words.forEach((w, i) => {
      if (w.kind === 'f') view.setFloat32(i * 4, w.v, true);
      else if (w.kind === 'i') view.setInt32(i * 4, w.v, true);
      else {
        if (!(w.v >= 0 && w.v < 2 ** 32 && Number.isInteger(w.v))) throw new WebgpuError(`uniform field ${i}: ${w.v} is not a u32`);
        view.setUint32(i * 4, w.v, true);
      }
    });
    return buf;
  }
}

/** A grid of `threads` threads in workgroups of `wg`, folded into 2-D; returns the grid and threads per x row. */
export function threadGrid(s: StepBuilder, threads: number, wg: number): { grid: [number, number, number]; stride: number } {
  const grid = s.grid(Math.ceil(threads / wg));
  return { grid, stride: grid[0] * wg };
}

/** Largest element index reachable must fit the shaders' u32 indices. */
export function checkU32(n: number, what: string): void {
  if (n >= 2 ** 32) throw new WebgpuError(`${what}: ${n} elements exceed 32-bit indexing`);
}

/**
 * Threads for a workgroup that reduces rows of `len` elements: the next power of two, within [32, 256].
 * Short rows get small workgroups: fewer idle threads per barrier step, which on a CPU implementation of
 * WebGPU (SwiftShader) is most of the cost of a row reduction.
 */
export function rowThreads(len: number): number {
  let n = 32;
  while (n < len && n < 256) n *= 2;
  return n;
}
