import { dropoutUniform } from '../../../graph/ops/elementwise.js';
import { type JsKernel, broadcastStrides, f, i32, walk } from './types.js';

function binary(op: (a: number, b: number) => number): JsKernel {
  return ([va, vb], [vo]) => {
    const A = f(va), B = f(vb), O = vo!.data;
    if (A.length === O.length && B.length === O.length) {
      for (let i = 0; i < O.length; i++) O[i] = op(A[i]!, B[i]!);
      return;
    }
    walk(vo!.shape, broadcastStrides(va!.shape, vo!.shape), broadcastStrides(vb!.shape, vo!.shape), (o, a, b) => { O[o] = op(A[a]!, B[b]!); });
  };
}

function unary(op: (x: number, factor: number) => number): JsKernel {
  return ([vx], [vo], attrs) => {
    const X = f(vx), O = vo!.data;
    const factor = typeof attrs.factor === 'number' ? attrs.factor : 1;
    for (let i = 0; i < O.length; i++) O[i] = op(X[i]!, factor);
  };
}

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));
const GELU_C = Math.sqrt(2 / Math.PI);

/**
 * erf by the Chebyshev-fitted erfc of Numerical Recipes (fractional error below 1.2e-7), the same
 * formula the wasm and WebGPU kernels use.
 */
export function erf(x: number): number {
  const z = Math.abs(x), t = 1 / (1 + 0.5 * z);
  const r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
    + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? 1 - r : r - 1;
}

export const elementwise: Record<string, JsKernel> = {
  add: binary((a, b) => a + b),
  sub: binary((a, b) => a - b),
  mul: binary((a, b) => a * b),
  div: binary((a, b) => a / b),
  scale: unary((x, c) => x * c),
  neg: unary((x) => -x),
  exp: unary((x) => Math.exp(x)),
  log: unary((x) => Math.log(x)),
  sqrt: unary((x) => Math.sqrt(x)),
  silu: unary((x) => x * sigmoid(x)),
  gelu: unary((x) => 0.5 * x * (1 + Math.tanh(GELU_C * (x + 0.044715 * x * x * x)))),
  erf: unary((x) => erf(x)),
  tanh: unary((x) => Math.tanh(x)),
  relu: unary((x) => (x > 0 ? x : 0)),
  relu_backward: binary((x, dy) => (x > 0 ? dy : 0)),
  // d/dx silu = s · (1 + x · (1 − s))
  silu_backward: binary((x, dy) => { const s = sigmoid(x); return dy * s * (1 + x * (1 - s)); }),
  // d/dx gelu = ½(1 + t) + ½x(1 − t²)·c·(1 + 3·0.044715·x²), t = tanh(c(x + 0.044715x³))
  gelu_backward: binary((x, dy) => {
    const t = Math.tanh(GELU_C * (x + 0.044715 * x * x * x));
    return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_C * (1 + 3 * 0.044715 * x * x));
  }),
  accumulate: ([, vx], [vo]) => { const X = f(vx), O = vo!.data; for (let i = 0; i < O.length; i++) O[i]! += X[i]!; },
  fill: (_ins, [vo], attrs) => { vo!.data.fill(attrs.value as number); },
  dropout: ([vx, vs], [vo], attrs) => {
    const X = f(vx), O = vo!.data, seed = (i32(vs)[0]! + ((attrs.salt as number | undefined) ?? 0)) | 0, p = attrs.p as number, keep = 1 / (1 - p);
    for (let i = 0; i < O.length; i++) O[i] = dropoutUniform(seed, i) >= p ? X[i]! * keep : 0;
  },
};
