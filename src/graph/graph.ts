/**
 * A graph: values (typed, shaped) and the nodes that produce them, in execution order.
 * Built once, it is the same on every backend; `serialize.ts` turns it into JSON and back.
 */
import { getOp } from './ops/index.js';
import {
  type Attrs, type DType, GraphError, type NodeInfo, type Shape, type ValueInfo, type ValueKind, isCompact, shapeStr,
} from './types.js';

export class Tensor {
  constructor(readonly graph: Graph, readonly id: number) {}
  get info(): ValueInfo { return this.graph.values[this.id]!; }
  get shape(): Shape { return this.info.shape; }
  get dtype(): DType { return this.info.dtype; }
  get rank(): number { return this.info.shape.length; }
  toString(): string { return `%${this.id}${this.info.name ? `(${this.info.name})` : ''}${shapeStr(this.shape)}`; }
}

export class Graph {
  readonly values: ValueInfo[] = [];
  readonly nodes: NodeInfo[] = [];
  /** Values the caller reads after a run; they stay alive to the end of the plan. */
  readonly outputs: number[] = [];
  /** A label applied to nodes created while set, so errors and profiles name the module. */
  scope = '';

  private addValue(shape: Shape, dtype: DType, kind: ValueKind, producer: number, name?: string): Tensor {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new GraphError(`invalid dimension ${d} in shape ${shapeStr(shape)}${name ? ` of ${name}` : ''}`);
    }
    const id = this.values.length;
    this.values.push({ id, shape: [...shape], dtype, kind, producer, ...(name !== undefined ? { name } : {}) });
    return new Tensor(this, id);
  }

  input(name: string, shape: Shape, dtype: DType = 'f32'): Tensor { return this.addValue(shape, dtype, 'input', -1, name); }
  /** A weight; a compact dtype makes it a frozen weight read by the kernels in its packed layout. */
  param(name: string, shape: Shape, dtype: DType = 'f32'): Tensor {
    if (dtype === 'i32') throw new GraphError(`param ${name}: parameters are f32 or a compact type, not i32`);
    if ((dtype === 'q8_0' || dtype === 'q4_0' || dtype === 'q4_1') && (shape[shape.length - 1] ?? 0) % 32 !== 0) {
      throw new GraphError(`param ${name}: ${dtype} needs rows that are a multiple of 32 elements, got ${shapeStr(shape)}`);
    }
    return this.addValue(shape, dtype, 'param', -1, name);
  }
  state(name: string, shape: Shape, dtype: DType = 'f32'): Tensor { return this.addValue(shape, dtype, 'state', -1, name); }

  tensor(id: number): Tensor {
    if (!(id >= 0 && id < this.values.length)) throw new GraphError(`no value %${id} in this graph`);
    return new Tensor(this, id);
  }

  /** Find a value by name (inputs, params and states are named). */
  byName(name: string): Tensor | undefined {
    const v = this.values.find((x) => x.name === name);
    return v ? new Tensor(this, v.id) : undefined;
  }

  markOutput(...ts: Tensor[]): void {
    for (const t of ts) if (!this.outputs.includes(t.id)) this.outputs.push(t.id);
  }

  /** Apply an op: its shape rule validates the inputs and gives the outputs. */
  apply(op: string, inputs: readonly Tensor[], attrs: Attrs = {}, name?: string): Tensor[] {
    const index = this.nodes.length;
    const label = name ?? (this.scope || undefined);
    let def;
    try {
      def = getOp(op);
    } catch (e) {
      throw new GraphError(`node #${index} ${op}${label ? ` (${label})` : ''}: ${(e as Error).message}`);
    }
    for (const t of inputs) {
      if (t.graph !== this) throw new GraphError(`node #${index} ${op}: an input belongs to another graph`);
    }
    const ins = inputs.map((t) => t.info);
    ins.forEach((v, i) => {
      if (isCompact(v.dtype) && !def.compactInputs?.includes(i)) {
        throw new GraphError(`node #${index} ${op}${label ? ` (${label})` : ''}: input ${i} ${v.name ?? `%${v.id}`} is a compact ${v.dtype} weight, which ${op} cannot read; convert it with dequantize() first`);
      }
    });
    let outs: { shape: Shape; dtype: DType }[];
    try {
      outs = def.infer(ins, attrs);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      throw new GraphError(`node #${index} ${op}${label ? ` (${label})` : ''}: ${msg}; inputs ${ins.map((v) => `${v.dtype}${shapeStr(v.shape)}`).join(', ')}`);
    }
    const outputs = outs.map((o) => this.addValue(o.shape, o.dtype, 'node', index));
    this.nodes.push({
      index, op, inputs: inputs.map((t) => t.id), outputs: outputs.map((t) => t.id), attrs: { ...attrs },
      ...(label !== undefined ? { name: label } : {}),
    });
    return outputs;
  }

  /** Apply a single-output op. */
  apply1(op: string, inputs: readonly Tensor[], attrs: Attrs = {}, name?: string): Tensor {
    return this.apply(op, inputs, attrs, name)[0]!;
  }

  /** Run `fn` with `scope` set, so the nodes it creates carry that label. */
  within<T>(scope: string, fn: () => T): T {
    const prev = this.scope;
    this.scope = scope;
    try { return fn(); } finally { this.scope = prev; }
  }

  get params(): Tensor[] { return this.values.filter((v) => v.kind === 'param').map((v) => new Tensor(this, v.id)); }
  get inputs(): Tensor[] { return this.values.filter((v) => v.kind === 'input').map((v) => new Tensor(this, v.id)); }
}
