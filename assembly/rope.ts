// Rotary position embedding on x [B, T, H, D], in float64 like the reference: pair i of position p
// rotates by p·θ^(−2i/D); 'pairs' layout pairs (x[2i], x[2i+1]), 'half' pairs (x[i], x[i + D/2]).
// Positions [t0, t1) of every batch item; cs: scratch for D doubles (the cosines and sines of one position).
// RoPE scaling: freqs (D/2 doubles) replaces θ^(−2i/D) when not 0, and cos and sin are multiplied by scale.
export function rope(
  x: usize, positions: usize, y: usize, B: i32, T: i32, H: i32, D: i32,
  theta: f64, offset: i32, inverse: bool, pairs: bool, cs: usize, t0: i32, t1: i32, freqs: usize, scale: f64,
): void {
  const half = D >> 1;
  const sign: f64 = inverse ? -1 : 1;
  for (let t = t0; t < t1; t++) {
    const p = <f64>(positions ? load<i32>(positions + (<usize>t << 2)) : offset + t);
    for (let i = 0; i < half; i++) {
      if (freqs) {
        const angle = p * load<f64>(freqs + (<usize>i << 3));
        store<f64>(cs + (<usize>i << 4), scale * Math.cos(angle));
        store<f64>(cs + (<usize>i << 4), scale * sign * Math.sin(angle), 8);
        continue;
      }
      const angle = p * Math.pow(theta, <f64>(-2 * i) / <f64>D);
      store<f64>(cs + (<usize>i << 4), Math.cos(angle));
      store<f64>(cs + (<usize>i << 4), sign * Math.sin(angle), 8);
    }
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const o = <usize>((b * T + t) * H + h) * <usize>D << 2;
        const xr = x + o, yr = y + o;
        for (let i = 0; i < half; i++) {
          const c = load<f64>(cs + (<usize>i << 4));
          const s = load<f64>(cs + (<usize>i << 4), 8);
          const k0 = <usize>(pairs ? 2 * i : i) << 2;
          const k1 = <usize>(pairs ? 2 * i + 1 : i + half) << 2;
          const x0 = <f64>load<f32>(xr + k0), x1 = <f64>load<f32>(xr + k1);
          store<f32>(yr + k0, <f32>(x0 * c - x1 * s));
          store<f32>(yr + k1, <f32>(x0 * s + x1 * c));
        }
      }
    }
  }
}
