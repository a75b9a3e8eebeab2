import { type JsKernel, broadcastStrides, f, walk } from './types.js';

/** sum / mean over attrs.axes (null: all), accumulated in float64. */
function reduce(mean: boolean): JsKernel {
  return ([vx], [vo], attrs) => {
    const X = f(vx), O = vo!.data, shape = vx!.shape;
    const axes = attrs.axes === null || attrs.axes === undefined
      ? shape.map((_, i) => i)
      : (attrs.axes as number[]).map((a) => (a < 0 ? a + shape.length : a));
    const kept = shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const acc = new Float64Array(O.length);
    // Walk the input; its offset into the (kept-dims) output comes from broadcast strides.
    const outStrides = broadcastStrides(kept, shape);
    walk(shape, outStrides, shape.map(() => 0), (i, o) => { acc[o]! += X[i]!; });
    const n = O.length === 0 ? 1 : X.length / O.length;
    for (let i = 0; i < O.length; i++) O[i] = mean ? acc[i]! / n : acc[i]!;
  };
}

export const reductions: Record<string, JsKernel> = { sum: reduce(false), mean: reduce(true) };
