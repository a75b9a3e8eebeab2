// RMSNorm and LayerNorm over the last dimension D, forward and backward, on a block of rows. Row
// statistics use float32 lanes summed in float64; the backward kernels accumulate the weight gradients
// of their block in float64 partials, which sumPartials adds up in a fixed order.
import { hsum, sumf } from './simd';

@inline function sumsq(x: usize, D: i32): f64 {
  let a0 = f32x4.splat(0), a1 = a0;
  let i = 0;
  for (; i + 8 <= D; i += 8) {
    const u = v128.load(x + (<usize>i << 2));
    const w = v128.load(x + (<usize>i << 2), 16);
    a0 = f32x4.add(a0, f32x4.mul(u, u));
    a1 = f32x4.add(a1, f32x4.mul(w, w));
  }
  for (; i + 4 <= D; i += 4) {
    const u = v128.load(x + (<usize>i << 2));
    a0 = f32x4.add(a0, f32x4.mul(u, u));
  }
  let s = <f64>hsum(f32x4.add(a0, a1));
  for (; i < D; i++) {
    const u = load<f32>(x + (<usize>i << 2));
    s += <f64>(u * u);
  }
  return s;
}

// acc[i] += (f64) v[i] for one row; acc holds D doubles.
@inline function addRow64(acc: usize, i: i32, v: v128): void {
  const p = acc + (<usize>i << 3);
  v128.store(p, f64x2.add(v128.load(p), f64x2.promote_low_f32x4(v)));
  v128.store(p, f64x2.add(v128.load(p, 16), f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1))), 16);
}

/** out[i] = Σ_p partial_p[i] over `parts` blocks of D doubles, `stride` bytes apart, in block order. */
export function sumPartials(partials: usize, parts: i32, stride: i32, D: i32, out: usize): void {
  for (let i = 0; i < D; i++) {
    let s: f64 = 0;
    for (let p = 0; p < parts; p++) s += load<f64>(partials + <usize>p * <usize>stride + (<usize>i << 3));
    store<f32>(out + (<usize>i << 2), <f32>s);
  }
}

export function rmsnorm(x: usize, w: usize, y: usize, rows: i32, D: i32, eps: f64): void {
  const rowBytes = <usize>D << 2;
  for (let row = 0; row < rows; row++) {
    const xr = x + <usize>row * rowBytes;
    const yr = y + <usize>row * rowBytes;
    const r = <f32>(1 / Math.sqrt(sumsq(xr, D) / D + eps));
    const rv = f32x4.splat(r);
    let i = 0;
    for (; i + 4 <= D; i += 4) {
      const k = <usize>i << 2;
      v128.store(yr + k, f32x4.mul(f32x4.mul(v128.load(xr + k), rv), v128.load(w + k)));
    }
    for (; i < D; i++) {
      const k = <usize>i << 2;
      store<f32>(yr + k, load<f32>(xr + k) * r * load<f32>(w + k));
    }
  }
}

// dx_i = r·w_i·dy_i − x_i·r³/D·Σ_j dy_j w_j x_j;  acc_i = Σ_rows dy_i x_i r (D doubles, this block of
// rows; sumPartials adds the blocks into dw).
export function rmsnormBackward(x: usize, w: usize, dy: usize, dx: usize, rows: i32, D: i32, eps: f64, acc: usize): void {
  const rowBytes = <usize>D << 2;
  memory.fill(acc, 0, <usize>D << 3);
  for (let row = 0; row < rows; row++) {
    const xr = x + <usize>row * rowBytes;
    const gr = dy + <usize>row * rowBytes;
    const dr = dx + <usize>row * rowBytes;
    let d0 = f32x4.splat(0);
    let i = 0;
    for (; i + 4 <= D; i += 4) {
      const k = <usize>i << 2;
      d0 = f32x4.add(d0, f32x4.mul(f32x4.mul(v128.load(gr + k), v128.load(w + k)), v128.load(xr + k)));
    }
    let dot = <f64>hsum(d0);
    for (; i < D; i++) {
      const k = <usize>i << 2;
      dot += <f64>(load<f32>(gr + k) * load<f32>(w + k) * load<f32>(xr + k));
    }
    const r64 = 1 / Math.sqrt(sumsq(xr, D) / D + eps);
    const r = <f32>r64;
    const c = <f32>((dot * r64 * r64 * r64) / D);
    const rv = f32x4.splat(r), cv = f32x4.splat(c);
    i = 0;
    for (; i + 4 <= D; i += 4) {
      const k = <usize>i << 2;
      const xv = v128.load(xr + k), gv = v128.load(gr + k);
      v128.store(dr + k, f32x4.sub(f32x4.mul(f32x4.mul(rv, v128.load(w + k)), gv), f32x4.mul(xv, cv)));
      addRow64(acc, i, f32x4.mul(f32x4.mul(gv, xv), rv));
    }
    for (; i < D; i++) {
      const k = <usize>i << 2;
      const xv = load<f32>(xr + k), gv = load<f32>(gr + k);
      store<f32>(dr + k, r * load<f32>(w + k) * gv - xv * c);
      const p = acc + (<usize>i << 3);
      store<f64>(p, load<f64>(p) + <f64>(gv * xv * r));
    }
  }
}

// Mean and 1/σ of one row; the variance is a second pass over x − μ, as in the reference.
@inline function moments(xr: usize, D: i32, eps: f64, out: usize): void {
  const mu = <f32>(sumf(xr, D) / D);
  const mv = f32x4.splat(mu);
  let a0 = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= D; i += 4) {
    const u = f32x4.sub(v128.load(xr + (<usize>i << 2)), mv);
    a0 = f32x4.add(a0, f32x4.mul(u, u));
  }
  let v = <f64>hsum(a0);
  for (; i < D; i++) {
    const u = load<f32>(xr + (<usize>i << 2)) - mu;
    v += <f64>(u * u);
  }
  store<f32>(out, mu);
  store<f32>(out, <f32>(1 / Math.sqrt(v / D + eps)), 4);
}

export function layernorm(x: usize, w: usize, b: usize, y: usize, rows: i32, D: i32, eps: f64, tmp: usize): void {
  const rowBytes = <usize>D << 2;
  for (let row = 0; row < rows; row++) {
    const xr = x + <usize>row * rowBytes;
    const yr = y + <usize>row * rowBytes;
    moments(xr, D, eps, tmp);
    const mu = load<f32>(tmp), r = load<f32>(tmp, 4);
    const mv = f32x4.splat(mu), rv = f32x4.splat(r);
    let i = 0;
    for (; i + 4 <= D; i += 4) {
      const k = <usize>i << 2;
      const xh = f32x4.mul(f32x4.sub(v128.load(xr + k), mv), rv);
      v128.store(yr + k, f32x4.add(f32x4.mul(xh, v128.load(w + k)), v128.load(b + k)));
    }
    for (; i < D; i++) {
      const k = <usize>i << 2;
      store<f32>(yr + k, (load<f32>(xr + k) - mu) * r * load<f32>(w + k) + load<f32>(b + k));
    }
  }
}

// g = dy·w;  dx = r·(g − mean(g) − x̂·mean(g·x̂));  partial dw = Σ dy·x̂ and db = Σ dy over this block
// of rows. acc: 2·D doubles (dw, then db), then 2 floats of scratch.
export function layernormBackward(x: usize, w: usize, dy: usize, dx: usize, rows: i32, D: i32, eps: f64, acc: usize): void {
  const rowBytes = <usize>D << 2;
  const accW = acc;
  const accB = acc + (<usize>D << 3);
  const tmp = accB + (<usize>D << 3);
  memory.fill(acc, 0, <usize>D << 4);
  for (let row = 0; row < rows; row++) {
    const xr = x + <usize>row * rowBytes;
    const gr = dy + <usize>row * rowBytes;
    const dr = dx + <usize>row * rowBytes;
    moments(xr, D, eps, tmp);
    const mu = load<f32>(tmp), r = load<f32>(tmp, 4);
    const mv = f32x4.splat(mu), rv = f32x4.splat(r);
    let sg = f32x4.splat(0), sgx = sg;
    let i = 0;
    for (; i + 4 <= D; i += 4) {
      const k = <usize>i << 2;
      const xh = f32x4.mul(f32x4.sub(v128.load(xr + k), mv), rv);
      const gv = v128.load(gr + k);
      const g = f32x4.mul(gv, v128.load(w + k));
      sg = f32x4.add(sg, g);
      sgx = f32x4.add(sgx, f32x4.mul(g, xh));
      addRow64(accW, i, f32x4.mul(gv, xh));
      addRow64(accB, i, gv);
    }
    let mg = <f64>hsum(sg), mgx = <f64>hsum(sgx);
    for (; i < D; i++) {
      const k = <usize>i << 2;
      const xh = (load<f32>(xr + k) - mu) * r;
      const gv = load<f32>(gr + k);
      const g = gv * load<f32>(w + k);
      mg += <f64>g;
      mgx += <f64>(g * xh);
      const pw = accW + (<usize>i << 3), pb = accB + (<usize>i << 3);
      store<f64>(pw, load<f64>(pw) + <f64>(gv * xh));
      store<f64>(pb, load<f64>(pb) + <f64>gv);
    }
    const mgf = <f32>(mg / D), mgxf = <f32>(mgx / D);
    const mgv = f32x4.splat(mgf), mgxv = f32x4.splat(mgxf);
    i = 0;
    for (; i + 4 <= D; i += 4) {
      const k = <usize>i << 2;
      const xh = f32x4.mul(f32x4.sub(v128.load(xr + k), mv), rv);
      const g = f32x4.mul(v128.load(gr + k), v128.load(w + k));
      v128.store(dr + k, f32x4.mul(rv, f32x4.sub(f32x4.sub(g, mgv), f32x4.mul(xh, mgxv))));
    }
    for (; i < D; i++) {
      const k = <usize>i << 2;
      const xh = (load<f32>(xr + k) - mu) * r;
      const g = load<f32>(gr + k) * load<f32>(w + k);
      store<f32>(dr + k, r * (g - mgf - xh * mgxf));
    }
  }
}
