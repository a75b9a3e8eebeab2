// One parallel job for the kernels that split into independent blocks: elementwise maps over element
// ranges, row-wise ops (norms, cross-entropy, rope) over row ranges. The host fixes the block size from
// the shape alone, and kernels that reduce across blocks (weight gradients of the norms, the loss) keep
// one partial per block that a serial step adds in block order, so results do not depend on the thread
// count.
//
// Descriptor: i32 words kernel, count (elements or rows), block, task counter; from byte 16 the
// kernel's arguments as float64 slots (integers and pointers are exact in a double).
import { adamw, accumulate, binaryRange, dropout, unary } from './elementwise';
import { layernorm, layernormBackward, rmsnorm, rmsnormBackward } from './norm';
import { crossEntropyBackward, crossEntropyRows } from './loss';
import { reduceRows } from './reduce';
import { rope } from './rope';
import { nextTask } from './tasks';

export const R_UNARY = 1;
export const R_BINARY = 2;
export const R_ACCUMULATE = 3;
export const R_DROPOUT = 4;
export const R_ADAMW = 5;
export const R_RMSNORM = 6;
export const R_RMSNORM_BACKWARD = 7;
export const R_LAYERNORM = 8;
export const R_LAYERNORM_BACKWARD = 9;
export const R_CROSS_ENTROPY = 10;
export const R_CROSS_ENTROPY_BACKWARD = 11;
export const R_ROPE = 12;
export const R_REDUCE_ROWS = 13;

@inline function f(d: usize, i: i32): f64 {
  return load<f64>(d + 16 + (<usize>i << 3));
}

@inline function n(d: usize, i: i32): i32 {
  return <i32>f(d, i);
}

@inline function p(d: usize, i: i32): usize {
  return <usize><u32>f(d, i);
}

export function rowsJob(d: usize, tid: i32, nth: i32): void {
  const kernel = load<i32>(d);
  const count = load<i32>(d, 4);
  const block = load<i32>(d, 8);
  const tasks = (count + block - 1) / block;
  for (let t = nextTask(d + 12); t < tasks; t = nextTask(d + 12)) {
    const s = t * block;
    const e = min(count, s + block);
    const len = e - s;
    const at = <usize>s << 2;
    switch (kernel) {
      case R_UNARY: unary(n(d, 0), p(d, 1) + at, p(d, 2) + at, len, <f32>f(d, 3)); break;
      // args: op, walker descriptor, per-thread scratch base and stride
      case R_BINARY: binaryRange(n(d, 0), p(d, 1), s, e, p(d, 2) + <usize>tid * p(d, 3)); break;
      case R_ACCUMULATE: accumulate(p(d, 0) + at, p(d, 1) + at, len); break;
      case R_DROPOUT:
        dropout(p(d, 0) + at, p(d, 1) + at, len, p(d, 2), n(d, 3), n(d, 4), <f32>f(d, 5), s);
        break;
      case R_ADAMW:
        adamw(
          p(d, 0) + at, p(d, 1) + at, p(d, 2) + at, p(d, 3) + at, len, <f32>f(d, 4), <f32>f(d, 5), <f32>f(d, 6),
          <f32>f(d, 7), <f32>f(d, 8), <f32>f(d, 9), <f32>f(d, 10), <f32>f(d, 11), <f32>f(d, 12), <f32>f(d, 13),
        );
        break;
      case R_RMSNORM: {
        // x, w, y, D, eps
        const row = <usize>s * <usize>n(d, 3) << 2;
        rmsnorm(p(d, 0) + row, p(d, 1), p(d, 2) + row, len, n(d, 3), f(d, 4));
        break;
      }
      case R_RMSNORM_BACKWARD: {
        // x, w, dy, dx, D, eps, partials (one block of D doubles per task)
        const D = n(d, 4);
        const row = <usize>s * <usize>D << 2;
        rmsnormBackward(p(d, 0) + row, p(d, 1), p(d, 2) + row, p(d, 3) + row, len, D, f(d, 5), p(d, 6) + <usize>t * (<usize>D << 3));
        break;
      }
      case R_LAYERNORM: {
        // x, w, b, y, D, eps, scratch (16 bytes per task)
        const D = n(d, 4);
        const row = <usize>s * <usize>D << 2;
        layernorm(p(d, 0) + row, p(d, 1), p(d, 2), p(d, 3) + row, len, D, f(d, 5), p(d, 6) + (<usize>t << 4));
        break;
      }
      case R_LAYERNORM_BACKWARD: {
        // x, w, dy, dx, D, eps, partials (2·D doubles and 16 bytes per task)
        const D = n(d, 4);
        const row = <usize>s * <usize>D << 2;
        const stride = (<usize>D << 4) + 16;
        layernormBackward(p(d, 0) + row, p(d, 1), p(d, 2) + row, p(d, 3) + row, len, D, f(d, 5), p(d, 6) + <usize>t * stride);
        break;
      }
      case R_CROSS_ENTROPY:
        // logits, targets, V, ignore, partials (one double per task)
        store<f64>(p(d, 4) + (<usize>t << 3), crossEntropyRows(p(d, 0), p(d, 1), s, e, n(d, 2), n(d, 3)));
        break;
      case R_CROSS_ENTROPY_BACKWARD:
        // logits, targets, dloss, dlogits, N, V, ignore
        crossEntropyBackward(p(d, 0), p(d, 1), p(d, 2), p(d, 3), n(d, 4), n(d, 5), n(d, 6), s, e);
        break;
      case R_ROPE:
        // x, positions, y, B, T, H, D, theta, offset, inverse, pairs, scratch (D doubles + 16 bytes per task),
        // freqs (D/2 doubles, or 0: θ^(−2i/D)), scale (on cos and sin)
        rope(
          p(d, 0), p(d, 1), p(d, 2), n(d, 3), n(d, 4), n(d, 5), n(d, 6), f(d, 7), n(d, 8), n(d, 9) != 0, n(d, 10) != 0,
          p(d, 11) + <usize>t * ((<usize>n(d, 6) << 3) + 16), s, e, p(d, 12), f(d, 13),
        );
        break;
      case R_REDUCE_ROWS:
        // x, out, R, C, divisor, per-thread scratch base and stride; units are column blocks
        reduceRows(p(d, 0), p(d, 1), n(d, 2), n(d, 3), f(d, 4), p(d, 5) + <usize>tid * p(d, 6), s, e);
        break;
    }
  }
}
