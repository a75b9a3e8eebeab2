/**
 * GGUF reader and writer (versions 2 and 3), browser-safe.
 *
 * Layout (little-endian; see ggml's docs/gguf.md):
 *   magic "GGUF", u32 version, u64 tensor_count, u64 metadata_kv_count,
 *   metadata: { string key, u32 value_type, value }*,
 *   tensor infos: { string name, u32 n_dims, u64 ne[n_dims] (innermost first), u32 ggml_type, u64 offset }*,
 *   padding to `general.alignment` (default 32), tensor data (offsets relative to here, each aligned).
 * A string is a u64 byte length and UTF-8 bytes; an array is u32 item type, u64 count, items.
 */
import {
  ByteReader, ByteWriter, FormatError, bf16ToF32, f16ToF32, f16ToF32Table,
  f32Bytes, f32ToBf16Bytes, f32ToF16Bytes, f32View, numberToF16Bits,
} from './binary.js';
import { GGML_TYPE_OF, compactToGgml, quantize, scaleMinK4 } from '../quant/codec.js';
import { type CompactDType, compactBytes } from '../quant/types.js';

export const GGUF_MAGIC = 'GGUF';
export const GGUF_DEFAULT_ALIGNMENT = 32;

// ---------------------------------------------------------------------------------------------
// Metadata values

export type GgufScalarType =
  | 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32'
  | 'bool' | 'string' | 'uint64' | 'int64' | 'float64';
export type GgufValueType = GgufScalarType | 'array';

/** Value type ids in file order (id = index). */
const VALUE_TYPES: readonly GgufValueType[] = [
  'uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32', 'float32', 'bool', 'string', 'array', 'uint64', 'int64', 'float64',
];

export type GgufArrayItems =
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array
  | BigUint64Array | BigInt64Array | boolean[] | string[] | GgufArrayValue[];

export interface GgufArrayValue {
  type: 'array';
  itemType: GgufValueType;
  value: GgufArrayItems;
}

/** A metadata value with its exact on-disk type, so a read → write round trip keeps it. */
export type GgufValue =
  | { type: 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'float64'; value: number }
  | { type: 'uint64' | 'int64'; value: bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | GgufArrayValue;

/** Constructors for typed metadata values (for writers). */
export const gguf = {
  u8: (value: number): GgufValue => ({ type: 'uint8', value }),
  i8: (value: number): GgufValue => ({ type: 'int8', value }),
  u16: (value: number): GgufValue => ({ type: 'uint16', value }),
  i16: (value: number): GgufValue => ({ type: 'int16', value }),
  u32: (value: number): GgufValue => ({ type: 'uint32', value }),
  i32: (value: number): GgufValue => ({ type: 'int32', value }),
  f32: (value: number): GgufValue => ({ type: 'float32', value }),
  f64: (value: number): GgufValue => ({ type: 'float64', value }),
  u64: (value: bigint | number): GgufValue => ({ type: 'uint64', value: BigInt(value) }),
  i64: (value: bigint | number): GgufValue => ({ type: 'int64', value: BigInt(value) }),
  bool: (value: boolean): GgufValue => ({ type: 'bool', value }),
  str: (value: string): GgufValue => ({ type: 'string', value }),
  strings: (value: string[]): GgufValue => ({ type: 'array', itemType: 'string', value }),
  f32s: (value: ArrayLike<number>): GgufValue => ({ type: 'array', itemType: 'float32', value: Float32Array.from(value) }),
  i32s: (value: ArrayLike<number>): GgufValue => ({ type: 'array', itemType: 'int32', value: Int32Array.from(value) }),
  u32s: (value: ArrayLike<number>): GgufValue => ({ type: 'array', itemType: 'uint32', value: Uint32Array.from(value) }),
} as const;

/** The plain JS value of a metadata entry (numbers, bigints, strings, typed arrays). */
export function ggufPlain(v: GgufValue): unknown {
  return v.type === 'array' && v.itemType === 'array'
    ? (v.value as GgufArrayValue[]).map(ggufPlain)
    : v.value;
}

// ---------------------------------------------------------------------------------------------
// Tensor types

export interface GgmlTypeInfo {
  readonly id: number;
  readonly name: string;
  /** Elements per block (1 for plain types). */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly typeSize: number;
}

/** ggml tensor types with their block geometry (ggml.h, ggml.c type_traits). */
export const GGML_TYPES: ReadonlyMap<number, GgmlTypeInfo> = new Map(
  ([
    [0, 'F32', 1, 4], [1, 'F16', 1, 2], [2, 'Q4_0', 32, 18], [3, 'Q4_1', 32, 20],
    [6, 'Q5_0', 32, 22], [7, 'Q5_1', 32, 24], [8, 'Q8_0', 32, 34], [9, 'Q8_1', 32, 36],
    [10, 'Q2_K', 256, 84], [11, 'Q3_K', 256, 110], [12, 'Q4_K', 256, 144], [13, 'Q5_K', 256, 176],
    [14, 'Q6_K', 256, 210], [15, 'Q8_K', 256, 292], [16, 'IQ2_XXS', 256, 66], [17, 'IQ2_XS', 256, 74],
    [18, 'IQ3_XXS', 256, 98], [19, 'IQ1_S', 256, 50], [20, 'IQ4_NL', 32, 18], [21, 'IQ3_S', 256, 110],
    [22, 'IQ2_S', 256, 82], [23, 'IQ4_XS', 256, 136], [24, 'I8', 1, 1], [25, 'I16', 1, 2],
    [26, 'I32', 1, 4], [27, 'I64', 1, 8], [28, 'F64', 1, 8], [29, 'IQ1_M', 256, 56],
    [30, 'BF16', 1, 2], [34, 'TQ1_0', 256, 54], [35, 'TQ2_0', 256, 66], [39, 'MXFP4', 32, 17],
  ] as const).map(([id, name, blockSize, typeSize]) => [id, { id, name, blockSize, typeSize }]),
);

export const GGML_TYPE_ID: Readonly<Record<string, number>> = Object.fromEntries(
  [...GGML_TYPES.values()].map((t) => [t.name, t.id]),
);

/** Types `ggufTensorToF32` can decode. */
export const GGUF_DECODABLE_TYPES: readonly string[] = [
  'F32', 'F16', 'BF16', 'F64', 'I8', 'I16', 'I32', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q8_0', 'Q8_1',
  'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'Q8_K',
];

/** Types `writeGguf` can encode. */
export type GgufWriteType = 'F32' | 'F16' | 'BF16' | 'Q8_0' | 'Q4_0' | 'Q4_1';

// ---------------------------------------------------------------------------------------------
// Reading

export interface GgufTensorInfo {
  readonly name: string;
  /** GGUF's ne: innermost (contiguous) dimension first, as stored. */
  readonly dims: readonly number[];
  /** Row-major shape, outermost first (`dims` reversed): an [out, in] matrix. */
  readonly shape: readonly number[];
  readonly type: number;
  readonly typeName: string;
  /** Absolute byte offset of the data in the file. */
  readonly offset: number;
  readonly byteLength: number;
  readonly nElements: number;
}

/** A GGUF file's header and tensor table, without the tensor data (read by offset from a `ByteSource`). */
export interface GgufHeader {
  /** Display name used in error messages. */
  readonly name: string;
  readonly version: number;
  readonly alignment: number;
  readonly metadata: ReadonlyMap<string, GgufValue>;
  readonly tensors: readonly GgufTensorInfo[];
  readonly tensorsByName: ReadonlyMap<string, GgufTensorInfo>;
  /** Absolute byte offset where tensor data starts. */
  readonly dataOffset: number;
  /** Size of the whole file. */
  readonly size: number;
}

/** A GGUF file in memory. */
export interface GgufFile extends GgufHeader {
  readonly bytes: Uint8Array;
}

const MIN_ITEM_BYTES: Record<GgufValueType, number> = {
  uint8: 1, int8: 1, bool: 1, uint16: 2, int16: 2, uint32: 4, int32: 4, float32: 4,
  uint64: 8, int64: 8, float64: 8, string: 8, array: 12,
};

function readValueType(r: ByteReader, what: string): GgufValueType {
  const at = r.pos;
  const id = r.u32(what);
  const t = VALUE_TYPES[id];
  if (t === undefined) r.fail(`${what} at byte ${at} has unknown value type ${id}`);
  return t;
}

function readString(r: ByteReader, what: string): string {
  const at = r.pos;
  const n = r.u64n(`length of ${what}`);
  if (n > r.remaining) r.fail(`${what} at byte ${at} claims ${n} bytes but only ${r.remaining} remain (truncated?)`);
  return r.utf8(n, what);
}

function readArray(r: ByteReader, what: string, depth: number): GgufArrayValue {
  if (depth > 8) r.fail(`${what}: arrays nested too deeply`);
  const itemType = readValueType(r, `item type of ${what}`);
  const at = r.pos;
  const count = r.u64n(`item count of ${what}`);
  if (count * MIN_ITEM_BYTES[itemType] > r.remaining) {
    r.fail(`${what} at byte ${at} claims ${count} items of ${itemType} but only ${r.remaining} bytes remain (truncated?)`);
  }
  let value: GgufArrayItems;
  const fixed = (Ctor: { new (n: number): any; BYTES_PER_ELEMENT: number }, get: (dv: DataView, p: number) => number | bigint) => {
    const out = new Ctor(count);
    const size = Ctor.BYTES_PER_ELEMENT;
    r.need(count * size, what);
    for (let i = 0, p = r.pos; i < count; i++, p += size) out[i] = get(r.view, p);
    r.pos += count * size;
    return out;
  };
  switch (itemType) {
    case 'uint8': value = r.take(count, what).slice(); break;
    case 'int8': value = new Int8Array(r.take(count, what).slice().buffer); break;
    case 'uint16': value = fixed(Uint16Array, (d, p) => d.getUint16(p, true)); break;
    case 'int16': value = fixed(Int16Array, (d, p) => d.getInt16(p, true)); break;
    case 'uint32': value = fixed(Uint32Array, (d, p) => d.getUint32(p, true)); break;
    case 'int32': value = fixed(Int32Array, (d, p) => d.getInt32(p, true)); break;
    case 'float32': value = fixed(Float32Array, (d, p) => d.getFloat32(p, true)); break;
    case 'float64': value = fixed(Float64Array, (d, p) => d.getFloat64(p, true)); break;
    case 'uint64': value = fixed(BigUint64Array, (d, p) => d.getBigUint64(p, true)); break;
    case 'int64': value = fixed(BigInt64Array, (d, p) => d.getBigInt64(p, true)); break;
    case 'bool': value = Array.from(r.take(count, what), (b) => b !== 0); break;
    case 'string': {
      const out: string[] = new Array(count);
      for (let i = 0; i < count; i++) out[i] = readString(r, `${what}[${i}]`);
      value = out;
      break;
    }
    case 'array': {
      const out: GgufArrayValue[] = new Array(count);
      for (let i = 0; i < count; i++) out[i] = readArray(r, `${what}[${i}]`, depth + 1);
      value = out;
      break;
    }
  }
  return { type: 'array', itemType, value };
}

function readValue(r: ByteReader, type: GgufValueType, what: string): GgufValue {
  switch (type) {
    case 'uint8': return { type, value: r.u8(what) };
    case 'int8': return { type, value: r.i8(what) };
    case 'uint16': return { type, value: r.u16(what) };
    case 'int16': return { type, value: r.i16(what) };
    case 'uint32': return { type, value: r.u32(what) };
    case 'int32': return { type, value: r.i32(what) };
    case 'float32': return { type, value: r.f32(what) };
    case 'float64': return { type, value: r.f64(what) };
    case 'uint64': return { type, value: r.u64(what) };
    case 'int64': return { type, value: r.i64(what) };
    case 'bool': {
      const at = r.pos;
      const b = r.u8(what);
      if (b > 1) r.fail(`${what} at byte ${at} is a bool with value ${b}`);
      return { type, value: b === 1 };
    }
    case 'string': return { type, value: readString(r, what) };
    case 'array': return readArray(r, what, 0);
  }
}

/** Parse a GGUF file's header, metadata and tensor table, validating every size and offset. */
export function parseGguf(bytes: Uint8Array, name = 'model.gguf'): GgufFile {
  return { ...parseGgufHeader(bytes, name), bytes };
}

/**
 * Parse the header of a GGUF file of `size` bytes from its first bytes `prefix`; throws
 * `NeedMoreBytes` when the header runs past the prefix (see `readGgufHeader`).
 */
export function parseGgufHeader(prefix: Uint8Array, name = 'model.gguf', size = prefix.length): GgufHeader {
  const bytes = prefix;
  const r: ByteReader = new ByteReader(bytes, name, 0, size);
  if (size < 4) r.fail(`file has ${size} bytes, too short for a GGUF header (truncated?)`);
  r.need(4, 'magic');
  const magic = String.fromCharCode(bytes[0]!, bytes[1]!, bytes[2]!, bytes[3]!);
  if (magic !== GGUF_MAGIC) {
    r.fail(`not a GGUF file: magic is ${JSON.stringify(magic)} (bytes ${hex(bytes.subarray(0, 4))}), expected "GGUF"`);
  }
  r.pos = 4;
  const version = r.u32('version');
  if (version !== 2 && version !== 3) {
    const swapped = ((version & 0xff) << 24 | (version & 0xff00) << 8 | (version >>> 8) & 0xff00 | version >>> 24) >>> 0;
    if (swapped === 2 || swapped === 3) r.fail(`big-endian GGUF (version ${swapped}) is not supported`);
    r.fail(`unsupported GGUF version ${version} (supported: 2, 3)`);
  }
  const tensorCount = r.u64n('tensor count');
  const kvCount = r.u64n('metadata count');
  // Each entry takes at least 12 (kv) or 24 (tensor) bytes: reject absurd counts before allocating.
  if (kvCount * 13 > r.remaining) r.fail(`metadata count ${kvCount} cannot fit in the ${r.remaining} bytes left of a ${size}-byte file (truncated or corrupt header?)`);
  if (tensorCount * 24 > r.remaining) r.fail(`tensor count ${tensorCount} cannot fit in the ${r.remaining} bytes left of a ${size}-byte file (truncated or corrupt header?)`);

  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = readString(r, `metadata key #${i}`);
    if (metadata.has(key)) r.fail(`metadata key ${JSON.stringify(key)} appears twice`);
    const type = readValueType(r, `type of metadata ${key}`);
    metadata.set(key, readValue(r, type, `metadata ${key}`));
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const al = metadata.get('general.alignment');
  if (al !== undefined) {
    if (al.type !== 'uint32' && al.type !== 'int32' && al.type !== 'uint64') {
      r.fail(`general.alignment has type ${al.type}, expected uint32`);
    }
    const a = Number(al.value);
    if (!(a > 0 && (a & (a - 1)) === 0)) r.fail(`general.alignment is ${a}, not a power of two`);
    alignment = a;
  }

  interface RawInfo { name: string; dims: number[]; type: GgmlTypeInfo; rel: number }
  const raw: RawInfo[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const tname = readString(r, `name of tensor #${i}`);
    if (seen.has(tname)) r.fail(`tensor ${tname} appears twice`);
    seen.add(tname);
    const nDims = r.u32(`dimension count of tensor ${tname}`);
    if (nDims > 4) r.fail(`tensor ${tname} has ${nDims} dimensions (ggml allows at most 4)`);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(r.u64n(`dimension ${d} of tensor ${tname}`));
    const typeId = r.u32(`type of tensor ${tname}`);
    const type = GGML_TYPES.get(typeId);
    if (type === undefined) r.fail(`tensor ${tname} has unknown ggml type ${typeId}`);
    const rel = r.u64n(`data offset of tensor ${tname}`);
    if (rel % alignment !== 0) r.fail(`tensor ${tname} data offset ${rel} is not a multiple of the alignment ${alignment}`);
    raw.push({ name: tname, dims, type, rel });
  }

  const dataOffset = Math.ceil(r.pos / alignment) * alignment;
  if (tensorCount > 0 && dataOffset > size) {
    r.fail(`tensor data should start at byte ${dataOffset} but the file has ${size} bytes (truncated?)`);
  }

  const tensors: GgufTensorInfo[] = raw.map(({ name: tname, dims, type, rel }) => {
    let n = 1;
    for (const d of dims) n *= d;
    if (!Number.isSafeInteger(n)) r.fail(`tensor ${tname} has ${n} elements, too many to be real`);
    if ((dims[0] ?? 1) % type.blockSize !== 0) {
      r.fail(`tensor ${tname} of type ${type.name} has a row of ${dims[0] ?? 1} elements, not a multiple of its block size ${type.blockSize}`);
    }
    const byteLength = (n / type.blockSize) * type.typeSize;
    const offset = dataOffset + rel;
    if (offset + byteLength > size) {
      r.fail(`tensor ${tname} data ends at byte ${offset + byteLength} but the file has ${size} bytes (truncated?)`);
    }
    return {
      name: tname, dims, shape: [...dims].reverse(), type: type.id, typeName: type.name, offset, byteLength, nElements: n,
    };
  });

  const byStart = [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < byStart.length; i++) {
    const prev = byStart[i - 1]!, cur = byStart[i]!;
    if (prev.offset + prev.byteLength > cur.offset && prev.byteLength > 0 && cur.byteLength > 0) {
      r.fail(`tensor ${prev.name} (bytes ${prev.offset}..${prev.offset + prev.byteLength}) overlaps tensor ${cur.name} (starts at byte ${cur.offset})`);
    }
  }

  return {
    name, version, alignment, metadata, tensors, dataOffset, size,
    tensorsByName: new Map(tensors.map((t) => [t.name, t])),
  };
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
}

/** A metadata value as a plain JS value, or undefined when the key is absent. */
export function ggufMeta(file: GgufHeader, key: string): unknown {
  const v = file.metadata.get(key);
  return v === undefined ? undefined : ggufPlain(v);
}

/** A numeric metadata value; throws (naming the file) when present with a non-numeric type. */
export function ggufNumber(file: GgufHeader, key: string): number | undefined;
export function ggufNumber(file: GgufHeader, key: string, fallback: number): number;
export function ggufNumber(file: GgufHeader, key: string, fallback?: number): number | undefined {
  const v = file.metadata.get(key);
  if (v === undefined) return fallback;
  if (typeof v.value === 'number') return v.value;
  if (typeof v.value === 'bigint') return Number(v.value);
  throw new FormatError(file.name, `metadata ${key} has type ${v.type}, expected a number`);
}

export interface TensorReadOptions {
  /**
   * Always return a fresh array. By default an aligned F32 tensor is returned as a view of the file's
   * bytes (no copy), so writing into it writes into the caller's buffer.
   */
  copy?: boolean;
}

/** Decode a tensor to float32 (dequantising block types), in stored order. */
export function ggufTensorToF32(file: GgufFile, tensor: GgufTensorInfo | string, options: TensorReadOptions = {}): Float32Array {
  const t = typeof tensor === 'string' ? file.tensorsByName.get(tensor) : tensor;
  if (t === undefined) throw new FormatError(file.name, `no tensor named ${tensor as string}`);
  return decodeGgmlData(file.bytes, t.offset, t.nElements, t.typeName, file.name, t.name, options.copy ?? false);
}

/**
 * Decode `n` elements of ggml type `typeName` starting at `offset` of `bytes`. Block layouts follow
 * ggml-common.h (block_q8_0 etc.); each block begins with its scale(s) as binary16.
 */
export function decodeGgmlData(
  bytes: Uint8Array, offset: number, n: number, typeName: string, file = 'data', tensor = 'tensor', copy = true,
): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h = f16ToF32Table();
  const half = (p: number) => h[dv.getUint16(p, true)]!;
  switch (typeName) {
    case 'F32': return f32View(bytes, offset, n, copy);
    case 'F16': return f16ToF32(bytes, offset, n);
    case 'BF16': return bf16ToF32(bytes, offset, n);
    case 'F64': { const o = new Float32Array(n); for (let i = 0; i < n; i++) o[i] = dv.getFloat64(offset + 8 * i, true); return o; }
    case 'I8': { const o = new Float32Array(n); for (let i = 0; i < n; i++) o[i] = dv.getInt8(offset + i); return o; }
    case 'I16': { const o = new Float32Array(n); for (let i = 0; i < n; i++) o[i] = dv.getInt16(offset + 2 * i, true); return o; }
    case 'I32': { const o = new Float32Array(n); for (let i = 0; i < n; i++) o[i] = dv.getInt32(offset + 4 * i, true); return o; }
    case 'Q8_0': case 'Q8_1': {
      const o = new Float32Array(n);
      const bs = typeName === 'Q8_0' ? 34 : 36, qOff = typeName === 'Q8_0' ? 2 : 4;
      for (let b = 0, p = offset; b < n / 32; b++, p += bs) {
        const d = half(p);
        for (let j = 0; j < 32; j++) o[b * 32 + j] = dv.getInt8(p + qOff + j) * d;
      }
      return o;
    }
    case 'Q4_0': case 'Q4_1': {
      const o = new Float32Array(n);
      const q41 = typeName === 'Q4_1';
      const bs = q41 ? 20 : 18;
      for (let b = 0, p = offset; b < n / 32; b++, p += bs) {
        const d = half(p);
        const m = q41 ? half(p + 2) : -8 * d;
        const qs = p + (q41 ? 4 : 2);
        for (let j = 0; j < 16; j++) {
          const q = bytes[qs + j]!;
          o[b * 32 + j] = (q & 15) * d + m;
          o[b * 32 + j + 16] = (q >> 4) * d + m;
        }
      }
      return o;
    }
    case 'Q5_0': case 'Q5_1': {
      const o = new Float32Array(n);
      const q51 = typeName === 'Q5_1';
      const bs = q51 ? 24 : 22;
      for (let b = 0, p = offset; b < n / 32; b++, p += bs) {
        const d = half(p);
        const m = q51 ? half(p + 2) : -16 * d;
        const hp = p + (q51 ? 4 : 2);
        const qh = dv.getUint32(hp, true);
        const qs = hp + 4;
        for (let j = 0; j < 16; j++) {
          const q = bytes[qs + j]!;
          const lo = (q & 15) | (((qh >>> j) & 1) << 4);
          const hi = (q >> 4) | (((qh >>> (j + 16)) & 1) << 4);
          o[b * 32 + j] = lo * d + m;
          o[b * 32 + j + 16] = hi * d + m;
        }
      }
      return o;
    }
    case 'Q2_K': return dequantQ2K(bytes, offset, n, half);
    case 'Q3_K': return dequantQ3K(bytes, dv, offset, n, half);
    case 'Q4_K': case 'Q5_K': return dequantQ45K(bytes, offset, n, half, typeName === 'Q5_K');
    case 'Q6_K': return dequantQ6K(bytes, dv, offset, n, half);
    case 'Q8_K': {
      const o = new Float32Array(n);
      for (let b = 0, p = offset; b < n / 256; b++, p += 292) {
        const d = dv.getFloat32(p, true);
        for (let j = 0; j < 256; j++) o[b * 256 + j] = dv.getInt8(p + 4 + j) * d;
      }
      return o;
    }
    default:
      throw new FormatError(file, `tensor ${tensor} has type ${typeName}, which cannot be decoded (supported: ${GGUF_DECODABLE_TYPES.join(', ')})`);
  }
}

// K-quants: super-blocks of 256 values (ggml-common.h block_q*_K, dequantize_row_q*_K).

function dequantQ2K(bytes: Uint8Array, offset: number, n: number, half: (p: number) => number): Float32Array {
  const o = new Float32Array(n);
  // block_q2_K: scales[16] (low nibble scale, high nibble min), qs[64] (2-bit), f16 d, f16 dmin.
  for (let b = 0, p = offset; b < n / 256; b++, p += 84) {
    const d = half(p + 80), dmin = half(p + 82);
    let y = b * 256, is = 0;
    for (let half128 = 0; half128 < 2; half128++) {
      const q = p + 16 + half128 * 32;
      for (let shift = 0; shift < 8; shift += 2) {
        for (let part = 0; part < 2; part++) {
          const sc = bytes[p + is++]!;
          const dl = d * (sc & 15), ml = dmin * (sc >> 4);
          for (let l = 0; l < 16; l++) o[y++] = dl * ((bytes[q + part * 16 + l]! >> shift) & 3) - ml;
        }
      }
    }
  }
  return o;
}

function dequantQ3K(bytes: Uint8Array, dv: DataView, offset: number, n: number, half: (p: number) => number): Float32Array {
  const o = new Float32Array(n);
  const sc = new Int8Array(16);
  // block_q3_K: hmask[32] (high bit, set = no offset), qs[64] (low 2 bits), scales[12] (16 6-bit scales), f16 d.
  for (let b = 0, p = offset; b < n / 256; b++, p += 110) {
    const d = half(p + 108);
    const s = p + 96;
    const a0 = dv.getUint32(s, true), a1 = dv.getUint32(s + 4, true), t = dv.getUint32(s + 8, true);
    const k1 = 0x03030303, k2 = 0x0f0f0f0f;
    const w = [
      (a0 & k2) | (((t >>> 0) & k1) << 4),
      (a1 & k2) | (((t >>> 2) & k1) << 4),
      ((a0 >>> 4) & k2) | (((t >>> 4) & k1) << 4),
      ((a1 >>> 4) & k2) | (((t >>> 6) & k1) << 4),
    ];
    for (let i = 0; i < 16; i++) sc[i] = ((w[i >> 2]! >>> (8 * (i & 3))) & 0xff) - 32;
    let y = b * 256, is = 0, m = 1;
    for (let half128 = 0; half128 < 2; half128++) {
      const q = p + 32 + half128 * 32;
      for (let shift = 0; shift < 8; shift += 2, m <<= 1) {
        for (let part = 0; part < 2; part++) {
          const dl = d * sc[is++]!;
          for (let l = 0; l < 16; l++) {
            const k = part * 16 + l;
            const low = (bytes[q + k]! >> shift) & 3;
            o[y++] = dl * (low - (bytes[p + k]! & m ? 0 : 4));
          }
        }
      }
    }
  }
  return o;
}

function dequantQ45K(bytes: Uint8Array, offset: number, n: number, half: (p: number) => number, five: boolean): Float32Array {
  const o = new Float32Array(n);
  // block_q4_K: f16 d, f16 dmin, scales[12], qs[128]; block_q5_K adds qh[32] before qs.
  const bs = five ? 176 : 144;
  for (let b = 0, p = offset; b < n / 256; b++, p += bs) {
    const d = half(p), dmin = half(p + 2);
    const scales = p + 4, qh = p + 16, qs = p + (five ? 48 : 16);
    let y = b * 256;
    for (let j = 0; j < 4; j++) {
      const [s1, m1] = scaleMinK4(bytes, scales, 2 * j);
      const [s2, m2] = scaleMinK4(bytes, scales, 2 * j + 1);
      const d1 = d * s1, c1 = dmin * m1, d2 = d * s2, c2 = dmin * m2;
      const q = qs + 32 * j;
      const u1 = 1 << (2 * j), u2 = 2 << (2 * j);
      for (let l = 0; l < 32; l++) {
        const hb = five && bytes[qh + l]! & u1 ? 16 : 0;
        o[y++] = d1 * ((bytes[q + l]! & 15) + hb) - c1;
      }
      for (let l = 0; l < 32; l++) {
        const hb = five && bytes[qh + l]! & u2 ? 16 : 0;
        o[y++] = d2 * ((bytes[q + l]! >> 4) + hb) - c2;
      }
    }
  }
  return o;
}

function dequantQ6K(bytes: Uint8Array, dv: DataView, offset: number, n: number, half: (p: number) => number): Float32Array {
  const o = new Float32Array(n);
  // block_q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16], f16 d.
  for (let b = 0, p = offset; b < n / 256; b++, p += 210) {
    const d = half(p + 208);
    for (let h = 0; h < 2; h++) {
      const ql = p + 64 * h, qh = p + 128 + 32 * h, sc = p + 192 + 8 * h;
      const y = b * 256 + 128 * h;
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const hb = bytes[qh + l]!;
        const q1 = ((bytes[ql + l]! & 15) | ((hb & 3) << 4)) - 32;
        const q2 = ((bytes[ql + l + 32]! & 15) | (((hb >> 2) & 3) << 4)) - 32;
        const q3 = ((bytes[ql + l]! >> 4) | (((hb >> 4) & 3) << 4)) - 32;
        const q4 = ((bytes[ql + l + 32]! >> 4) | (((hb >> 6) & 3) << 4)) - 32;
        o[y + l] = d * dv.getInt8(sc + is) * q1;
        o[y + l + 32] = d * dv.getInt8(sc + is + 2) * q2;
        o[y + l + 64] = d * dv.getInt8(sc + is + 4) * q3;
        o[y + l + 96] = d * dv.getInt8(sc + is + 6) * q4;
      }
    }
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// Writing

/**
 * A tensor to write: float32 `data` encoded as `type` (default F32); a compact layout (`dtype`, `bytes`,
 * see src/quant/codec.ts) written as its GGUF type bit for bit; or `raw` data already in ggml type `type`.
 * `shape` is row-major, outermost first ([out, in] for a matrix), written reversed as GGUF's ne.
 */
export type GgufWriteTensor =
  | { name: string; shape: readonly number[]; data: Float32Array; type?: GgufWriteType }
  | { name: string; shape: readonly number[]; dtype: CompactDType; bytes: Uint8Array }
  | { name: string; shape: readonly number[]; type: string; raw: Uint8Array };

/** The ggml type name a write tensor is stored as. */
function writeTypeName(t: GgufWriteTensor): string {
  return 'dtype' in t ? GGML_TYPE_OF[t.dtype] : t.type ?? 'F32';
}

export interface GgufWriteOptions {
  /** Metadata in write order; `general.alignment` is added when `alignment` is not 32. */
  metadata?: Iterable<[string, GgufValue]> | Record<string, GgufValue>;
  tensors: readonly GgufWriteTensor[];
  alignment?: number;
  version?: 2 | 3;
  /** Display name for errors. */
  name?: string;
}

function encodeTensor(t: GgufWriteTensor, n: number, file: string): Uint8Array {
  const type = writeTypeName(t);
  const info = GGML_TYPES.get(GGML_TYPE_ID[type] ?? -1);
  if (info === undefined) throw new FormatError(file, `tensor ${t.name}: unknown ggml type ${type}`);
  if ((t.shape[t.shape.length - 1] ?? 1) % info.blockSize !== 0) {
    throw new FormatError(file, `tensor ${t.name}: ${type} needs rows that are a multiple of ${info.blockSize} elements, got shape [${t.shape.join(', ')}]`);
  }
  if ('raw' in t) {
    if (t.raw.length !== (n / info.blockSize) * info.typeSize) throw new FormatError(file, `tensor ${t.name}: ${type} data of shape [${t.shape.join(', ')}] is ${(n / info.blockSize) * info.typeSize} bytes, got ${t.raw.length}`);
    return t.raw;
  }
  if ('dtype' in t) {
    if (t.bytes.length !== compactBytes(t.dtype, n)) throw new FormatError(file, `tensor ${t.name}: ${t.dtype} layout of shape [${t.shape.join(', ')}] is ${compactBytes(t.dtype, n)} bytes, got ${t.bytes.length}`);
    return compactToGgml(t.dtype, t.bytes, n);
  }
  if (n !== t.data.length) throw new FormatError(file, `tensor ${t.name}: shape [${t.shape.join(', ')}] has ${n} elements but the data has ${t.data.length}`);
  switch (type) {
    case 'F32': return f32Bytes(t.data);
    case 'F16': return f32ToF16Bytes(t.data);
    case 'BF16': return f32ToBf16Bytes(t.data);
    case 'Q8_0': return compactToGgml('q8_0', quantize('q8_0', t.data), n);
    case 'Q4_0': return compactToGgml('q4_0', quantize('q4_0', t.data), n);
    case 'Q4_1': return compactToGgml('q4_1', quantize('q4_1', t.data), n);
    default:
      throw new FormatError(file, `tensor ${t.name}: cannot encode float32 data as ${type} (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)`);
  }
}

/** Q8_0 blocks of float32 values, rounded as ggml's quantize_row_q8_0_ref does (see src/quant/codec.ts). */
export function quantizeQ8_0(x: ArrayLike<number>): Uint8Array {
  return compactToGgml('q8_0', quantize('q8_0', x), x.length);
}

function writeString(w: ByteWriter, s: string): void {
  const b = new TextEncoder().encode(s);
  w.u64(b.length);
  w.bytes(b);
}

function writeScalar(w: ByteWriter, type: GgufValueType, v: unknown, key: string, file: string): void {
  const num = () => {
    if (typeof v !== 'number' && typeof v !== 'bigint') throw new FormatError(file, `metadata ${key}: ${String(v)} is not a ${type}`);
    return Number(v);
  };
  switch (type) {
    case 'uint8': w.u8(num()); break;
    case 'int8': w.i8(num()); break;
    case 'uint16': w.u16(num()); break;
    case 'int16': w.i16(num()); break;
    case 'uint32': w.u32(num()); break;
    case 'int32': w.i32(num()); break;
    case 'float32': w.f32(num()); break;
    case 'float64': w.f64(num()); break;
    case 'uint64': w.u64(BigInt(v as number | bigint)); break;
    case 'int64': w.i64(BigInt(v as number | bigint)); break;
    case 'bool': w.u8(v ? 1 : 0); break;
    case 'string': writeString(w, String(v)); break;
    case 'array': writeArray(w, v as GgufArrayValue, key, file); break;
  }
}

function writeArray(w: ByteWriter, a: GgufArrayValue, key: string, file: string): void {
  const id = VALUE_TYPES.indexOf(a.itemType);
  if (id < 0) throw new FormatError(file, `metadata ${key}: unknown array item type ${a.itemType}`);
  w.u32(id);
  const items = a.value as ArrayLike<unknown>;
  w.u64(items.length);
  for (let i = 0; i < items.length; i++) writeScalar(w, a.itemType, items[i], key, file);
}

/** Serialise a GGUF file. Tensors are written in the order given, each aligned. */
export function writeGguf(options: GgufWriteOptions): Uint8Array {
  const file = options.name ?? 'output.gguf';
  const meta = new Map<string, GgufValue>(
    options.metadata === undefined ? [] : Symbol.iterator in options.metadata
      ? (options.metadata as Iterable<[string, GgufValue]>)
      : Object.entries(options.metadata as Record<string, GgufValue>),
  );
  const metaAlign = meta.get('general.alignment');
  const alignment = options.alignment ?? (metaAlign ? Number(metaAlign.value) : GGUF_DEFAULT_ALIGNMENT);
  if (!(alignment > 0 && (alignment & (alignment - 1)) === 0)) throw new FormatError(file, `alignment ${alignment} is not a power of two`);
  if (alignment !== GGUF_DEFAULT_ALIGNMENT || metaAlign) meta.set('general.alignment', gguf.u32(alignment));

  const names = new Set<string>();
  const encoded = options.tensors.map((t) => {
    if (names.has(t.name)) throw new FormatError(file, `tensor ${t.name} given twice`);
    names.add(t.name);
    let n = 1;
    for (const d of t.shape) n *= d;
    if (t.shape.length > 4) throw new FormatError(file, `tensor ${t.name}: GGUF allows at most 4 dimensions, got ${t.shape.length}`);
    return encodeTensor(t, n, file);
  });

  const w = new ByteWriter();
  w.bytes(new TextEncoder().encode(GGUF_MAGIC));
  w.u32(options.version ?? 3);
  w.u64(options.tensors.length);
  w.u64(meta.size);
  for (const [key, v] of meta) {
    writeString(w, key);
    w.u32(VALUE_TYPES.indexOf(v.type));
    writeScalar(w, v.type, v.type === 'array' ? v : v.value, key, file);
  }
  let rel = 0;
  options.tensors.forEach((t, i) => {
    writeString(w, t.name);
    w.u32(t.shape.length);
    for (let d = t.shape.length - 1; d >= 0; d--) w.u64(t.shape[d]!);
    w.u32(GGML_TYPE_ID[writeTypeName(t)]!);
    w.u64(rel);
    rel += Math.ceil(encoded[i]!.length / alignment) * alignment;
  });
  w.pad(alignment);
  const headerLen = w.length;
  const out = new Uint8Array(headerLen + rel);
  out.set(w.result());
  let p = headerLen;
  for (const e of encoded) {
    out.set(e, p);
    p += Math.ceil(e.length / alignment) * alignment;
  }
  return out;
}

