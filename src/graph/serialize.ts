/**
 * Graphs as JSON. Loading rebuilds the graph node by node through the op catalogue, so an unknown op,
 * a bad attribute or a shape that no longer matches is reported with the node that carries it.
 */
import { Graph } from './graph.js';
import type { Attrs, DType, ValueKind } from './types.js';
import { GraphError, shapeStr } from './types.js';

export interface GraphJSON {
  format: 'adaptkit-graph';
  version: 1;
  values: { shape: number[]; dtype: DType; kind: ValueKind; name?: string }[];
  nodes: { op: string; inputs: number[]; outputs: number[]; attrs: Attrs; name?: string }[];
  outputs: number[];
}

export function graphToJSON(g: Graph): GraphJSON {
  return {
    format: 'adaptkit-graph',
    version: 1,
    values: g.values.map((v) => ({ shape: [...v.shape], dtype: v.dtype, kind: v.kind, ...(v.name !== undefined ? { name: v.name } : {}) })),
    nodes: g.nodes.map((n) => ({ op: n.op, inputs: [...n.inputs], outputs: [...n.outputs], attrs: n.attrs, ...(n.name !== undefined ? { name: n.name } : {}) })),
    outputs: [...g.outputs],
  };
}

export function graphFromJSON(json: unknown): Graph {
  const j = json as GraphJSON;
  if (!j || j.format !== 'adaptkit-graph') throw new GraphError('not an adaptkit graph (format field missing or wrong)');
  if (j.version !== 1) throw new GraphError(`unsupported graph version ${String(j.version)} (this build reads version 1)`);
  if (!Array.isArray(j.values) || !Array.isArray(j.nodes)) throw new GraphError('graph JSON needs arrays "values" and "nodes"');
  const g = new Graph();
  // Leaf values keep their ids; node outputs are re-created in order and must land on the same ids.
  const pending = j.values.map((v, id) => ({ ...v, id }));
  let next = 0;
  const addLeaves = (): void => {
    while (next < pending.length && pending[next]!.kind !== 'node') {
      const v = pending[next]!;
      const make = { input: g.input, param: g.param, state: g.state }[v.kind as 'input' | 'param' | 'state'];
      if (!make) throw new GraphError(`value %${next} has unknown kind ${JSON.stringify(v.kind)}`);
      make.call(g, v.name ?? `v${next}`, v.shape, v.dtype);
      next++;
    }
  };
  j.nodes.forEach((n, index) => {
    addLeaves();
    for (const x of n.inputs) {
      if (!(Number.isInteger(x) && x >= 0 && x < g.values.length)) throw new GraphError(`node #${index} ${n.op}: input %${x} is not defined before it`);
    }
    const outs = g.apply(n.op, n.inputs.map((x) => g.tensor(x)), n.attrs ?? {}, n.name);
    outs.forEach((t, k) => {
      const want = pending[n.outputs[k]!];
      if (n.outputs[k] !== t.id || !want || want.shape.join() !== t.shape.join() || want.dtype !== t.dtype) {
        throw new GraphError(`node #${index} ${n.op}: output ${k} is ${t.dtype}${shapeStr(t.shape)} as %${t.id}, but the file says ${want ? `${want.dtype}${shapeStr(want.shape)}` : 'nothing'} as %${n.outputs[k]}`);
      }
    });
    next = g.values.length;
  });
  addLeaves();
  if (g.values.length !== j.values.length) throw new GraphError(`graph JSON lists ${j.values.length} values but its nodes define ${g.values.length}`);
  g.markOutput(...(j.outputs ?? []).map((x) => g.tensor(x)));
  return g;
}
