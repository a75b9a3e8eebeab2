import { dropoutUniform, uniformAt } from '../../../graph/ops/elementwise.js';
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
 * erf to double precision (the js backend also runs float64): the Maclaurin series below |x| = 3, where
 * its terms stay small enough that cancellation costs under 1e-12, and the continued fraction of erfc
 * above (60 terms, far past convergence there). The wasm and WebGPU kernels use a float32 approximation.
 */
export function erf(x: number): number {
  const z = Math.abs(x);
  if (z < 3) {
    // erf x = 2/√π Σ (−1)ⁿ x²ⁿ⁺¹ / (n! (2n + 1))
    let term = z, sum = z;
    for (let n = 1; n < 100; n++) {
      term *= -(z * z) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    const r = (2 / Math.sqrt(Math.PI)) * sum;
    return x < 0 ? -r : r;
  }
  // erfc z = exp(−z²)/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + …))))
  let f = z;
  for (let k = 60; k >= 1; k--) f = z + k / 2 / f;
  const r = 1 - Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
  return x < 0 ? -r : r;
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
  uniform: ([vs], [vo], attrs) => {
    const O = vo!.data, seed = (i32(vs)[0]! + ((attrs.salt as number | undefined) ?? 0)) | 0;
    for (let i = 0; i < O.length; i++) O[i] = uniformAt(seed, i);
  },
};
