/**
 * Shared helpers for the binary model formats: a bounds-checked little-endian reader, half-precision
 * conversions and the error type every loader throws.
 *
 * Everything here is browser-safe (no Node APIs).
 */
import { LITTLE_ENDIAN_HOST } from '../quant/half.js';

export { LITTLE_ENDIAN_HOST };

/** A malformed or unsupported file. The message always starts with the file's display name. */
export class FormatError extends Error {
  readonly file: string;
  readonly problem: string;
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = 'FormatError';
    this.file = file;
    this.problem = problem;
  }
}

const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

/**
 * Thrown by a `ByteReader` over a prefix of a file when it needs bytes past the prefix that the file
 * has: the caller reads at least `needed` bytes and parses again (headers of unknown length).
 */
export class NeedMoreBytes extends Error {
  constructor(readonly needed: number) {
    super(`needs the first ${needed} bytes`);
    this.name = 'NeedMoreBytes';
  }
}

/**
 * Sequential little-endian reader that refuses to read past the end and says what it was reading.
 * `bytes` may be a prefix of a file of `size` bytes; reading past the prefix throws `NeedMoreBytes`.
 */
export class ByteReader {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly file: string;
  /** Size of the whole file (`bytes.length` unless `bytes` is a prefix). */
  readonly size: number;
  pos: number;

  constructor(bytes: Uint8Array, file: string, pos = 0, size = bytes.length) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.file = file;
    this.pos = pos;
    this.size = size;
  }

  /** Bytes of the file after the read position. */
  get remaining(): number {
    return this.size - this.pos;
  }

  fail(problem: string): never {
    throw new FormatError(this.file, problem);
  }

  need(n: number, what: string): void {
    if (n > this.size - this.pos) {
      this.fail(`${what} at byte ${this.pos} needs ${n} bytes but the file has ${this.size} bytes (truncated?)`);
    }
    if (n > this.bytes.length - this.pos) throw new NeedMoreBytes(this.pos + n);
  }

  u8(what: string): number { this.need(1, what); return this.view.getUint8(this.pos++); }
  i8(what: string): number { this.need(1, what); return this.view.getInt8(this.pos++); }
  u16(what: string): number { this.need(2, what); const v = this.view.getUint16(this.pos, true); this.pos += 2; return v; }
  i16(what: string): number { this.need(2, what); const v = this.view.getInt16(this.pos, true); this.pos += 2; return v; }
  u32(what: string): number { this.need(4, what); const v = this.view.getUint32(this.pos, true); this.pos += 4; return v; }
  i32(what: string): number { this.need(4, what); const v = this.view.getInt32(this.pos, true); this.pos += 4; return v; }
  f32(what: string): number { this.need(4, what); const v = this.view.getFloat32(this.pos, true); this.pos += 4; return v; }
  f64(what: string): number { this.need(8, what); const v = this.view.getFloat64(this.pos, true); this.pos += 8; return v; }
  u64(what: string): bigint { this.need(8, what); const v = this.view.getBigUint64(this.pos, true); this.pos += 8; return v; }
  i64(what: string): bigint { this.need(8, what); const v = this.view.getBigInt64(this.pos, true); this.pos += 8; return v; }

  /** A u64 that must fit a JS number exactly (sizes, counts, offsets). */
  u64n(what: string): number {
    const at = this.pos;
    const v = this.u64(what);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} at byte ${at} is ${v}, too large to be real`);
    return Number(v);
  }

  take(n: number, what: string): Uint8Array {
    this.need(n, what);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  utf8(n: number, what: string): string {
    return decodeUtf8(this.take(n, what));
  }
}

/** Lossy UTF-8 decode (invalid sequences become U+FFFD), with a fast path for ASCII. */
export function decodeUtf8(b: Uint8Array): string {
  if (b.length < 32) {
    let ascii = true;
    for (let i = 0; i < b.length; i++) if (b[i]! >= 0x80) { ascii = false; break; }
    if (ascii) return String.fromCharCode.apply(null, b as unknown as number[]);
  }
  return utf8.decode(b);
}

// ---------------------------------------------------------------------------------------------
// Half-precision floats live with the other number formats in src/quant.

export {
  bf16BitsToNumber, bf16ToF32, f16BitsToNumber, f16ToF32, f16ToF32Table, f32ToBf16Bytes, f32ToF16Bytes,
  numberToBf16Bits, numberToF16Bits,
} from '../quant/half.js';

/** Little-endian float32 values read from `bytes` (a view when alignment allows, else a copy). */
export function f32View(bytes: Uint8Array, offset: number, n: number, copy: boolean): Float32Array {
  const at = bytes.byteOffset + offset;
  if (LITTLE_ENDIAN_HOST && at % 4 === 0) {
    const v = new Float32Array(bytes.buffer, at, n);
    return copy ? v.slice() : v;
  }
  const out = new Float32Array(n);
  const dv = new DataView(bytes.buffer, at, n * 4);
  for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
  return out;
}

/** The bytes of a Float32Array as little-endian float32 (no copy on little-endian hosts). */
export function f32Bytes(data: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN_HOST) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.length * 4);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) dv.setFloat32(i * 4, data[i]!, true);
  return out;
}

/**
 * The shortest decimal that rounds to the same float32, so metadata stored as f32 (eps = 1e-5 stored as
 * 9.99999974e-6) reads back as the number its author wrote.
 */
export function shortestF32(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const target = Math.fround(x);
  for (let p = 1; p <= 9; p++) {
    const y = Number(target.toPrecision(p));
    if (Math.fround(y) === target) return y;
  }
  return target;
}

/** Product of a shape's dims (1 for a scalar). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Growable byte sink for writers. */
export class ByteWriter {
  private buf: Uint8Array;
  private dv: DataView;
  length = 0;

  constructor(initial = 1 << 16) {
    this.buf = new Uint8Array(initial);
    this.dv = new DataView(this.buf.buffer);
  }

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.dv = new DataView(next.buffer);
  }

  u8(v: number): void { this.reserve(1); this.dv.setUint8(this.length, v); this.length += 1; }
  i8(v: number): void { this.reserve(1); this.dv.setInt8(this.length, v); this.length += 1; }
  u16(v: number): void { this.reserve(2); this.dv.setUint16(this.length, v, true); this.length += 2; }
  i16(v: number): void { this.reserve(2); this.dv.setInt16(this.length, v, true); this.length += 2; }
  u32(v: number): void { this.reserve(4); this.dv.setUint32(this.length, v, true); this.length += 4; }
  i32(v: number): void { this.reserve(4); this.dv.setInt32(this.length, v, true); this.length += 4; }
  f32(v: number): void { this.reserve(4); this.dv.setFloat32(this.length, v, true); this.length += 4; }
  f64(v: number): void { this.reserve(8); this.dv.setFloat64(this.length, v, true); this.length += 8; }
  u64(v: number | bigint): void { this.reserve(8); this.dv.setBigUint64(this.length, BigInt(v), true); this.length += 8; }
  i64(v: number | bigint): void { this.reserve(8); this.dv.setBigInt64(this.length, BigInt(v), true); this.length += 8; }
  bytes(b: Uint8Array): void { this.reserve(b.length); this.buf.set(b, this.length); this.length += b.length; }
  pad(to: number, fill = 0): void {
    const n = (to - (this.length % to)) % to;
    this.reserve(n);
    this.buf.fill(fill, this.length, this.length + n);
    this.length += n;
  }

  result(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}
