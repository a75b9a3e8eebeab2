// Mean cross-entropy over rows whose target lies in [0, V) and is not the ignore index.
import { expv, hsum, maxf } from './simd';

// Σ exp(x − m) over n values; float32 lanes flushed to float64 every 256 values so a long vocabulary row
// keeps float32-level relative error. With `store`, x[i] is replaced by exp(x[i] − m).
@inline function sumExp(x: usize, n: i32, m: f32, write: bool): f64 {
  const mv = f32x4.splat(m);
  let total: f64 = 0;
  let i = 0;
  while (i + 4 <= n) {
    let a = f32x4.splat(0);
    const end = min(n, i + 256);
    for (; i + 4 <= end; i += 4) {
      const k = <usize>i << 2;
      const e = expv(f32x4.sub(v128.load(x + k), mv));
      if (write) v128.store(x + k, e);
      a = f32x4.add(a, e);
    }
    total += <f64>hsum(a);
  }
  for (; i < n; i++) {
    const k = <usize>i << 2;
    const e = f32x4.extract_lane(expv(f32x4.splat(load<f32>(x + k) - m)), 0);
    if (write) store<f32>(x + k, e);
    total += <f64>e;
  }
  return total;
}

export function logSumExp(x: usize, n: i32): f64 {
  const m = maxf(x, n);
  return <f64>m + Math.log(sumExp(x, n, m, false));
}

/** exp(x − m) in place; returns the sum. */
export function expInPlace(x: usize, n: i32, m: f32): f64 {
  return sumExp(x, n, m, true);
}

@inline function counts(t: i32, V: i32, ignore: i32): bool {
  return t != ignore && t >= 0 && t < V;
}

function counted(targets: usize, N: i32, V: i32, ignore: i32): i32 {
  let c = 0;
  for (let n = 0; n < N; n++) if (counts(load<i32>(targets + (<usize>n << 2)), V, ignore)) c++;
  return c;
}

/** Σ over rows [r0, r1) that count of lse(row) − row[target], in float64. */
export function crossEntropyRows(logits: usize, targets: usize, r0: i32, r1: i32, V: i32, ignore: i32): f64 {
  let total: f64 = 0;
  for (let n = r0; n < r1; n++) {
    const t = load<i32>(targets + (<usize>n << 2));
    if (!counts(t, V, ignore)) continue;
    const row = logits + ((<usize>n * V) << 2);
    total += logSumExp(row, V) - <f64>load<f32>(row + (<usize>t << 2));
  }
  return total;
}

/** out = (Σ of `parts` row-block totals, in order) / rows that count. */
export function crossEntropyFinish(partials: usize, parts: i32, targets: usize, N: i32, V: i32, ignore: i32, out: usize): void {
  let total: f64 = 0;
  for (let p = 0; p < parts; p++) total += load<f64>(partials + (<usize>p << 3));
  store<f32>(out, <f32>(total / <f64>max(1, counted(targets, N, V, ignore))));
}

// dlogits = (softmax(logits) − onehot(target)) · dloss / count for rows [r0, r1); rows that do not
// count are zero.
export function crossEntropyBackward(
  logits: usize, targets: usize, dlossPtr: usize, dlogits: usize, N: i32, V: i32, ignore: i32, r0: i32, r1: i32,
): void {
  const scale = <f64>load<f32>(dlossPtr) / <f64>max(1, counted(targets, N, V, ignore));
  const sf = <f32>scale;
  const sv = f32x4.splat(sf);
  for (let n = r0; n < r1; n++) {
    const t = load<i32>(targets + (<usize>n << 2));
    const row = logits + ((<usize>n * V) << 2);
    const drow = dlogits + ((<usize>n * V) << 2);
    if (!counts(t, V, ignore)) {
      memory.fill(drow, 0, <usize>V << 2);
      continue;
    }
    const lse = <f32>logSumExp(row, V);
    const lv = f32x4.splat(lse);
    let j = 0;
    for (; j + 4 <= V; j += 4) {
      const k = <usize>j << 2;
      v128.store(drow + k, f32x4.mul(expv(f32x4.sub(v128.load(row + k), lv)), sv));
    }
    for (; j < V; j++) {
      const k = <usize>j << 2;
      store<f32>(drow + k, f32x4.extract_lane(expv(f32x4.splat(load<f32>(row + k) - lse)), 0) * sf);
    }
    const pt = f32x4.extract_lane(expv(f32x4.splat(load<f32>(row + (<usize>t << 2)) - lse)), 0);
    store<f32>(drow + (<usize>t << 2), (pt - 1) * sf);
  }
}
