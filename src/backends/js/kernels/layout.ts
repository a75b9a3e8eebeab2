import { type JsKernel, broadcastStrides, size, strides, walk } from './types.js';

const axisOf = (a: unknown, rank: number): number => { const x = Number(a ?? 0); return x < 0 ? x + rank : x; };

/** Split a shape around `axis`: rows before it, the axis length, and the contiguous block after it. */
function around(shape: readonly number[], axis: number): [number, number, number] {
  return [size(shape.slice(0, axis)), shape[axis]!, size(shape.slice(axis + 1))];
}

export const layout: Record<string, JsKernel> = {
  broadcast_to: ([vx], [vo]) => {
    const X = vx!.data, O = vo!.data;
    walk(vo!.shape, broadcastStrides(vx!.shape, vo!.shape), vo!.shape.map(() => 0), (o, a) => { O[o] = X[a]!; });
  },
  transpose: ([vx], [vo], attrs) => {
    const perm = attrs.perm as number[];
    const st = strides(vx!.shape);
    const X = vx!.data, O = vo!.data;
    walk(vo!.shape, perm.map((p) => st[p]!), perm.map(() => 0), (o, a) => { O[o] = X[a]!; });
  },
  slice: ([vx], [vo], attrs) => {
    const axis = axisOf(attrs.axis, vx!.shape.length);
    const [outer, len, inner] = around(vx!.shape, axis);
    const start = attrs.start as number, n = (attrs.end as number) - start;
    const X = vx!.data, O = vo!.data;
    for (let r = 0; r < outer; r++) {
      O.set(X.subarray((r * len + start) * inner, (r * len + start + n) * inner), r * n * inner);
    }
  },
  pad: ([vx], [vo], attrs) => {
    const axis = axisOf(attrs.axis, vx!.shape.length);
    const [outer, len, inner] = around(vx!.shape, axis);
    const before = attrs.before as number, total = vo!.shape[axis]!;
    const X = vx!.data, O = vo!.data;
    O.fill(0);
    for (let r = 0; r < outer; r++) O.set(X.subarray(r * len * inner, (r + 1) * len * inner), (r * total + before) * inner);
  },
  concat: (ins, [vo], attrs) => {
    const axis = axisOf(attrs.axis, vo!.shape.length);
    const [outer, total, inner] = around(vo!.shape, axis);
    const O = vo!.data;
    let at = 0;
    for (const v of ins) {
      const len = v.shape[axis]!;
      for (let r = 0; r < outer; r++) O.set(v.data.subarray(r * len * inner, (r + 1) * len * inner), (r * total + at) * inner);
      at += len;
    }
  },
};
