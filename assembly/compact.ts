// Compact frozen weights, read where they lie: binary16, bfloat16 and the planar q8_0 / q4_0 / q4_1
// layouts of src/quant/codec.ts (quants first, then one float32 scale per block of 32 elements — for q4_1
// a scale and a minimum; `scales` points at the first scale). Every value a kernel sees is the exact
// dequantised weight: binary16 and bfloat16 widen exactly, scale · q is exact in float32 (a scale has at
// most 17 significant bits, q at most 8), so q4_1's scale · q + min rounds once, as the codec's does.
// Kernels that take a `type` accept DT_F32 too, so one body serves plain weights.
//
// Why widen to float32 rather than multiply integers (quantising each 32-block of activations to int8,
// as llama.cpp does): measured on one-token decoding (x·Wᵀ, W [4864, 896]), i16 and relaxed i8×i7 dot
// products ran 3.5–4.5× faster than this path, but the int8 activations give errors of about 1% of the
// result (up to 5e-3·Σ|a·w|), far outside the matmul contract (K·2^-22·Σ|a·w|); and Node 20's baseline
// compiler computes relaxed_dot_i8x16_i7x16 differently from its optimising one. With 512 rows the
// widening costs under 10% against the float32 product, as the packed panels are reused by every row.

export const DT_F32 = 0;
export const DT_F16 = 1;
export const DT_BF16 = 2;
export const DT_Q8_0 = 3;
export const DT_Q4_0 = 4;
export const DT_Q4_1 = 5;

// binary16 bits in the low half of each i32 lane → float32, exact for every input: normals by moving
// the exponent bias (15 → 127), subnormals as m · 2^-24 (no float32 subnormal operand, which costs a
// microcode assist on x86), infinities and NaNs by moving the exponent once more to 255.
@inline function halfToF32x4(h: v128): v128 {
  const em = v128.and(h, i32x4.splat(0x7fff));
  const sign = i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16);
  let r = i32x4.add(i32x4.shl(em, 13), i32x4.splat(0x38000000));
  r = i32x4.add(r, v128.and(i32x4.gt_s(em, i32x4.splat(0x7bff)), i32x4.splat(0x38000000)));
  const sub = f32x4.mul(f32x4.convert_i32x4_s(em), f32x4.splat(5.9604644775390625e-8));
  return v128.or(v128.bitselect(sub, r, i32x4.lt_s(em, i32x4.splat(0x400))), sign);
}

@inline function halfToF32(h: u32): f32 {
  const em = h & 0x7fff;
  const sign = (h & 0x8000) << 16;
  if (em < 0x400) return reinterpret<f32>(reinterpret<u32>(<f32>em * 5.9604644775390625e-8) | sign);
  let bits = (em << 13) + 0x38000000;
  if (em > 0x7bff) bits += 0x38000000;
  return reinterpret<f32>(bits | sign);
}

// A nibble vector (i16 lanes 0..255 holding whole bytes) → the quants of the low nibbles (elements p < 16
// of a block) or of the high ones: signed for q4_0 (nibble − 8), as stored for q4_1.
@inline function nibbles(raw: v128, high: bool, signed: bool): v128 {
  const q = high ? i16x8.shr_u(raw, 4) : v128.and(raw, i16x8.splat(15));
  return signed ? i16x8.sub(q, i16x8.splat(8)) : q;
}

// Byte offset of element e's block scale: q4_1 keeps (scale, minimum) pairs, the others one scale.
@inline function scaleAt(type: i32, scales: usize, e: usize): usize {
  return scales + (type == DT_Q4_1 ? (e >> 5) << 3 : (e >> 5) << 2);
}

@inline function blockScale(type: i32, scales: usize, e: usize): v128 {
  return f32x4.splat(load<f32>(scaleAt(type, scales, e)));
}

// scale · q (+ min for q4_1), four lanes of int32 quants.
@inline function scaled(type: i32, q32: v128, scales: usize, e: usize): v128 {
  const v = f32x4.mul(f32x4.convert_i32x4_s(q32), blockScale(type, scales, e));
  return type == DT_Q4_1 ? f32x4.add(v, f32x4.splat(load<f32>(scaleAt(type, scales, e), 4))) : v;
}

/** Element e of a tensor of the given type. */
@inline export function dequantOne(type: i32, base: usize, scales: usize, e: usize): f32 {
  if (type == DT_F32) return load<f32>(base + (e << 2));
  if (type == DT_F16) return halfToF32(load<u16>(base + (e << 1)));
  if (type == DT_BF16) return reinterpret<f32>(<u32>load<u16>(base + (e << 1)) << 16);
  const at = scaleAt(type, scales, e);
  const s = load<f32>(at);
  if (type == DT_Q8_0) return s * <f32>load<i8>(base + e);
  const p = e & 31;
  const byte = <i32>load<u8>(base + ((e >> 5) << 4) + (p & 15));
  const nib = p < 16 ? byte & 15 : byte >> 4;
  if (type == DT_Q4_1) return s * <f32>nib + load<f32>(at, 4);
  return s * <f32>(nib - 8);
}

/** Elements e..e+3 (e a multiple of 4 for the q types, so that all four share a block and a nibble half). */
@inline export function dequant4(type: i32, base: usize, scales: usize, e: usize): v128 {
  if (type == DT_F32) return v128.load(base + (e << 2));
  if (type == DT_F16) return halfToF32x4(v128.load16x4_u(base + (e << 1)));
  if (type == DT_BF16) return i32x4.shl(v128.load16x4_u(base + (e << 1)), 16);
  let q: v128;
  if (type == DT_Q8_0) q = i16x8.extend_low_i8x16_s(v128.load32_zero(base + e));
  else {
    const p = e & 31;
    q = nibbles(i16x8.extend_low_i8x16_u(v128.load32_zero(base + ((e >> 5) << 4) + (p & 15))), p >= 16, type == DT_Q4_0);
  }
  return scaled(type, i32x4.extend_low_i16x8_s(q), scales, e);
}

/** Elements e..e+7 to dst (e a multiple of 8 for the q types). */
@inline export function dequant8(type: i32, base: usize, scales: usize, e: usize, dst: usize): void {
  if (type == DT_F32) {
    memory.copy(dst, base + (e << 2), 32);
    return;
  }
  if (type == DT_F16 || type == DT_BF16) {
    const h = v128.load(base + (e << 1));
    const lo = i32x4.extend_low_i16x8_u(h), hi = i32x4.extend_high_i16x8_u(h);
    v128.store(dst, type == DT_F16 ? halfToF32x4(lo) : i32x4.shl(lo, 16));
    v128.store(dst, type == DT_F16 ? halfToF32x4(hi) : i32x4.shl(hi, 16), 16);
    return;
  }
  let q: v128;
  if (type == DT_Q8_0) q = v128.load8x8_s(base + e);
  else {
    const p = e & 31;
    q = nibbles(v128.load8x8_u(base + ((e >> 5) << 4) + (p & 15)), p >= 16, type == DT_Q4_0);
  }
  v128.store(dst, scaled(type, i32x4.extend_low_i16x8_s(q), scales, e));
  v128.store(dst, scaled(type, i32x4.extend_high_i16x8_s(q), scales, e), 16);
}

@inline function rowT(type: i32, base: usize, scales: usize, e0: usize, n: usize, dst: usize): void {
  let i: usize = 0;
  // Scalar up to a multiple of 8, where eight consecutive quants share a block and a nibble half.
  for (; i < n && ((e0 + i) & 7) != 0; i++) store<f32>(dst + (i << 2), dequantOne(type, base, scales, e0 + i));
  for (; i + 8 <= n; i += 8) dequant8(type, base, scales, e0 + i, dst + (i << 2));
  for (; i < n; i++) store<f32>(dst + (i << 2), dequantOne(type, base, scales, e0 + i));
}

/** dst[0:n] = elements e0..e0+n of a compact tensor, as float32. */
export function dequantRow(type: i32, base: usize, scales: usize, e0: usize, n: usize, dst: usize): void {
  if (type == DT_F16) rowT(DT_F16, base, scales, e0, n, dst);
  else if (type == DT_BF16) rowT(DT_BF16, base, scales, e0, n, dst);
  else if (type == DT_Q8_0) rowT(DT_Q8_0, base, scales, e0, n, dst);
  else if (type == DT_Q4_0) rowT(DT_Q4_0, base, scales, e0, n, dst);
  else if (type == DT_Q4_1) rowT(DT_Q4_1, base, scales, e0, n, dst);
  else memory.copy(dst, base + (e0 << 2), n << 2);
}

/** dst[0:n] = the whole tensor as float32 (the `dequantize` op). */
export function dequantize(type: i32, src: usize, scales: usize, n: i32, dst: usize): void {
  dequantRow(type, src, scales, 0, <usize>n, dst);
}

// out[n] = table[ids[n]] dequantised, or zeros for an id outside [0, V); the table is [V, D].
export function embeddingCompact(type: i32, table: usize, scales: usize, ids: usize, out: usize, n: i32, V: i32, D: i32): void {
  const bytes = <usize>D << 2;
  for (let i = 0; i < n; i++) {
    const id = load<i32>(ids + (<usize>i << 2));
    const dst = out + <usize>i * bytes;
    if (id >= 0 && id < V) dequantRow(type, table, scales, <usize>id * <usize>D, <usize>D, dst);
    else memory.fill(dst, 0, bytes);
  }
}
