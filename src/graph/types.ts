/**
 * Core data types shared by the graph, the scheduler and every backend.
 * Data flows one way: graph → scheduler → backend; nothing here knows a backend.
 */

import { compactBytes, isCompact, type CompactDType } from '../quant/types.js';

/**
 * f32 and i32 for everything a kernel computes; a compact type (f16, bf16, q8_0, q4_0: see
 * src/quant/types.ts) only for frozen weights, which kernels that declare it read directly.
 */
export type DType = 'f32' | 'i32' | CompactDType;
export { isCompact, type CompactDType };
export type Shape = readonly number[];

/** Static, JSON-serialisable attributes of a node. */
export type AttrValue = number | string | boolean | null | number[] | string[];
export type Attrs = Readonly<Record<string, AttrValue>>;

/**
 * What a value is to the training loop:
 * - `input`: written by the caller before each run (token ids, targets, activations),
 * - `param`: a model or adapter weight, persistent across runs,
 * - `state`: persistent storage owned by an optimizer or cache (Adam moments, KV cache),
 * - `node`: produced by a node; its memory may be reused once it is dead.
 */
export type ValueKind = 'input' | 'param' | 'state' | 'node';

export interface ValueInfo {
  readonly id: number;
  readonly shape: Shape;
  readonly dtype: DType;
  readonly kind: ValueKind;
  readonly name?: string;
  /** Index of the producing node, or -1 for inputs, params and states. */
  readonly producer: number;
}

export interface NodeInfo {
  readonly index: number;
  readonly op: string;
  readonly inputs: readonly number[];
  readonly outputs: readonly number[];
  readonly attrs: Attrs;
  /** Optional human-readable label, used in error messages (e.g. `model.layers.0.self_attn.q_proj`). */
  readonly name?: string;
}

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Bytes a value of this type and shape occupies (compact types in their packed layout). */
export function valueBytes(dtype: DType, shape: Shape): number {
  const n = numel(shape);
  return isCompact(dtype) ? compactBytes(dtype, n) : 4 * n;
}

export function shapeStr(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

/** An error about a graph: it names the node and the shapes involved. */
export class GraphError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GraphError';
  }
}
