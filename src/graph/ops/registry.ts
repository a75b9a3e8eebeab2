/**
 * The op catalogue: each op has a shape rule (`infer`) and, when differentiable, a gradient rule
 * (`grad`) written once, above the backends, in terms of other ops.
 */
import type { Tensor } from '../graph.js';
import type { Attrs, DType, NodeInfo, Shape, ValueInfo } from '../types.js';
import { GraphError } from '../types.js';

export interface OutSpec { shape: Shape; dtype: DType }

export interface GradContext {
  readonly node: NodeInfo;
  readonly inputs: readonly Tensor[];
  readonly outputs: readonly Tensor[];
  /** Gradient of the loss with respect to each output; null where an output does not reach the loss. */
  readonly dOutputs: readonly (Tensor | null)[];
  /** Whether each input needs a gradient (rules may skip work for the others). */
  readonly needs: readonly boolean[];
}

export interface OpDef {
  readonly name: string;
  /** Validate inputs and attributes; return the outputs' shapes. Throw an Error saying what is wrong. */
  infer(inputs: readonly ValueInfo[], attrs: Attrs): OutSpec[];
  /** Gradients with respect to the inputs (null: none). Absent: the op is not differentiable. */
  grad?(ctx: GradContext): (Tensor | null)[];
  /** The output is a view of input 0 (same memory, new shape): no kernel runs. */
  readonly view?: boolean;
  /** Output 0 is input 0 updated in place (same memory): a kernel runs and writes into it. */
  readonly inplace?: boolean;
  /**
   * Inputs that may be compact frozen weights (f16, bf16, q8_0, q4_0), read by the kernels directly; the
   * shape rule checks the remaining conditions. Every other input of every op must be f32 or i32.
   */
  readonly compactInputs?: readonly number[];
}

const catalogue = new Map<string, OpDef>();

export function defineOp(def: OpDef): void {
  if (catalogue.has(def.name)) throw new Error(`op ${def.name} is defined twice`);
  catalogue.set(def.name, def);
}

export function getOp(name: string): OpDef {
  const def = catalogue.get(name);
  if (!def) throw new GraphError(`unknown op '${name}' (known: ${[...catalogue.keys()].sort().join(', ')})`);
  return def;
}

export function hasOp(name: string): boolean { return catalogue.has(name); }
export function opNames(): string[] { return [...catalogue.keys()].sort(); }
