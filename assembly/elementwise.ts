// Elementwise kernels: unary maps, binary maps with broadcasting, accumulate, dropout and AdamW.
import { expv, sigmoidv, tanhv } from './simd';

export const U_SCALE = 0;
export const U_NEG = 1;
export const U_EXP = 2;
export const U_LOG = 3;
export const U_SQRT = 4;
export const U_SILU = 5;
export const U_GELU = 6;
export const U_ERF = 7;
export const U_TANH = 8;
export const U_RELU = 9;

export const B_ADD = 0;
export const B_SUB = 1;
export const B_MUL = 2;
export const B_DIV = 3;
export const B_SILU_BACKWARD = 4;
export const B_GELU_BACKWARD = 5;
export const B_RELU_BACKWARD = 6;

const GELU_C: f32 = 0.7978845608028654; // √(2/π)
const GELU_A: f32 = 0.044715;

// erf by Numerical Recipes' Chebyshev-fitted erfc (fractional error below 1.2e-7), as the other backends.
function erf(x: f32): f32 {
  const z = Mathf.abs(x);
  const t: f32 = 1.0 / (1.0 + 0.5 * z);
  const r: f32 = t * Mathf.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
    + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? 1.0 - r : r - 1.0;
}

@inline function unaryv(op: i32, x: v128, c: v128): v128 {
  if (op == U_SCALE) return f32x4.mul(x, c);
  if (op == U_NEG) return f32x4.neg(x);
  if (op == U_EXP) return expv(x);
  if (op == U_SQRT) return f32x4.sqrt(x);
  if (op == U_SILU) return f32x4.mul(x, sigmoidv(x));
  if (op == U_TANH) return tanhv(x);
  if (op == U_RELU) return f32x4.max(x, f32x4.splat(0.0));
  // gelu, tanh form: ½x(1 + tanh(c(x + a x³)))
  const x3 = f32x4.mul(f32x4.mul(x, x), x);
  const t = tanhv(f32x4.mul(f32x4.splat(GELU_C), f32x4.add(x, f32x4.mul(f32x4.splat(GELU_A), x3))));
  return f32x4.mul(f32x4.mul(f32x4.splat(0.5), x), f32x4.add(f32x4.splat(1.0), t));
}

@inline function unaryLoop(op: i32, x: usize, o: usize, n: i32, factor: f32): void {
  const c = f32x4.splat(factor);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(o + (<usize>i << 2), unaryv(op, v128.load(x + (<usize>i << 2)), c));
  // The tail goes through the same vector code, one lane used, so every element gets identical math.
  for (; i < n; i++) {
    store<f32>(o + (<usize>i << 2), f32x4.extract_lane(unaryv(op, f32x4.splat(load<f32>(x + (<usize>i << 2))), c), 0));
  }
}

export function unary(op: i32, x: usize, o: usize, n: i32, factor: f32): void {
  switch (op) {
    case U_SCALE: unaryLoop(U_SCALE, x, o, n, factor); break;
    case U_NEG: unaryLoop(U_NEG, x, o, n, factor); break;
    case U_EXP: unaryLoop(U_EXP, x, o, n, factor); break;
    case U_SQRT: unaryLoop(U_SQRT, x, o, n, factor); break;
    case U_SILU: unaryLoop(U_SILU, x, o, n, factor); break;
    case U_GELU: unaryLoop(U_GELU, x, o, n, factor); break;
    case U_TANH: unaryLoop(U_TANH, x, o, n, factor); break;
    case U_RELU: unaryLoop(U_RELU, x, o, n, factor); break;
    case U_ERF: {
      for (let i = 0; i < n; i++) store<f32>(o + (<usize>i << 2), erf(load<f32>(x + (<usize>i << 2))));
      break;
    }
    case U_LOG: {
      for (let i = 0; i < n; i++) store<f32>(o + (<usize>i << 2), Mathf.log(load<f32>(x + (<usize>i << 2))));
      break;
    }
  }
}

@inline function binaryv(op: i32, a: v128, b: v128): v128 {
  if (op == B_ADD) return f32x4.add(a, b);
  if (op == B_SUB) return f32x4.sub(a, b);
  if (op == B_MUL) return f32x4.mul(a, b);
  if (op == B_DIV) return f32x4.div(a, b);
  if (op == B_RELU_BACKWARD) return v128.bitselect(b, f32x4.splat(0.0), f32x4.gt(a, f32x4.splat(0.0)));
  if (op == B_SILU_BACKWARD) {
    // a = x, b = dy: dy · s · (1 + x(1 − s))
    const s = sigmoidv(a);
    const one = f32x4.splat(1.0);
    return f32x4.mul(f32x4.mul(b, s), f32x4.add(one, f32x4.mul(a, f32x4.sub(one, s))));
  }
  // gelu backward: dy · (½(1 + t) + ½x(1 − t²)·c·(1 + 3a x²)), t = tanh(c(x + a x³))
  const x2 = f32x4.mul(a, a);
  const t = tanhv(f32x4.mul(f32x4.splat(GELU_C), f32x4.add(a, f32x4.mul(f32x4.splat(GELU_A), f32x4.mul(x2, a)))));
  const half = f32x4.splat(0.5);
  const one = f32x4.splat(1.0);
  const dt = f32x4.mul(
    f32x4.mul(f32x4.mul(half, a), f32x4.sub(one, f32x4.mul(t, t))),
    f32x4.mul(f32x4.splat(GELU_C), f32x4.add(one, f32x4.mul(f32x4.splat(3 * GELU_A), x2))),
  );
  return f32x4.mul(b, f32x4.add(f32x4.mul(half, f32x4.add(one, t)), dt));
}

// One contiguous output row of n; a and b advance by sa, sb elements (0 broadcasts one value).
@inline function binaryRowOp(op: i32, n: i32, a: usize, sa: i32, b: usize, sb: i32, o: usize): void {
  let i = 0;
  if (sa == 1 && sb == 1) {
    for (; i + 4 <= n; i += 4) {
      const k = <usize>i << 2;
      v128.store(o + k, binaryv(op, v128.load(a + k), v128.load(b + k)));
    }
  } else if (sa == 1 && sb == 0) {
    const bv = v128.load32_splat(b);
    for (; i + 4 <= n; i += 4) {
      const k = <usize>i << 2;
      v128.store(o + k, binaryv(op, v128.load(a + k), bv));
    }
  } else if (sa == 0 && sb == 1) {
    const av = v128.load32_splat(a);
    for (; i + 4 <= n; i += 4) {
      const k = <usize>i << 2;
      v128.store(o + k, binaryv(op, av, v128.load(b + k)));
    }
  }
  for (; i < n; i++) {
    const av = v128.load32_splat(a + ((<usize>i * sa) << 2));
    const bv = v128.load32_splat(b + ((<usize>i * sb) << 2));
    store<f32>(o + (<usize>i << 2), f32x4.extract_lane(binaryv(op, av, bv), 0));
  }
}

function binaryRow(op: i32, n: i32, a: usize, sa: i32, b: usize, sb: i32, o: usize): void {
  switch (op) {
    case B_ADD: binaryRowOp(B_ADD, n, a, sa, b, sb, o); break;
    case B_SUB: binaryRowOp(B_SUB, n, a, sa, b, sb, o); break;
    case B_MUL: binaryRowOp(B_MUL, n, a, sa, b, sb, o); break;
    case B_DIV: binaryRowOp(B_DIV, n, a, sa, b, sb, o); break;
    case B_SILU_BACKWARD: binaryRowOp(B_SILU_BACKWARD, n, a, sa, b, sb, o); break;
    case B_GELU_BACKWARD: binaryRowOp(B_GELU_BACKWARD, n, a, sa, b, sb, o); break;
    case B_RELU_BACKWARD: binaryRowOp(B_RELU_BACKWARD, n, a, sa, b, sb, o); break;
  }
}

// Broadcasting binary op over part of the output. Descriptor (i32 words): out, a, b, rank,
// shape[rank], strideA[rank], strideB[rank]; the host merges dimensions first, so rank is small and
// the last dimension is the longest contiguous run. [t0, t1) counts elements when rank is 1, else rows
// of the last dimension. idx: rank words of this thread's scratch.
export function binaryRange(op: i32, d: usize, t0: i32, t1: i32, idx: usize): void {
  const o = <usize>load<i32>(d);
  const a = <usize>load<i32>(d, 4);
  const b = <usize>load<i32>(d, 8);
  const r = load<i32>(d, 12);
  const shape = d + 16;
  const sa = shape + (<usize>r << 2);
  const sb = sa + (<usize>r << 2);
  const last = <usize>(r - 1) << 2;
  const n = load<i32>(shape + last);
  const ia = load<i32>(sa + last);
  const ib = load<i32>(sb + last);
  if (r == 1) {
    binaryRow(op, t1 - t0, a + ((<usize>t0 * ia) << 2), ia, b + ((<usize>t0 * ib) << 2), ib, o + (<usize>t0 << 2));
    return;
  }
  // Index and operand offsets of row t0.
  let ao: usize = 0, bo: usize = 0;
  let rest = t0;
  for (let k = r - 2; k >= 0; k--) {
    const w = <usize>k << 2;
    const dim = load<i32>(shape + w);
    const i = rest % dim;
    rest /= dim;
    store<i32>(idx + w, i);
    ao += <usize>(i * load<i32>(sa + w));
    bo += <usize>(i * load<i32>(sb + w));
  }
  for (let t = t0; t < t1; t++) {
    binaryRow(op, n, a + (ao << 2), ia, b + (bo << 2), ib, o + ((<usize>t * n) << 2));
    for (let k = r - 2; k >= 0; k--) {
      const w = <usize>k << 2;
      const dim = load<i32>(shape + w);
      const v = load<i32>(idx + w) + 1;
      ao += <usize>load<i32>(sa + w);
      bo += <usize>load<i32>(sb + w);
      if (v < dim) {
        store<i32>(idx + w, v);
        break;
      }
      ao -= <usize>(load<i32>(sa + w) * dim);
      bo -= <usize>(load<i32>(sb + w) * dim);
      store<i32>(idx + w, 0);
    }
  }
}

/** acc[0:n] += x[0:n] */
export function accumulate(acc: usize, x: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const k = <usize>i << 2;
    v128.store(acc + k, f32x4.add(v128.load(acc + k), v128.load(x + k)));
  }
  for (; i < n; i++) store<f32>(acc + (<usize>i << 2), load<f32>(acc + (<usize>i << 2)) + load<f32>(x + (<usize>i << 2)));
}

// The dropout hash of src/graph/ops/elementwise.ts (dropoutUniform) on four lanes; returns the 24-bit
// integer u·2^24, so the host compares against ceil(p·2^24) and never rounds p.
@inline function dropoutBits(seed: v128, i: v128): v128 {
  let h = i32x4.add(i32x4.mul(seed, i32x4.splat(0x9e3779b1)), i32x4.mul(i, i32x4.splat(0x85ebca77)));
  h = v128.xor(h, i32x4.shr_u(h, 15));
  h = i32x4.mul(h, i32x4.splat(0x2c1b3c6d));
  h = v128.xor(h, i32x4.shr_u(h, 12));
  h = i32x4.mul(h, i32x4.splat(0x297a2d39));
  h = v128.xor(h, i32x4.shr_u(h, 15));
  return i32x4.shr_u(h, 8);
}

// o = x · keep where hash(seed + salt, first + i) ≥ threshold, else 0, for n elements from element
// `first` (x and o point at that element). The seed is read from memory (an i32 value).
export function dropout(x: usize, o: usize, n: i32, seedPtr: usize, salt: i32, threshold: i32, keep: f32, first: i32): void {
  const seed = i32x4.splat(load<i32>(seedPtr) + salt);
  const thr = i32x4.splat(threshold);
  const kv = f32x4.splat(keep);
  let idx = i32x4.add(i32x4(0, 1, 2, 3), i32x4.splat(first));
  const four = i32x4.splat(4);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const k = <usize>i << 2;
    const mask = i32x4.ge_s(dropoutBits(seed, idx), thr);
    v128.store(o + k, v128.and(f32x4.mul(v128.load(x + k), kv), mask));
    idx = i32x4.add(idx, four);
  }
  for (; i < n; i++) {
    const bits = i32x4.extract_lane(dropoutBits(seed, i32x4.splat(first + i)), 0);
    store<f32>(o + (<usize>i << 2), bits >= threshold ? load<f32>(x + (<usize>i << 2)) * keep : 0);
  }
}

// AdamW (decoupled weight decay), in place on p, m, v. c1 = 1 − β1, c2 = 1 − β2; bc1, bc2 are the bias
// corrections 1 − β^t; decay = 1 − lr·wd.
export function adamw(
  p: usize, g: usize, m: usize, v: usize, n: i32,
  lr: f32, beta1: f32, c1: f32, beta2: f32, c2: f32, eps: f32, decay: f32, bc1: f32, bc2: f32, gradScale: f32,
): void {
  const vlr = f32x4.splat(lr), vb1 = f32x4.splat(beta1), vc1 = f32x4.splat(c1), vb2 = f32x4.splat(beta2);
  const vc2 = f32x4.splat(c2), veps = f32x4.splat(eps), vdecay = f32x4.splat(decay);
  const vbc1 = f32x4.splat(bc1), vbc2 = f32x4.splat(bc2), vgs = f32x4.splat(gradScale);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const k = <usize>i << 2;
    const gi = f32x4.mul(v128.load(g + k), vgs);
    const mi = f32x4.add(f32x4.mul(vb1, v128.load(m + k)), f32x4.mul(vc1, gi));
    const vi = f32x4.add(f32x4.mul(vb2, v128.load(v + k)), f32x4.mul(f32x4.mul(vc2, gi), gi));
    v128.store(m + k, mi);
    v128.store(v + k, vi);
    const step = f32x4.div(f32x4.mul(vlr, f32x4.div(mi, vbc1)), f32x4.add(f32x4.sqrt(f32x4.div(vi, vbc2)), veps));
    v128.store(p + k, f32x4.sub(f32x4.mul(v128.load(p + k), vdecay), step));
  }
  for (; i < n; i++) {
    const k = <usize>i << 2;
    const gi = load<f32>(g + k) * gradScale;
    const mi = beta1 * load<f32>(m + k) + c1 * gi;
    const vi = beta2 * load<f32>(v + k) + c2 * gi * gi;
    store<f32>(m + k, mi);
    store<f32>(v + k, vi);
    store<f32>(p + k, load<f32>(p + k) * decay - (lr * (mi / bc1)) / (Mathf.sqrt(vi / bc2) + eps));
  }
}
