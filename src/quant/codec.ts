/**
 * Encode and decode the compact layouts, and convert GGUF's interleaved blocks to and from them.
 *
 * Layouts for a tensor of n elements, row-major (little-endian, zero-padded to a multiple of 4 bytes):
 * - f16 / bf16: element i at bytes [2i, 2i+2).
 * - q8_0 (planar): int8 quant of element i at byte i; then at byte n one float32 scale per 32-element
 *   block b at n + 4b. value = scale_b · q_i.
 * - q4_0 (planar): block b's 32 nibbles at bytes [16b, 16b+16), byte j holding element 32b+j in its low
 *   nibble and 32b+j+16 in its high one (GGUF's order); then at byte n/2 the float32 scales.
 *   value = scale_b · (nibble − 8).
 * - q4_1 (planar): nibbles as q4_0; then at byte n/2, per block b, a float32 scale (byte n/2 + 8b) and a
 *   float32 minimum (byte n/2 + 8b + 4). value = scale_b · nibble + min_b.
 * q8_0/q4_0 scales are float32 holding a binary16 value, so a GGUF block (binary16 scale, then quants)
 * converts both ways bit for bit; so do GGUF Q4_1 blocks. Quants and scales are apart so kernels read each
 * as an aligned array. Every value is exact in float32: scale · q is (a binary16 scale has 11 significant
 * bits, q at most 8), so `scale · q + min` rounds once, the same with or without a fused multiply-add.
 *
 * Two more GGUF types convert without changing a value: Q5_0 (5-bit quants −16…15 with a binary16 scale)
 * is q8_0, and Q4_K (super-blocks of 256: a binary16 d and dmin, eight 6-bit scales and minimums, 4-bit
 * quants) is q4_1 with scale = d·sc and min = −dmin·m per 32 values — the products ggml's own
 * dequantiser forms (d·sc has at most 17 significant bits, so d·sc·q is exact as well). That q4_1 costs 6
 * bits a weight against Q4_K's 4.5, in exchange for kernels that read one layout for both.
 *
 * Quantising follows ggml's reference code (ggml-quants.c quantize_row_q8_0_ref, quantize_row_q4_0_ref),
 * in float32 arithmetic:
 *   q8_0: d = amax/127, id = 1/d (0 when d = 0), q = roundf(x·id) (halves away from zero).
 *   q4_0: max = the element of largest magnitude (the first one on ties), d = max/−8, id = 1/d,
 *         q = min(15, trunc(x·id + 8.5)).
 * The stored scale is d rounded to binary16 (round to nearest even); the quants use the unrounded id.
 * Error per element (d the float32 scale above, d̂ the stored one, both in the binary16 normal range):
 *   q8_0: |x − d̂·q| ≤ |d|/2 + 127·|d − d̂|;  q4_0: |x − d̂·(q−8)| ≤ |d| + 8·|d − d̂|
 * (q4_0 reaches |d| only where x·id rounds to +8, one step past the largest code 7).
 */
import { LITTLE_ENDIAN_HOST, f16ToF32, bf16ToF32, f16ToF32Table, numberToBf16Bits, numberToF16Bits } from './half.js';
import { type CompactDType, QUANT_BLOCK, compactBytes, isBlockQuant } from './types.js';

/** GGUF type name of each compact type. */
export const GGML_TYPE_OF: Readonly<Record<CompactDType, 'F16' | 'BF16' | 'Q8_0' | 'Q4_0' | 'Q4_1'>> = {
  f16: 'F16', bf16: 'BF16', q8_0: 'Q8_0', q4_0: 'Q4_0', q4_1: 'Q4_1',
};

/** GGUF types a compact layout holds without changing a value: the layout, and bytes and elements per block. */
const LOSSLESS: Readonly<Record<string, { to: CompactDType; unit: number; per: number }>> = {
  F16: { to: 'f16', unit: 2, per: 1 }, BF16: { to: 'bf16', unit: 2, per: 1 },
  Q8_0: { to: 'q8_0', unit: 34, per: 32 }, Q4_0: { to: 'q4_0', unit: 18, per: 32 }, Q4_1: { to: 'q4_1', unit: 20, per: 32 },
  Q5_0: { to: 'q8_0', unit: 22, per: 32 }, Q4_K: { to: 'q4_1', unit: 144, per: 256 },
};

/** The compact type that holds a GGUF type's values exactly, when there is one. */
export function compactOfGgml(typeName: string): CompactDType | undefined {
  return Object.hasOwn(LOSSLESS, typeName) ? LOSSLESS[typeName]!.to : undefined;
}

/** Bytes of n elements in GGUF's block layout (F16/BF16 2n, Q8_0 34 per 32, Q4_0 18 per 32, Q4_1 20 per 32). */
export function ggmlBytes(dtype: CompactDType, n: number): number {
  checkCount(dtype, n);
  const { unit, per } = LOSSLESS[GGML_TYPE_OF[dtype]]!;
  return (n / per) * unit;
}

function checkCount(dtype: CompactDType, n: number): void {
  if (isBlockQuant(dtype) && n % QUANT_BLOCK !== 0) throw new RangeError(`${dtype} needs a multiple of ${QUANT_BLOCK} elements, got ${n}`);
}

function checkLayout(dtype: CompactDType, bytes: Uint8Array, n: number): void {
  const want = compactBytes(dtype, n);
  if (bytes.length !== want) throw new RangeError(`${dtype} layout of ${n} elements is ${want} bytes, got ${bytes.length}`);
}

/** Byte offset of the scales (q4_1: scale and minimum pairs) in a q8_0 / q4_0 / q4_1 layout of n elements. */
export function scalesOffset(dtype: 'q8_0' | 'q4_0' | 'q4_1', n: number): number {
  return dtype === 'q8_0' ? n : n / 2;
}

// ---------------------------------------------------------------------------------------------
// Scales: binary16 bits <-> float32 bits, exact (NaN payloads included) so conversions round-trip.

const cvtF32 = new Float32Array(1);
const cvtU32 = new Uint32Array(cvtF32.buffer);

function halfToFloatBits(h: number): number {
  const sign = (h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (man << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (man << 13)) >>> 0;
  cvtF32[0] = f16ToF32Table()[h]!;
  return cvtU32[0]!;
}

function floatBitsToHalf(f: number): number {
  if ((f & 0x7f800000) === 0x7f800000 && (f & 0x7fffff) !== 0) {
    const payload = (f & 0x7fffff) >>> 13;
    return ((f >>> 16) & 0x8000) | 0x7c00 | (payload || 0x200);
  }
  cvtU32[0] = f;
  return numberToF16Bits(cvtF32[0]!);
}

// ---------------------------------------------------------------------------------------------
// Quantising

const fr = Math.fround;

/**
 * Encode `x` as elements [start, start + x.length) of the `dtype` layout `out` of a tensor of n elements
 * (for q types, start and x.length are multiples of 32). Lets a loader convert a tensor a few rows at a time.
 */
export function quantizeInto(dtype: CompactDType, x: ArrayLike<number>, out: Uint8Array, n: number, start = 0): void {
  const len = x.length;
  checkCount(dtype, n);
  if (start < 0 || start + len > n) throw new RangeError(`quantize: elements [${start}, ${start + len}) are outside a tensor of ${n}`);
  checkLayout(dtype, out, n);
  if (dtype === 'f16' || dtype === 'bf16') {
    const bits = dtype === 'f16' ? numberToF16Bits : numberToBf16Bits;
    for (let i = 0, p = 2 * start; i < len; i++, p += 2) {
      const h = bits(x[i]!);
      out[p] = h & 0xff;
      out[p + 1] = h >>> 8;
    }
    return;
  }
  if (start % QUANT_BLOCK !== 0 || len % QUANT_BLOCK !== 0) throw new RangeError(`quantize ${dtype}: elements [${start}, ${start + len}) do not start and end on 32-element blocks`);
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const sOff = scalesOffset(dtype, n);
  const blk = new Float32Array(QUANT_BLOCK);
  for (let b = 0; b < len / QUANT_BLOCK; b++) {
    for (let j = 0; j < QUANT_BLOCK; j++) blk[j] = x[b * QUANT_BLOCK + j]!;
    const gb = start / QUANT_BLOCK + b;
    let d: number;
    if (dtype === 'q8_0') {
      let amax = 0;
      for (let j = 0; j < QUANT_BLOCK; j++) amax = Math.max(amax, Math.abs(blk[j]!));
      d = fr(amax / 127);
      const id = d ? fr(1 / d) : 0;
      for (let j = 0; j < QUANT_BLOCK; j++) {
        const v = fr(blk[j]! * id);
        dv.setInt8(gb * QUANT_BLOCK + j, Math.sign(v) * Math.floor(Math.abs(v) + 0.5));
      }
    } else if (dtype === 'q4_1') {
      // quantize_row_q4_1_ref: d = (max − min)/15, q = min(15, trunc((x − min)·id + 0.5)).
      let lo = Infinity, hi = -Infinity;
      for (let j = 0; j < QUANT_BLOCK; j++) { lo = Math.min(lo, blk[j]!); hi = Math.max(hi, blk[j]!); }
      d = fr(fr(hi - lo) / 15);
      const id = d ? fr(1 / d) : 0;
      const q = (v: number) => Math.min(15, Math.trunc(fr(fr(fr(v - lo) * id) + 0.5)));
      for (let j = 0; j < QUANT_BLOCK / 2; j++) out[gb * 16 + j] = q(blk[j]!) | (q(blk[j + 16]!) << 4);
      dv.setUint32(sOff + 8 * gb, halfToFloatBits(numberToF16Bits(d)), true);
      dv.setUint32(sOff + 8 * gb + 4, halfToFloatBits(numberToF16Bits(lo)), true);
      continue;
    } else {
      let amax = 0, max = 0;
      for (let j = 0; j < QUANT_BLOCK; j++) {
        const v = blk[j]!;
        if (amax < Math.abs(v)) { amax = Math.abs(v); max = v; }
      }
      d = fr(max / -8);
      const id = d ? fr(1 / d) : 0;
      const q = (v: number) => Math.min(15, Math.trunc(fr(fr(v * id) + 8.5)));
      for (let j = 0; j < QUANT_BLOCK / 2; j++) out[gb * 16 + j] = q(blk[j]!) | (q(blk[j + 16]!) << 4);
    }
    dv.setUint32(sOff + 4 * gb, halfToFloatBits(numberToF16Bits(d)), true);
  }
}

/** Encode float32 values in a compact layout (q types need a multiple of 32 values). */
export function quantize(dtype: CompactDType, x: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(compactBytes(dtype, x.length));
  quantizeInto(dtype, x, out, x.length);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Dequantising

function scalesView(bytes: Uint8Array, at: number, count: number): Float32Array {
  if (LITTLE_ENDIAN_HOST && (bytes.byteOffset + at) % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset + at, count);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Float32Array.from({ length: count }, (_, i) => dv.getFloat32(at + 4 * i, true));
}

/**
 * Decode elements [start, start + count) of the `dtype` layout `bytes` of a tensor of n elements
 * (exact: every stored value is a float32). For q types, start and count are multiples of 32.
 */
export function dequantizeRange(dtype: CompactDType, bytes: Uint8Array, n: number, start: number, count: number, out: Float32Array = new Float32Array(count)): Float32Array {
  checkCount(dtype, n);
  checkLayout(dtype, bytes, n);
  if (start < 0 || start + count > n) throw new RangeError(`dequantize: elements [${start}, ${start + count}) are outside a tensor of ${n}`);
  if (dtype === 'f16') return f16ToF32(bytes, 2 * start, count, out);
  if (dtype === 'bf16') return bf16ToF32(bytes, 2 * start, count, out);
  if (start % QUANT_BLOCK !== 0 || count % QUANT_BLOCK !== 0) throw new RangeError(`dequantize ${dtype}: elements [${start}, ${start + count}) do not start and end on 32-element blocks`);
  const b0 = start / QUANT_BLOCK, nb = count / QUANT_BLOCK;
  if (dtype === 'q4_1') {
    const sm = scalesView(bytes, scalesOffset(dtype, n) + 8 * b0, 2 * nb);
    for (let b = 0; b < nb; b++) {
      const d = sm[2 * b]!, m = sm[2 * b + 1]!, p = (b0 + b) * 16, o = b * QUANT_BLOCK;
      for (let j = 0; j < 16; j++) {
        const v = bytes[p + j]!;
        out[o + j] = d * (v & 15) + m;
        out[o + j + 16] = d * (v >> 4) + m;
      }
    }
    return out;
  }
  const scales = scalesView(bytes, scalesOffset(dtype, n) + 4 * b0, nb);
  if (dtype === 'q8_0') {
    const q = new Int8Array(bytes.buffer, bytes.byteOffset + start, count);
    for (let b = 0; b < nb; b++) {
      const d = scales[b]!;
      for (let j = b * QUANT_BLOCK; j < (b + 1) * QUANT_BLOCK; j++) out[j] = d * q[j]!;
    }
    return out;
  }
  for (let b = 0; b < nb; b++) {
    const d = scales[b]!, p = (b0 + b) * 16, o = b * QUANT_BLOCK;
    for (let j = 0; j < 16; j++) {
      const v = bytes[p + j]!;
      out[o + j] = d * ((v & 15) - 8);
      out[o + j + 16] = d * ((v >> 4) - 8);
    }
  }
  return out;
}

/** Decode a whole compact layout of n elements to float32 (exact). */
export function dequantize(dtype: CompactDType, bytes: Uint8Array, n: number, out?: Float32Array): Float32Array {
  return dequantizeRange(dtype, bytes, n, 0, n, out);
}

// ---------------------------------------------------------------------------------------------
// GGUF blocks <-> planar

/**
 * Convert GGUF data of type `source` (`raw`: F16/BF16 values or whole blocks of Q8_0, Q4_0, Q4_1, Q5_0 or
 * Q4_K; by default the type written for `dtype`) holding elements [start, start + count) into the layout
 * `out` of a tensor of n elements. No value changes: `source` must be one `compactOfGgml` maps to `dtype`.
 */
export function ggmlToCompactInto(dtype: CompactDType, raw: Uint8Array, out: Uint8Array, n: number, start = 0, source: string = GGML_TYPE_OF[dtype]): void {
  checkCount(dtype, n);
  checkLayout(dtype, out, n);
  const src = Object.hasOwn(LOSSLESS, source) ? LOSSLESS[source]! : undefined;
  if (!src || src.to !== dtype) throw new RangeError(`GGUF ${source} data cannot be held as ${dtype} without changing values`);
  const { unit, per } = src;
  if (raw.length % unit !== 0) throw new RangeError(`GGUF ${source} data of ${raw.length} bytes is not whole ${unit}-byte ${per > 1 ? 'blocks' : 'values'}`);
  const count = (raw.length / unit) * per;
  if (start % per !== 0 || start + count > n) throw new RangeError(`GGUF ${source}: elements [${start}, ${start + count}) do not fit a tensor of ${n}`);
  if (!isBlockQuant(dtype)) {
    out.set(raw, 2 * start);
    return;
  }
  const rv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const ov = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const sOff = scalesOffset(dtype, n), b0 = start / QUANT_BLOCK;
  const scaleBits = (p: number) => halfToFloatBits(rv.getUint16(p, true));
  const setF32 = (at: number, v: number) => ov.setFloat32(at, v, true);
  if (source === 'Q4_K') {
    // Super-block: d, dmin (binary16), 12 bytes of 6-bit scales and minimums, then 128 bytes holding four
    // 64-value chunks, each 32 bytes whose low nibbles are the chunk's first 32 values, high ones the next 32.
    for (let sb = 0; sb < raw.length / unit; sb++) {
      const p = sb * unit, d = f16Value(rv.getUint16(p, true)), dmin = f16Value(rv.getUint16(p + 2, true));
      for (let j = 0; j < 8; j++) {
        const [sc, m] = scaleMinK4(raw, p + 4, j);
        const blk = b0 + sb * 8 + j, qs = p + 16 + 32 * (j >> 1), shift = (j & 1) * 4;
        for (let k = 0; k < 16; k++) {
          out[blk * 16 + k] = ((raw[qs + k]! >> shift) & 15) | (((raw[qs + k + 16]! >> shift) & 15) << 4);
        }
        setF32(sOff + 8 * blk, d * sc);
        setF32(sOff + 8 * blk + 4, -(dmin * m));
      }
    }
    return;
  }
  for (let b = 0; b < raw.length / unit; b++) {
    const p = b * unit, blk = b0 + b;
    if (source === 'Q5_0') {
      // d, 32 high bits, then low nibbles as Q4_0: value = d·(q − 16), q of 5 bits.
      ov.setUint32(sOff + 4 * blk, scaleBits(p), true);
      const qh = rv.getUint32(p + 2, true);
      for (let k = 0; k < 16; k++) {
        const v = raw[p + 6 + k]!;
        ov.setInt8(blk * 32 + k, ((v & 15) | (((qh >>> k) & 1) << 4)) - 16);
        ov.setInt8(blk * 32 + k + 16, ((v >> 4) | (((qh >>> (k + 16)) & 1) << 4)) - 16);
      }
    } else if (dtype === 'q4_1') {
      ov.setUint32(sOff + 8 * blk, scaleBits(p), true);
      ov.setUint32(sOff + 8 * blk + 4, scaleBits(p + 2), true);
      out.set(raw.subarray(p + 4, p + 20), blk * 16);
    } else {
      ov.setUint32(sOff + 4 * blk, scaleBits(p), true);
      if (dtype === 'q8_0') out.set(raw.subarray(p + 2, p + 34), blk * QUANT_BLOCK);
      else out.set(raw.subarray(p + 2, p + 18), blk * 16);
    }
  }
}

/** The value of binary16 bits. */
function f16Value(h: number): number {
  cvtU32[0] = halfToFloatBits(h);
  return cvtF32[0]!;
}

/** 6-bit scale and minimum number j of a Q4_K super-block whose scale bytes start at q (ggml's get_scale_min_k4). */
export function scaleMinK4(bytes: Uint8Array, q: number, j: number): [number, number] {
  if (j < 4) return [bytes[q + j]! & 63, bytes[q + j + 4]! & 63];
  return [
    (bytes[q + j + 4]! & 15) | ((bytes[q + j - 4]! >> 6) << 4),
    (bytes[q + j + 4]! >> 4) | ((bytes[q + j]! >> 6) << 4),
  ];
}

/** GGUF data of n elements (by default of the type written for `dtype`) as a compact layout, no value changed. */
export function ggmlToCompact(dtype: CompactDType, raw: Uint8Array, n: number, source: string = GGML_TYPE_OF[dtype]): Uint8Array {
  const src = Object.hasOwn(LOSSLESS, source) ? LOSSLESS[source]! : undefined;
  if (src && n % src.per !== 0) throw new RangeError(`GGUF ${source} needs a multiple of ${src.per} elements, got ${n}`);
  const want = src ? (n / src.per) * src.unit : NaN;
  if (raw.length !== want) throw new RangeError(`GGUF ${source} data of ${n} elements is ${want} bytes, got ${raw.length}`);
  const out = new Uint8Array(compactBytes(dtype, n));
  ggmlToCompactInto(dtype, raw, out, n, 0, source);
  return out;
}

/**
 * Whether a q4_1 layout's scales and minimums are all binary16 values, as GGUF Q4_1 stores them (those
 * converted from Q4_K are float32 products, which Q4_1 cannot hold).
 */
export function q4_1FitsGgml(bytes: Uint8Array, n: number): boolean {
  checkLayout('q4_1', bytes, n);
  const sm = scalesView(bytes, scalesOffset('q4_1', n), 2 * (n / QUANT_BLOCK));
  const u = new Uint32Array(sm.buffer, sm.byteOffset, sm.length);
  for (let i = 0; i < u.length; i++) if (halfToFloatBits(floatBitsToHalf(u[i]!)) !== u[i]) return false;
  return true;
}

/**
 * A compact layout of n elements as GGUF data (F16/BF16 values or Q8_0/Q4_0/Q4_1 blocks); inverse of
 * `ggmlToCompact`. A q4_1 whose scales are not binary16 values (`q4_1FitsGgml`) is refused: Q4_1 would
 * round them.
 */
export function compactToGgml(dtype: CompactDType, bytes: Uint8Array, n: number): Uint8Array {
  checkLayout(dtype, bytes, n);
  const out = new Uint8Array(ggmlBytes(dtype, n));
  if (!isBlockQuant(dtype)) {
    out.set(bytes.subarray(0, 2 * n));
    return out;
  }
  if (dtype === 'q4_1' && !q4_1FitsGgml(bytes, n)) throw new RangeError('q4_1 weights with float32 scales (converted from Q4_K) cannot be written as GGUF Q4_1 without rounding them; write them as F32 or re-quantise');
  const unit = LOSSLESS[GGML_TYPE_OF[dtype]]!.unit;
  const iv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ov = new DataView(out.buffer);
  const sOff = scalesOffset(dtype, n);
  const half = (at: number) => floatBitsToHalf(iv.getUint32(at, true));
  for (let b = 0; b < n / QUANT_BLOCK; b++) {
    const p = b * unit;
    if (dtype === 'q4_1') {
      ov.setUint16(p, half(sOff + 8 * b), true);
      ov.setUint16(p + 2, half(sOff + 8 * b + 4), true);
      out.set(bytes.subarray(b * 16, b * 16 + 16), p + 4);
      continue;
    }
    ov.setUint16(p, half(sOff + 4 * b), true);
    if (dtype === 'q8_0') out.set(bytes.subarray(b * QUANT_BLOCK, (b + 1) * QUANT_BLOCK), p + 2);
    else out.set(bytes.subarray(b * 16, b * 16 + 16), p + 2);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Rows

/**
 * A [rows, cols] compact tensor whose row r is row `from[r]` of the input (for q types cols % 32 == 0,
 * so each row is whole blocks: its quants and its scales move together).
 */
export function gatherRows(dtype: CompactDType, bytes: Uint8Array, rows: number, cols: number, from: ArrayLike<number>): Uint8Array {
  const n = rows * cols;
  if (isBlockQuant(dtype) && cols % QUANT_BLOCK !== 0) throw new RangeError(`${dtype} rows of ${cols} elements are not whole 32-element blocks`);
  checkLayout(dtype, bytes, n);
  if (from.length !== rows) throw new RangeError(`gatherRows: ${from.length} row indices for ${rows} rows`);
  const out = new Uint8Array(bytes.length);
  const regions: [number, number][] = dtype === 'f16' || dtype === 'bf16' ? [[0, 2 * cols]]
    : dtype === 'q8_0' ? [[0, cols], [n, (cols / QUANT_BLOCK) * 4]]
      : [[0, cols / 2], [n / 2, (cols / QUANT_BLOCK) * (dtype === 'q4_1' ? 8 : 4)]];
  for (let r = 0; r < rows; r++) {
    const s = from[r]!;
    if (!(Number.isInteger(s) && s >= 0 && s < rows)) throw new RangeError(`gatherRows: row index ${s} is outside [0, ${rows})`);
    for (const [base, width] of regions) out.set(bytes.subarray(base + s * width, base + (s + 1) * width), base + r * width);
  }
  return out;
}
