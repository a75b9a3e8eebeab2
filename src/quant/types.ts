/**
 * Compact storage types for frozen weights. Layouts (little-endian, row-major, length padded to a
 * multiple of 4 bytes):
 * - `f16`, `bf16`: one 16-bit value per element.
 * - `q8_0` (rows a multiple of 32): n int8 quants, then n/32 float32 scales (one per block of 32,
 *   binary16-rounded as GGUF stores them); value = scale · q.
 * - `q4_0` (rows a multiple of 32): n/2 bytes of nibbles, block b in bytes [16b, 16b+16), byte j holding
 *   element j in its low nibble and element j+16 in its high one (GGUF's order); then n/32 float32 scales;
 *   value = scale · (nibble − 8).
 * Planar (quants, then scales) rather than GGUF's interleaved 34- and 18-byte blocks, so that every kernel
 * reads aligned 32-bit words.
 */
export type CompactDType = 'f16' | 'bf16' | 'q8_0' | 'q4_0';

export const COMPACT_DTYPES: readonly CompactDType[] = ['f16', 'bf16', 'q8_0', 'q4_0'];

/** Elements per quantisation block (the row length of a q type must be a multiple of it). */
export const QK = 32;

export function isCompact(dtype: string): dtype is CompactDType {
  return (COMPACT_DTYPES as readonly string[]).includes(dtype);
}

/** Bytes of a compact tensor of n elements, rounded up to a multiple of 4. */
export function compactBytes(dtype: CompactDType, n: number): number {
  const raw = dtype === 'f16' || dtype === 'bf16' ? 2 * n : dtype === 'q8_0' ? n + (n / QK) * 4 : n / 2 + (n / QK) * 4;
  return Math.ceil(raw / 4) * 4;
}
