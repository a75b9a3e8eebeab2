/**
 * How each checkpoint tensor is held in memory after loading, and reading one stored tensor by offset
 * into that form a few rows at a time (so peak memory is the loaded weights plus one chunk).
 *
 * Rules (`baseDtype`, default 'auto'):
 * - Only 2-D tensors (projections, embedding, output head) may be compact; norms and biases are float32.
 * - 'auto' keeps the stored values: F32 stays f32; F16, BF16 (GGUF, safetensors), Q8_0, Q4_0, Q4_1 (GGUF)
 *   stay as they are, bit for bit; GGUF Q4_K becomes q4_1 and Q5_0 q8_0 with every value unchanged (see
 *   src/quant/codec.ts). Other GGUF block types (Q6_K, Q5_1, Q5_K, …) are dequantised and requantised to
 *   q8_0 (a small extra loss, noted in `LlamaCheckpoint.notes`); other plain types become f32.
 * - 'f32' decodes everything; 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q4_1' converts 2-D weights to that type.
 * - A q8_0/q4_0/q4_1 target for a tensor whose rows are not a multiple of 32 gives f16 instead (noted).
 */
import { f32View, numel } from './binary.js';
import type { NamedTensor } from './checkpoint.js';
import type { ByteSource } from './source.js';
import { type CompactDType, compactBytes, isBlockQuant } from '../quant/types.js';
import { ggmlToCompactInto, quantizeInto } from '../quant/codec.js';

/** What `baseDtype` may ask for: keep the stored type ('auto'), float32, or a compact type. */
export type BaseDType = 'auto' | 'f32' | CompactDType;

export const BASE_DTYPES: readonly BaseDType[] = ['auto', 'f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1'];

/** Throw (naming the option) unless `v` is a base dtype. */
export function parseBaseDType(v: unknown, option = 'baseDtype'): BaseDType {
  if (typeof v === 'string' && (BASE_DTYPES as readonly string[]).includes(v)) return v as BaseDType;
  throw new Error(`${option} must be one of ${BASE_DTYPES.join(', ')} (got ${JSON.stringify(v)})`);
}

/**
 * A tensor as a file stores it. `kind`: 'f32'; a compact type whose raw bytes convert bit for bit
 * (`ggmlToCompactInto`); 'block' for other block-quantised types; 'plain' for other element types.
 */
export interface StoredTensor {
  /** Name for notes and errors. */
  readonly name: string;
  readonly shape: readonly number[];
  /** Absolute byte offset and length in the source. */
  readonly offset: number;
  readonly byteLength: number;
  /** The file's own type name (Q4_K, BF16, …), for notes. */
  readonly typeName: string;
  readonly kind: 'f32' | CompactDType | 'block' | 'plain';
  /** Decode `count` values from the start of `raw` (whole rows of this tensor) to float32; may be a view of `raw`. */
  decode(raw: Uint8Array, count: number): Float32Array;
}

/** Notes grouped by reason, each listing a few of the tensors concerned. */
export class LoadNotes {
  private readonly byReason = new Map<string, string[]>();

  add(reason: string, tensor: string): void {
    const names = this.byReason.get(reason) ?? [];
    names.push(tensor);
    this.byReason.set(reason, names);
  }

  list(): string[] {
    return [...this.byReason].map(([reason, names]) =>
      `${reason}: ${names.length} tensor${names.length > 1 ? 's' : ''} (${names.slice(0, 3).join(', ')}${names.length > 3 ? ', …' : ''})`);
  }
}

/** The in-memory type of a tensor stored as `kind`, under the rules above. */
export function targetStorage(t: { name: string; shape: readonly number[]; kind: StoredTensor['kind']; typeName?: string }, base: BaseDType, notes?: LoadNotes): 'f32' | CompactDType {
  if (t.shape.length !== 2) return 'f32';
  let want: 'f32' | CompactDType;
  if (base !== 'auto') want = base;
  else if (t.kind === 'block') {
    want = 'q8_0';
    notes?.add(`${t.typeName ?? 'block-quantised'} weights were dequantised and requantised to q8_0 (baseDtype 'auto')`, t.name);
  } else want = t.kind === 'plain' ? 'f32' : t.kind;
  if (want !== 'f32' && isBlockQuant(want) && t.shape[1]! % 32 !== 0) {
    notes?.add(`rows of ${t.shape[1]} values are not whole 32-value blocks, so these weights are f16 instead of ${want}`, t.name);
    want = 'f16';
  }
  return want;
}

export interface ReadTensorOptions {
  /** Bytes read per step for a converted tensor (default 4 MiB; at least one row). */
  chunkBytes?: number;
  /** An f32 tensor kept as stored: copy instead of viewing the source's bytes. */
  copy?: boolean;
  /** Sees each raw chunk as read, with its offset within the tensor (tied-embedding detection). */
  onChunk?(raw: Uint8Array, at: number): Promise<void>;
}

export const DEFAULT_CHUNK_BYTES = 4 << 20;

/** Read a stored tensor into `target` storage, a chunk of whole rows at a time. */
export async function readStoredTensor(src: ByteSource, t: StoredTensor, target: 'f32' | CompactDType, options: ReadTensorOptions = {}): Promise<NamedTensor> {
  const shape = [...t.shape];
  const n = numel(shape);
  if (target === 'f32' && t.kind === 'f32') {
    const raw = await src.read(t.offset, t.byteLength);
    await options.onChunk?.(raw, 0);
    return { shape, data: f32View(raw, 0, n, options.copy ?? false) };
  }
  const rows = shape.length === 2 ? shape[0]! : 1;
  const cols = rows ? n / rows : 0;
  const rowBytes = rows ? t.byteLength / rows : 0;
  const perChunk = Math.max(1, Math.floor((options.chunkBytes ?? DEFAULT_CHUNK_BYTES) / Math.max(1, rowBytes)));
  const data = target === 'f32' ? new Float32Array(n) : undefined;
  const bytes = target === 'f32' ? undefined : new Uint8Array(compactBytes(target, n));
  for (let r0 = 0; r0 < rows; r0 += perChunk) {
    const r1 = Math.min(rows, r0 + perChunk);
    const raw = await src.read(t.offset + r0 * rowBytes, (r1 - r0) * rowBytes);
    await options.onChunk?.(raw, r0 * rowBytes);
    const start = r0 * cols, count = (r1 - r0) * cols;
    if (data) data.set(t.decode(raw, count), start);
    else if (t.kind === target) ggmlToCompactInto(target as CompactDType, raw, bytes!, n, start, t.typeName);
    else quantizeInto(target as CompactDType, t.decode(raw, count), bytes!, n, start);
  }
  return data ? { shape, data } : { shape, dtype: target as CompactDType, bytes: bytes! };
}
