/**
 * Half-precision floats: IEEE 754 binary16 and bfloat16 (the top 16 bits of a binary32), bit-exact
 * conversions with round-to-nearest-even. Browser-safe, no dependencies.
 */

/** True on every engine we know of; typed-array views of file bytes are only valid when it holds. */
export const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;


let f16Table: Float32Array | null = null;

function buildF16Table(): Float32Array {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const man = h & 0x3ff;
    let v: number;
    if (exp === 0) v = man * 2 ** -24;
    else if (exp === 31) v = man ? NaN : Infinity;
    else v = (1 + man / 1024) * 2 ** (exp - 15);
    t[h] = sign * v;
  }
  return t;
}

/** Lookup table from binary16 bits to value (built on first use; 256 KiB). */
export function f16ToF32Table(): Float32Array {
  return (f16Table ??= buildF16Table());
}

export function f16BitsToNumber(h: number): number {
  return f16ToF32Table()[h & 0xffff]!;
}

const cvtF32 = new Float32Array(1);
const cvtU32 = new Uint32Array(cvtF32.buffer);

/** Round a number to binary16 bits (round to nearest even; overflow to infinity; NaN kept quiet). */
export function numberToF16Bits(x: number): number {
  cvtF32[0] = x;
  const f = cvtU32[0]!;
  const sign = (f >>> 16) & 0x8000;
  const exp = (f >>> 23) & 0xff;
  let man = f & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  // Unbiased exponent, rebiased for binary16.
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal or zero in binary16: shift the full significand (with its implicit 1) into place.
    if (e < -10) return sign;
    man |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = man & ((1 << shift) - 1);
    let h = man >>> shift;
    if (rest > half || (rest === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (man >>> 13);
  const rest = man & 0x1fff;
  // Carry from the mantissa into the exponent is exactly right, including rounding up to infinity.
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++;
  return sign | h;
}

/** Round a number to bfloat16 bits (round to nearest even; NaN kept quiet). */
export function numberToBf16Bits(x: number): number {
  cvtF32[0] = x;
  const f = cvtU32[0]!;
  if ((f & 0x7fffffff) > 0x7f800000) return ((f >>> 16) | 0x40) & 0xffff;
  return ((f + 0x7fff + ((f >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16BitsToNumber(h: number): number {
  cvtU32[0] = (h & 0xffff) << 16;
  return cvtF32[0]!;
}

/** Decode `n` binary16 values starting at byte `offset` of `bytes`. */
export function f16ToF32(bytes: Uint8Array, offset: number, n: number, out: Float32Array = new Float32Array(n)): Float32Array {
  const t = f16ToF32Table();
  if (LITTLE_ENDIAN_HOST && (bytes.byteOffset + offset) % 2 === 0) {
    const src = new Uint16Array(bytes.buffer, bytes.byteOffset + offset, n);
    for (let i = 0; i < n; i++) out[i] = t[src[i]!]!;
  } else {
    for (let i = 0, p = offset; i < n; i++, p += 2) out[i] = t[bytes[p]! | (bytes[p + 1]! << 8)]!;
  }
  return out;
}

/** Decode `n` bfloat16 values starting at byte `offset` of `bytes`. */
export function bf16ToF32(bytes: Uint8Array, offset: number, n: number, out: Float32Array = new Float32Array(n)): Float32Array {
  const dst = new Uint32Array(out.buffer, out.byteOffset, n);
  if (LITTLE_ENDIAN_HOST && (bytes.byteOffset + offset) % 2 === 0) {
    const src = new Uint16Array(bytes.buffer, bytes.byteOffset + offset, n);
    for (let i = 0; i < n; i++) dst[i] = src[i]! << 16;
  } else {
    for (let i = 0, p = offset; i < n; i++, p += 2) dst[i] = (bytes[p]! | (bytes[p + 1]! << 8)) << 16;
  }
  return out;
}

/** Encode floats as little-endian binary16. */
export function f32ToF16Bytes(src: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(src.length * 2);
  for (let i = 0; i < src.length; i++) {
    const h = numberToF16Bits(src[i]!);
    out[2 * i] = h & 0xff;
    out[2 * i + 1] = h >>> 8;
  }
  return out;
}

/** Encode floats as little-endian bfloat16. */
export function f32ToBf16Bytes(src: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(src.length * 2);
  for (let i = 0; i < src.length; i++) {
    const h = numberToBf16Bits(src[i]!);
    out[2 * i] = h & 0xff;
    out[2 * i + 1] = h >>> 8;
  }
  return out;
}
