/**
 * Byte-level detokenisation shared by every tokenizer: each token maps to the bytes it contributes,
 * and text is the (lossy) UTF-8 decoding of their concatenation.
 */
import type { DecodeOptions, StreamDecoder } from './types.js';

export interface DecodeTable {
  /** Bytes of each token's text (control tokens: empty unless rendered as special). */
  bytes: readonly Uint8Array[];
  /** Bytes of control tokens, used when `special` is set. */
  specialBytes: ReadonlyMap<number, Uint8Array>;
  /** Token ids that are raw bytes: a byte 0x20 token is a real space, never a dummy prefix. */
  isByte: (id: number) => boolean;
  bosId: number | undefined;
  /** Whether encode adds a dummy-prefix space that decode should take off again. */
  dummyPrefix: boolean;
}

const EMPTY = new Uint8Array(0);

function tokenOut(t: DecodeTable, id: number, prev: number | undefined, atStart: boolean, opts: DecodeOptions): Uint8Array {
  if (!(id >= 0 && id < t.bytes.length)) throw new RangeError(`token id ${id} is outside the vocabulary (0..${t.bytes.length - 1})`);
  let b = t.bytes[id]!;
  if (opts.special && b.length === 0) b = t.specialBytes.get(id) ?? EMPTY;
  if (t.dummyPrefix && b[0] === 0x20 && !t.isByte(id)) {
    // llama2.c: a piece right after BOS loses its leading space (the dummy prefix added by encode).
    if ((prev !== undefined && prev === t.bosId) || (atStart && opts.stripLeadingSpace)) b = b.subarray(1);
  }
  return b;
}

/** Whether a token has text of its own (before any leading space is stripped): the first such token is the start. */
function hasText(t: DecodeTable, id: number, opts: DecodeOptions): boolean {
  return t.bytes[id]!.length > 0 || (opts.special === true && (t.specialBytes.get(id)?.length ?? 0) > 0);
}

export function decodeIds(t: DecodeTable, ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
  const parts: Uint8Array[] = [];
  let total = 0;
  let prev: number | undefined;
  // Only the first token with text may lose its leading space: a lone "▁" first is stripped to nothing, and the
  // space of the token after it is real.
  let started = false;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    const b = tokenOut(t, id, prev, !started, opts);
    started ||= hasText(t, id, opts);
    parts.push(b);
    total += b.length;
    prev = id;
  }
  const all = new Uint8Array(total);
  let p = 0;
  for (const b of parts) { all.set(b, p); p += b.length; }
  return new TextDecoder('utf-8', { ignoreBOM: true }).decode(all);
}

export function streamDecoder(t: DecodeTable, opts: DecodeOptions = {}): StreamDecoder {
  const dec = new TextDecoder('utf-8', { ignoreBOM: true });
  let prev: number | undefined;
  let started = false;
  return {
    push(id: number): string {
      const b = tokenOut(t, id, prev, !started, opts);
      started ||= hasText(t, id, opts);
      prev = id;
      return b.length ? dec.decode(b, { stream: true }) : '';
    },
    flush(): string {
      return dec.decode();
    },
  };
}

const enc = new TextEncoder();
export function utf8Bytes(s: string): Uint8Array {
  return enc.encode(s);
}

/** The entry for a token id, or a RangeError naming the id and the vocabulary size. */
export function tokenEntry<T>(list: readonly (T | undefined)[], id: number): T {
  const v = list[id];
  if (v === undefined) throw new RangeError(`token id ${id} is outside the vocabulary (0..${list.length - 1})`);
  return v;
}
