/** Rotary position embedding (wgsl/rope.wgsl). */
import type { KernelImpl } from '../executable.js';
import { threadGrid, UniformWriter } from './util.js';

export const rope: KernelImpl = async (s) => {
  const [B, T, H, D] = s.outShape(0) as [number, number, number, number];
  const half = D / 2;
  const theta = s.attrs.theta as number;
  const offset = (s.attrs.offset as number | undefined) ?? 0;
  const sign = s.attrs.inverse === true ? -1 : 1;
  const { grid, stride } = threadGrid(s, B * T * H * half, 256);
  const p = s.uniform(new UniformWriter().u32(B, T, H, D).f32(sign).u32(stride, 0, 0).bytes());
  const constants = { HALF_LAYOUT: s.attrs.layout === 'half' };
  // Frequencies θ^(−2i/D) in float64, as the reference computes them.
  // RoPE scaling: a per-pair table replaces them, and cos and sin carry the factor `scale` (in the dynamic
  // kernel on level 0 only: the angle-sum composition is bilinear, so the product carries it once).
  const table = s.attrs.freqs as number[] | undefined, m = table ? ((s.attrs.scale as number | undefined) ?? 1) : 1;
  const freq = table ?? Array.from({ length: half }, (_, i) => Math.pow(theta, (-2 * i) / D));
  if (s.inputCount > 1) {
    // Five levels of 7-bit position digits: entry (level, digit, i) is the rotation by digit·128^level·freq[i].
    const cos = new Float32Array(5 * 128 * half), sin = new Float32Array(5 * 128 * half);
    for (let lv = 0; lv < 5; lv++) {
      for (let digit = 0; digit < 128; digit++) {
        for (let i = 0; i < half; i++) {
          // Reduced modulo 2π in float64 first: digit·128⁴ reaches 2³⁴ radians.
          const angle = (digit * 128 ** lv * freq[i]!) % (2 * Math.PI);
          const f = lv === 0 ? m : 1;
          cos[(lv * 128 + digit) * half + i] = f * Math.cos(angle);
          sin[(lv * 128 + digit) * half + i] = f * Math.sin(angle);
        }
      }
    }
    const k = await s.kernel('rope', 'dynamic', constants);
    s.dispatch(k, {
      p, x: s.input(0), y: s.output(0), positions: s.input(1),
      cosTable: s.constant(cos), sinTable: s.constant(sin),
    }, grid);
    return;
  }
  // Positions are offset + t, known now: the whole cos/sin table is computed in float64 and rounded once.
  const cos = new Float32Array(T * half), sin = new Float32Array(T * half);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const angle = (offset + t) * freq[i]!;
      cos[t * half + i] = m * Math.cos(angle);
      sin[t * half + i] = m * Math.sin(angle);
    }
  }
  const k = await s.kernel('rope', 'table', constants);
  s.dispatch(k, { p, x: s.input(0), y: s.output(0), cosTable: s.constant(cos), sinTable: s.constant(sin) }, grid);
};
