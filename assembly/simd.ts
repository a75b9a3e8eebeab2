// Arithmetic shared by every kernel. The relaxed build fuses multiply-add into one rounding (an FMA on
// x86 and ARM); the baseline build rounds twice. Each build is deterministic on its own, so thread
// counts never change a result, but the two builds differ in the last bits.

@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(c, f32x4.mul(a, b));
}

@inline export function hsum(v: v128): f32 {
  // Pairwise, so the order is fixed regardless of how a caller reached v.
  const s = f32x4.add(v, i32x4.shuffle(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}

@inline export function hmax(v: v128): f32 {
  const s = f32x4.max(v, i32x4.shuffle(v, v, 2, 3, 0, 1));
  return max(f32x4.extract_lane(s, 0), f32x4.extract_lane(s, 1));
}

// exp on four lanes, after Cephes expf: exp(x) = 2^n · p(r), n = round(x·log2 e), r = x − n·ln 2 split
// in two constants so r stays exact, p a degree-7 minimax polynomial (about 1 ulp). 2^n is applied as
// two factors so results that underflow to subnormals or overflow to infinity come out as they should.
// Plain mul/add (never relaxed) so both builds agree.
export function expv(x: v128): v128 {
  x = f32x4.max(f32x4.min(x, f32x4.splat(89.0)), f32x4.splat(-104.0));
  const n = f32x4.nearest(f32x4.mul(x, f32x4.splat(1.44269504088896341)));
  let r = f32x4.sub(x, f32x4.mul(n, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  const r2 = f32x4.mul(r, r);
  let p = f32x4.splat(1.9875691500e-4);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.3981999507e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(8.3334519073e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(4.1665795894e-2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.6666665459e-1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(5.0000001201e-1));
  p = f32x4.add(f32x4.add(f32x4.mul(p, r2), r), f32x4.splat(1.0));
  const ni = i32x4.trunc_sat_f32x4_s(n);
  const n1 = i32x4.shr_s(ni, 1);
  const n2 = i32x4.sub(ni, n1);
  const s1 = i32x4.shl(i32x4.add(n1, i32x4.splat(127)), 23);
  const s2 = i32x4.shl(i32x4.add(n2, i32x4.splat(127)), 23);
  return f32x4.mul(f32x4.mul(p, s1), s2);
}

// 1 / (1 + e^−x)
@inline export function sigmoidv(x: v128): v128 {
  return f32x4.div(f32x4.splat(1.0), f32x4.add(f32x4.splat(1.0), expv(f32x4.neg(x))));
}

// tanh x = 1 − 2 / (e^2x + 1): saturates to ±1 through exp's overflow and underflow.
@inline export function tanhv(x: v128): v128 {
  const e = expv(f32x4.add(x, x));
  return f32x4.sub(f32x4.splat(1.0), f32x4.div(f32x4.splat(2.0), f32x4.add(e, f32x4.splat(1.0))));
}

/** Σ x[0:n] in float32 lanes; f64 for the lane total. */
export function sumf(x: usize, n: i32): f64 {
  let a0 = f32x4.splat(0), a1 = a0;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    a0 = f32x4.add(a0, v128.load(x + (<usize>i << 2)));
    a1 = f32x4.add(a1, v128.load(x + (<usize>i << 2), 16));
  }
  for (; i + 4 <= n; i += 4) a0 = f32x4.add(a0, v128.load(x + (<usize>i << 2)));
  let s = <f64>hsum(f32x4.add(a0, a1));
  for (; i < n; i++) s += <f64>load<f32>(x + (<usize>i << 2));
  return s;
}

/** max x[0:n] (−∞ for n = 0). */
export function maxf(x: usize, n: i32): f32 {
  let m = f32x4.splat(-Infinity);
  let i = 0;
  for (; i + 4 <= n; i += 4) m = f32x4.max(m, v128.load(x + (<usize>i << 2)));
  let s = hmax(m);
  for (; i < n; i++) s = max(s, load<f32>(x + (<usize>i << 2)));
  return s;
}

/** Σ x[i]·y[i], float32 lanes. */
export function dotf(x: usize, y: usize, n: i32): f32 {
  let a0 = f32x4.splat(0), a1 = a0;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = <usize>i << 2;
    a0 = madd(v128.load(x + o), v128.load(y + o), a0);
    a1 = madd(v128.load(x + o, 16), v128.load(y + o, 16), a1);
  }
  for (; i + 4 <= n; i += 4) a0 = madd(v128.load(x + (<usize>i << 2)), v128.load(y + (<usize>i << 2)), a0);
  let s = hsum(f32x4.add(a0, a1));
  for (; i < n; i++) s += load<f32>(x + (<usize>i << 2)) * load<f32>(y + (<usize>i << 2));
  return s;
}

/** y[0:n] = x[0:n] · c. */
export function scalef(x: usize, y: usize, n: i32, c: f32): void {
  const cv = f32x4.splat(c);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(y + (<usize>i << 2), f32x4.mul(v128.load(x + (<usize>i << 2)), cv));
  for (; i < n; i++) store<f32>(y + (<usize>i << 2), load<f32>(x + (<usize>i << 2)) * c);
}

/** x[0:n] = value, any 4-byte pattern. */
export function fill32(x: usize, n: i32, bits: i32): void {
  const v = i32x4.splat(bits);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(x + (<usize>i << 2), v);
  for (; i < n; i++) store<i32>(x + (<usize>i << 2), bits);
}
