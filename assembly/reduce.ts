// sum / mean over axes, accumulated in float64 like the reference.

// acc[out index] += x[i] over the whole input, walking x contiguously. Descriptor (i32 words): acc
// (f64, zeroed by the caller), x, rank, shape[rank], outStride[rank] (0 along reduced axes), then rank
// words of index scratch.
function accumulateInto(d: usize): void {
  const acc = <usize>load<i32>(d);
  const x = <usize>load<i32>(d, 4);
  const r = load<i32>(d, 8);
  const shape = d + 12;
  const so = shape + (<usize>r << 2);
  const idx = so + (<usize>r << 2);
  const last = <usize>(r - 1) << 2;
  const n = load<i32>(shape + last);
  const inner = load<i32>(so + last);
  let outer = 1;
  for (let k = 0; k < r - 1; k++) {
    outer *= load<i32>(shape + (<usize>k << 2));
    store<i32>(idx + (<usize>k << 2), 0);
  }
  let oo: usize = 0;
  for (let t = 0; t < outer; t++) {
    const src = x + ((<usize>t * n) << 2);
    const dst = acc + (oo << 3);
    if (inner == 0) {
      // A reduced run: pairwise f64 lanes, then one add into the output.
      let s0 = f64x2.splat(0), s1 = s0;
      let j = 0;
      for (; j + 4 <= n; j += 4) {
        const v = v128.load(src + (<usize>j << 2));
        s0 = f64x2.add(s0, f64x2.promote_low_f32x4(v));
        s1 = f64x2.add(s1, f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1)));
      }
      const s = f64x2.add(s0, s1);
      let total = f64x2.extract_lane(s, 0) + f64x2.extract_lane(s, 1);
      for (; j < n; j++) total += <f64>load<f32>(src + (<usize>j << 2));
      store<f64>(dst, load<f64>(dst) + total);
    } else {
      for (let j = 0; j < n; j++) {
        const p = dst + (<usize>j << 3);
        store<f64>(p, load<f64>(p) + <f64>load<f32>(src + (<usize>j << 2)));
      }
    }
    for (let k = r - 2; k >= 0; k--) {
      const w = <usize>k << 2;
      const dim = load<i32>(shape + w);
      const v = load<i32>(idx + w) + 1;
      oo += <usize>load<i32>(so + w);
      if (v < dim) {
        store<i32>(idx + w, v);
        break;
      }
      oo -= <usize>(load<i32>(so + w) * dim);
      store<i32>(idx + w, 0);
    }
  }
}

// out[i] = acc[i] / divisor (f64 scratch of outN doubles at acc).
export function reduce(d: usize, out: usize, outN: i32, divisor: f64): void {
  const acc = <usize>load<i32>(d);
  memory.fill(acc, 0, <usize>outN << 3);
  accumulateInto(d);
  for (let i = 0; i < outN; i++) store<f32>(out + (<usize>i << 2), <f32>(load<f64>(acc + (<usize>i << 3)) / divisor));
}

export const COLS = 512;

// The common reduction of a middle or leading axis: x [outer, R, C] summed over R into out [outer, C],
// for column blocks [b0, b1) of COLS columns, numbered across all `outer` items. A block's float64
// accumulators (acc: COLS doubles) stay in L1 while the rows stream past; each column still adds its
// rows in order, as the reference does.
export function reduceRows(x: usize, out: usize, R: i32, C: i32, divisor: f64, acc: usize, b0: i32, b1: i32): void {
  const dv = f64x2.splat(divisor);
  const perItem = (C + COLS - 1) / COLS;
  for (let blk = b0; blk < b1; blk++) {
    const o = blk / perItem;
    const c0 = (blk - o * perItem) * COLS;
    const xo = x + ((<usize>o * R * C) << 2);
    const n = min(COLS, C - c0);
    memory.fill(acc, 0, <usize>n << 3);
    for (let r = 0; r < R; r++) {
      const src = xo + ((<usize>r * C + c0) << 2);
      let j = 0;
      for (; j + 4 <= n; j += 4) {
        const v = v128.load(src + (<usize>j << 2));
        const p = acc + (<usize>j << 3);
        v128.store(p, f64x2.add(v128.load(p), f64x2.promote_low_f32x4(v)));
        v128.store(p, f64x2.add(v128.load(p, 16), f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1))), 16);
      }
      for (; j < n; j++) {
        const p = acc + (<usize>j << 3);
        store<f64>(p, load<f64>(p) + <f64>load<f32>(src + (<usize>j << 2)));
      }
    }
    const dst = out + ((<usize>o * C + c0) << 2);
    let j = 0;
    for (; j + 4 <= n; j += 4) {
      const p = acc + (<usize>j << 3);
      const lo = f32x4.demote_f64x2_zero(f64x2.div(v128.load(p), dv));
      const hi = f32x4.demote_f64x2_zero(f64x2.div(v128.load(p, 16), dv));
      v128.store(dst + (<usize>j << 2), i64x2.shuffle(lo, hi, 0, 2));
    }
    for (; j < n; j++) store<f32>(dst + (<usize>j << 2), <f32>(load<f64>(acc + (<usize>j << 3)) / divisor));
  }
}
