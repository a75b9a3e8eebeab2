/**
 * Compact storage types for frozen weights and their byte sizes. The layouts are described in
 * `codec.ts`; every layout is a flat little-endian byte string padded to a multiple of 4 bytes.
 */

/** Storage types a frozen 2-D weight may keep instead of float32. */
export type CompactDType = 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q4_1';

export const COMPACT_DTYPES: readonly CompactDType[] = ['f16', 'bf16', 'q8_0', 'q4_0', 'q4_1'];

/** Elements per quantisation block of q8_0, q4_0 and q4_1 (ggml's QK8_0 = QK4_0 = QK4_1 = 32). */
export const QUANT_BLOCK = 32;

export function isCompact(dtype: string): dtype is CompactDType {
  return (COMPACT_DTYPES as readonly string[]).includes(dtype);
}

/** Whether a block type needs rows (the innermost dimension) that split into 32-element blocks. */
export function isBlockQuant(dtype: CompactDType): dtype is 'q8_0' | 'q4_0' | 'q4_1' {
  return dtype === 'q8_0' || dtype === 'q4_0' || dtype === 'q4_1';
}

/**
 * Bytes of the layout of `n` elements: f16/bf16 2n, q8_0 n + n/8 (int8 quants, then one float32 scale
 * per block), q4_0 n/2 + n/8 (nibbles, then scales), q4_1 n/2 + n/4 (nibbles, then a float32 scale and
 * minimum per block); rounded up to a multiple of 4.
 */
export function compactBytes(dtype: CompactDType, n: number): number {
  if (!(Number.isSafeInteger(n) && n >= 0)) throw new RangeError(`compactBytes: element count ${n} is not a non-negative integer`);
  if (isBlockQuant(dtype) && n % QUANT_BLOCK !== 0) throw new RangeError(`compactBytes: ${dtype} needs a multiple of ${QUANT_BLOCK} elements, got ${n}`);
  const raw = dtype === 'f16' || dtype === 'bf16' ? 2 * n : dtype === 'q8_0' ? n + n / 8 : dtype === 'q4_0' ? n / 2 + n / 8 : n / 2 + n / 4;
  return Math.ceil(raw / 4) * 4;
}
