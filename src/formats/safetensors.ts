/**
 * safetensors reader and writer, browser-safe.
 *
 * Layout (huggingface/safetensors README): u64 little-endian header length N, N bytes of UTF-8 JSON
 * `{ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__"?: { string: string } }`, then the
 * data buffer; offsets are relative to the start of the data buffer, row-major, little-endian.
 */
import {
  ByteReader, FormatError, bf16ToF32, f16ToF32, f16ToF32Table, f32Bytes, f32ToBf16Bytes, f32ToF16Bytes, f32View,
} from './binary.js';

export type SafetensorsDtype =
  | 'F64' | 'F32' | 'F16' | 'BF16' | 'F8_E4M3' | 'F8_E5M2'
  | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

export const SAFETENSORS_DTYPE_SIZE: Readonly<Record<SafetensorsDtype, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
};

/** Dtypes `writeSafetensors` can encode from float32. */
export type SafetensorsWriteDtype = 'F32' | 'F16' | 'BF16' | 'F64';

export interface SafetensorsTensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** Absolute byte offset of the data in the file. */
  readonly offset: number;
  readonly byteLength: number;
  readonly nElements: number;
}

/** A safetensors file's header, without the tensor data (read by offset from a `ByteSource`). */
export interface SafetensorsHeader {
  readonly name: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly tensors: readonly SafetensorsTensorInfo[];
  readonly tensorsByName: ReadonlyMap<string, SafetensorsTensorInfo>;
  readonly dataOffset: number;
  /** Size of the whole file. */
  readonly size: number;
}

/** A safetensors file in memory. */
export interface SafetensorsFile extends SafetensorsHeader {
  readonly bytes: Uint8Array;
}

/** The same limit the reference implementation applies, so a corrupt length cannot allocate gigabytes. */
const MAX_HEADER = 100_000_000;

/** Whether bytes (the start of a file of `size` bytes) look like safetensors: a plausible header length, then '{'. */
export function isSafetensors(bytes: Uint8Array, size = bytes.length): boolean {
  if (bytes.length < 9 || size < 10) return false;
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  return n > 1n && n <= BigInt(Math.min(MAX_HEADER, size - 8)) && bytes[8] === 0x7b;
}

export function parseSafetensors(bytes: Uint8Array, name = 'model.safetensors'): SafetensorsFile {
  return { ...parseSafetensorsHeader(bytes, name), bytes };
}

/**
 * Parse the header of a safetensors file of `size` bytes from its first bytes `prefix`; throws
 * `NeedMoreBytes` when the header runs past the prefix.
 */
export function parseSafetensorsHeader(prefix: Uint8Array, name = 'model.safetensors', size = prefix.length): SafetensorsHeader {
  const bytes = prefix;
  const r: ByteReader = new ByteReader(bytes, name, 0, size);
  const n = r.u64n('header length');
  if (n > MAX_HEADER) r.fail(`header length ${n} is over the ${MAX_HEADER}-byte limit (not a safetensors file?)`);
  if (n > r.remaining) r.fail(`header length is ${n} bytes but only ${r.remaining} bytes follow (truncated or not a safetensors file?)`);
  const text = r.utf8(n, 'JSON header');
  if (!text.startsWith('{')) r.fail(`header does not start with '{' (not a safetensors file?)`);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    r.fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) r.fail('header is not a JSON object');
  const dataOffset = 8 + n;
  const dataLen = size - dataOffset;
  let metadata: Record<string, string> = {};
  const tensors: SafetensorsTensorInfo[] = [];
  for (const [key, raw] of Object.entries(header as Record<string, unknown>)) {
    if (key === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) r.fail('__metadata__ is not an object');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') r.fail(`__metadata__.${k} is not a string`);
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    const t = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof t !== 'object' || t === null) r.fail(`entry for tensor ${key} is not an object`);
    const dtype = t.dtype;
    if (typeof dtype !== 'string') r.fail(`tensor ${key} has no dtype`);
    if (!(dtype in SAFETENSORS_DTYPE_SIZE)) r.fail(`tensor ${key} has unsupported dtype ${dtype} (supported: ${Object.keys(SAFETENSORS_DTYPE_SIZE).join(', ')})`);
    const shape = t.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) r.fail(`tensor ${key} has an invalid shape ${JSON.stringify(shape)}`);
    const offs = t.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      r.fail(`tensor ${key} has invalid data_offsets ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (end < begin) r.fail(`tensor ${key} data_offsets [${begin}, ${end}] end before they begin`);
    let count = 1;
    for (const d of shape as number[]) count *= d;
    const size = SAFETENSORS_DTYPE_SIZE[dtype as SafetensorsDtype];
    if (end - begin !== count * size) {
      r.fail(`tensor ${key} of dtype ${dtype} and shape [${(shape as number[]).join(', ')}] needs ${count * size} bytes but its data_offsets [${begin}, ${end}] span ${end - begin}`);
    }
    if (end > dataLen) {
      r.fail(`tensor ${key} data ends at byte ${dataOffset + end} but the file has ${size} bytes (truncated?)`);
    }
    tensors.push({
      name: key, dtype: dtype as SafetensorsDtype, shape: shape as number[], offset: dataOffset + begin, byteLength: end - begin, nElements: count,
    });
  }
  // As the reference implementation requires, the tensors tile the data buffer exactly: a header length off
  // by even one byte shifts every offset and is caught here instead of reading every weight off by one.
  const byStart = [...tensors].sort((a, b) => a.offset - b.offset || a.byteLength - b.byteLength);
  let end = dataOffset, prev = '';
  for (const t of byStart) {
    if (t.offset !== end) {
      r.fail(t.offset > end
        ? `tensor ${t.name} starts at data byte ${t.offset - dataOffset} but the previous tensor ends at ${end - dataOffset}: the data buffer has a gap (wrong header length or data_offsets?)`
        : `tensor ${prev} overlaps tensor ${t.name} in the data buffer`);
    }
    end = t.offset + t.byteLength;
    prev = t.name;
  }
  if (end !== size) r.fail(`the tensors' data ends at byte ${end} but the file has ${size} bytes (header length ${n} does not match the data_offsets, or trailing bytes)`);
  return { name, metadata, tensors, dataOffset, size, tensorsByName: new Map(tensors.map((t) => [t.name, t])) };
}

export interface SafetensorsReadOptions {
  /** Always return a fresh array; by default aligned F32 data is a view of the file's bytes. */
  copy?: boolean;
}

function f64Bytes(d: Float32Array | Float64Array): Uint8Array {
  const out = new Uint8Array(d.length * 8);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < d.length; i++) dv.setFloat64(8 * i, d[i]!, true);
  return out;
}

/** Decode an F64 or F32 tensor to float64 exactly (state that must survive a round trip bit for bit). */
export function safetensorsTensorToF64(file: SafetensorsFile, tensor: SafetensorsTensorInfo | string): Float64Array {
  const t = typeof tensor === 'string' ? file.tensorsByName.get(tensor) : tensor;
  if (t === undefined) throw new FormatError(file.name, `no tensor named ${tensor as string}`);
  if (t.dtype === 'F32') return Float64Array.from(safetensorsTensorToF32(file, t));
  if (t.dtype !== 'F64') throw new FormatError(file.name, `tensor ${t.name} is ${t.dtype}; expected F64 or F32`);
  const dv = new DataView(file.bytes.buffer, file.bytes.byteOffset, file.bytes.byteLength);
  const a = new Float64Array(t.nElements);
  for (let i = 0; i < a.length; i++) a[i] = dv.getFloat64(t.offset + 8 * i, true);
  return a;
}

/** Decode a tensor to float32 (row-major, as stored). */
export function safetensorsTensorToF32(file: SafetensorsFile, tensor: SafetensorsTensorInfo | string, options: SafetensorsReadOptions = {}): Float32Array {
  const t = typeof tensor === 'string' ? file.tensorsByName.get(tensor) : tensor;
  if (t === undefined) throw new FormatError(file.name, `no tensor named ${tensor as string}`);
  return decodeSafetensorsData(file.bytes, t.offset, t.nElements, t.dtype, options.copy ?? false);
}

/** Decode `n` values of `dtype` starting at byte `o` of `bytes` (F32 is a view when aligned, unless `copy`). */
export function decodeSafetensorsData(bytes: Uint8Array, o: number, n: number, dtype: SafetensorsDtype, copy = true): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = () => new Float32Array(n);
  switch (dtype) {
    case 'F32': return f32View(bytes, o, n, copy);
    case 'F16': return f16ToF32(bytes, o, n);
    case 'BF16': return bf16ToF32(bytes, o, n);
    case 'F64': { const a = out(); for (let i = 0; i < n; i++) a[i] = dv.getFloat64(o + 8 * i, true); return a; }
    case 'F8_E5M2': {
      // E5M2 is the top byte of a binary16.
      const tab = f16ToF32Table();
      const a = out(); for (let i = 0; i < n; i++) a[i] = tab[bytes[o + i]! << 8]!; return a;
    }
    case 'F8_E4M3': { const a = out(); for (let i = 0; i < n; i++) a[i] = e4m3ToNumber(bytes[o + i]!); return a; }
    case 'I64': { const a = out(); for (let i = 0; i < n; i++) a[i] = Number(dv.getBigInt64(o + 8 * i, true)); return a; }
    case 'U64': { const a = out(); for (let i = 0; i < n; i++) a[i] = Number(dv.getBigUint64(o + 8 * i, true)); return a; }
    case 'I32': { const a = out(); for (let i = 0; i < n; i++) a[i] = dv.getInt32(o + 4 * i, true); return a; }
    case 'U32': { const a = out(); for (let i = 0; i < n; i++) a[i] = dv.getUint32(o + 4 * i, true); return a; }
    case 'I16': { const a = out(); for (let i = 0; i < n; i++) a[i] = dv.getInt16(o + 2 * i, true); return a; }
    case 'U16': { const a = out(); for (let i = 0; i < n; i++) a[i] = dv.getUint16(o + 2 * i, true); return a; }
    case 'I8': { const a = out(); for (let i = 0; i < n; i++) a[i] = dv.getInt8(o + i); return a; }
    case 'U8': case 'BOOL': { const a = out(); for (let i = 0; i < n; i++) a[i] = bytes[o + i]!; return a; }
  }
}

/** OCP FP8 E4M3 ("fn": no infinities, S.1111.111 is NaN). */
export function e4m3ToNumber(b: number): number {
  const sign = b & 0x80 ? -1 : 1;
  const exp = (b >> 3) & 15;
  const man = b & 7;
  if (exp === 15 && man === 7) return NaN;
  return sign * (exp === 0 ? man * 2 ** -9 : (1 + man / 8) * 2 ** (exp - 7));
}

export interface SafetensorsWriteTensor {
  shape: readonly number[];
  /** Float64Array data is stored exactly as F64 unless a narrower dtype is named. */
  data: Float32Array | Float64Array;
  /** Storage dtype; default F32 (F64 for Float64Array data), or the writer's `dtype`. */
  dtype?: SafetensorsWriteDtype;
}

export interface SafetensorsWriteOptions {
  /** String key/values stored as `__metadata__` (e.g. `{ format: 'pt' }`). */
  metadata?: Record<string, string>;
  /** Default dtype for tensors that do not name one. */
  dtype?: SafetensorsWriteDtype;
  name?: string;
}

/** Serialise tensors (in name order, as the reference writer does within a dtype). */
export function writeSafetensors(
  tensors: Iterable<[string, SafetensorsWriteTensor]> | Record<string, SafetensorsWriteTensor>,
  options: SafetensorsWriteOptions = {},
): Uint8Array {
  const file = options.name ?? 'output.safetensors';
  const entries = (Symbol.iterator in tensors
    ? [...(tensors as Iterable<[string, SafetensorsWriteTensor]>)]
    : Object.entries(tensors as Record<string, SafetensorsWriteTensor>)
  ).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (options.metadata && Object.keys(options.metadata).length) header.__metadata__ = options.metadata;
  const blobs: Uint8Array[] = [];
  let off = 0;
  for (const [key, t] of entries) {
    if (key === '__metadata__') throw new FormatError(file, 'a tensor cannot be named __metadata__');
    if (key in header) throw new FormatError(file, `tensor ${key} given twice`);
    let n = 1;
    for (const d of t.shape) {
      if (!(Number.isSafeInteger(d) && d >= 0)) throw new FormatError(file, `tensor ${key} has an invalid shape [${t.shape.join(', ')}]`);
      n *= d;
    }
    if (n !== t.data.length) throw new FormatError(file, `tensor ${key}: shape [${t.shape.join(', ')}] has ${n} elements but the data has ${t.data.length}`);
    const dtype = t.dtype ?? (t.data instanceof Float64Array ? 'F64' : options.dtype ?? 'F32');
    const f32 = (): Float32Array => (t.data instanceof Float32Array ? t.data : Float32Array.from(t.data));
    let blob: Uint8Array;
    if (dtype === 'F32') blob = f32Bytes(f32());
    else if (dtype === 'F16') blob = f32ToF16Bytes(f32());
    else if (dtype === 'BF16') blob = f32ToBf16Bytes(f32());
    else if (dtype === 'F64') blob = f64Bytes(t.data);
    else throw new FormatError(file, `tensor ${key}: cannot write dtype ${dtype as string} (supported: F32, F16, BF16, F64)`);
    header[key] = { dtype, shape: [...t.shape], data_offsets: [off, off + blob.length] };
    blobs.push(blob);
    off += blob.length;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  // Pad with spaces so the data buffer starts 8-byte aligned, as the reference writer does.
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let p = 8 + json.length;
  for (const b of blobs) { out.set(b, p); p += b.length; }
  return out;
}
