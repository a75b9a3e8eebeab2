/**
 * Host side of the compact-weight kernels (assembly/compact.ts): frozen weights kept as binary16,
 * bfloat16, q8_0 or q4_0 in the wasm memory, in the layouts of src/quant/types.ts, and read there
 * directly by matmul (`MatmulCall.bType`), the embedding gather and `dequantize`.
 */
import { QUANT_BLOCK as QK, type CompactDType } from '../../quant/types.js';
import type { WasmRuntime } from './runtime.js';

/** Type codes, mirrored from assembly/compact.ts. */
export const DTYPE_CODE: Readonly<Record<'f32' | CompactDType, number>> = { f32: 0, f16: 1, bf16: 2, q8_0: 3, q4_0: 4, q4_1: 5 };

/**
 * Byte address of the block scales of a compact tensor of n elements at `ptr` (the quants come first);
 * 0 for the types without scales.
 */
export function scalesOf(dtype: 'f32' | CompactDType, ptr: number, n: number): number {
  if (dtype === 'q8_0') return ptr + n;
  if (dtype === 'q4_0' || dtype === 'q4_1') return ptr + n / 2;
  return 0;
}

/** Throws unless a [rows, cols] tensor can be stored as `dtype` (q types: cols a multiple of 32). */
export function checkCompactShape(dtype: 'f32' | CompactDType, rows: number, cols: number, what: string): void {
  if ((dtype === 'q8_0' || dtype === 'q4_0' || dtype === 'q4_1') && cols % QK !== 0) {
    throw new Error(`${what}: a ${dtype} tensor [${rows}, ${cols}] needs rows whose length is a multiple of ${QK}`);
  }
}

/** dst[0:n] (float32) = the compact tensor of n elements at src, exactly. */
export function dequantize(rt: WasmRuntime, dtype: CompactDType, src: number, n: number, dst: number): void {
  rt.exports.dequantize(DTYPE_CODE[dtype], src, scalesOf(dtype, src, n), n, dst);
}

/**
 * out[i] = row ids[i] of the compact [V, D] table, dequantised (zeros for an id outside [0, V)).
 * ids: n int32 values; out: n·D float32 values.
 */
export function embedding(rt: WasmRuntime, dtype: CompactDType, table: number, ids: number, out: number, n: number, V: number, D: number): void {
  checkCompactShape(dtype, V, D, 'embedding');
  rt.exports.embeddingCompact(DTYPE_CODE[dtype], table, scalesOf(dtype, table, V * D), ids, out, n, V, D);
}
