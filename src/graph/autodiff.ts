/**
 * Reverse-mode autodiff: appends the backward nodes of `loss` with respect to `wrt` to the same graph,
 * so one graph holds forward and backward and runs on any backend. Gradient rules live with the ops.
 * With checkpoint segments (checkpoint.ts), rules inside a segment read recomputed copies of its values.
 */
import * as F from './api.js';
import { type CheckpointSegment, checkSegments, recomputingOperands } from './checkpoint.js';
import { Graph, type Tensor } from './graph.js';
import { getOp } from './ops/index.js';
import { GraphError, type NodeInfo, numel, shapeStr } from './types.js';

export interface Gradients {
  /** Gradient value of each requested tensor, by its value id. */
  readonly byId: Map<number, Tensor>;
  /** Index of the first backward node in graph.nodes. */
  readonly firstBackwardNode: number;
  get(t: Tensor): Tensor;
}

export interface GradientOptions {
  /**
   * Forward node ranges whose activations the backward pass recomputes instead of keeping
   * (`layerSegments(graph)` for every transformer layer). Gradients are bit-identical either way.
   */
  checkpoint?: readonly CheckpointSegment[];
}

type Operands = (node: NodeInfo) => { inputs: Tensor[]; outputs: Tensor[] };

export function gradients(loss: Tensor, wrt: readonly Tensor[], o: GradientOptions = {}): Gradients {
  const g: Graph = loss.graph;
  if (numel(loss.shape) !== 1) throw new GraphError(`the loss must be a scalar, got ${shapeStr(loss.shape)}`);
  const firstBackwardNode = g.nodes.length;
  for (const t of wrt) if (t.dtype !== 'f32') throw new GraphError(`${t} is ${t.dtype}: only f32 values can have gradients (compact weights are frozen)`);
  const segments = checkSegments(o.checkpoint ?? [], firstBackwardNode);
  let operands: Operands = (n) => ({ inputs: n.inputs.map((x) => g.tensor(x)), outputs: n.outputs.map((x) => g.tensor(x)) });
  if (segments.length > 0) operands = recomputingOperands(g, segments, segmentReads(g, loss, wrt, segments), firstBackwardNode);
  const grads = backward(g, loss, wrt, operands);

  const byId = new Map<number, Tensor>();
  for (const t of wrt) {
    const d = grads.get(t.id) ?? g.within(`${t.info.name ?? t.id}.grad`, () => F.fill(g, t.shape, 0));
    byId.set(t.id, d);
    g.markOutput(d);
  }
  return {
    byId, firstBackwardNode,
    get(t: Tensor): Tensor {
      const d = byId.get(t.id);
      if (!d) throw new GraphError(`no gradient was requested for ${t}`);
      return d;
    },
  };
}

/**
 * Which values produced inside each segment its gradient rules read: a trial backward pass on a copy of
 * the graph, recording the forward values read by the nodes each rule appends.
 */
function segmentReads(g: Graph, loss: Tensor, wrt: readonly Tensor[], segments: readonly CheckpointSegment[]): Set<number>[] {
  const forwardEnd = g.nodes.length, forwardValues = g.values.length;
  const trial = new Graph();
  for (const v of g.values) trial.values.push(v);
  for (const n of g.nodes) trial.nodes.push(n);
  const segmentOf = new Int32Array(forwardEnd).fill(-1);
  segments.forEach((s, k) => segmentOf.fill(k, s.start, s.end));
  const reads = segments.map(() => new Set<number>());
  let current = -1, from = 0;
  const record = (): void => {
    if (current < 0) return;
    for (let i = from; i < trial.nodes.length; i++) {
      for (const x of trial.nodes[i]!.inputs) {
        const p = x < forwardValues ? g.values[x]!.producer : -1;
        if (p >= 0 && segmentOf[p] === current) reads[current]!.add(x);
      }
    }
  };
  backward(trial, trial.tensor(loss.id), wrt.map((t) => trial.tensor(t.id)), (n) => {
    record();
    current = segmentOf[n.index]!;
    from = trial.nodes.length;
    return { inputs: n.inputs.map((x) => trial.tensor(x)), outputs: n.outputs.map((x) => trial.tensor(x)) };
  });
  record();
  return reads;
}

/** Append the backward nodes; returns the gradient of every value that has one, by value id. */
function backward(g: Graph, loss: Tensor, wrt: readonly Tensor[], operands: Operands): Map<number, Tensor> {
  const firstBackwardNode = g.nodes.length;
  // Values that depend on some wrt tensor (forward reachability).
  const dependsOnWrt = new Uint8Array(g.values.length);
  for (const t of wrt) dependsOnWrt[t.id] = 1;
  for (const n of g.nodes.slice(0, firstBackwardNode)) {
    if (n.inputs.some((i) => dependsOnWrt[i])) for (const o of n.outputs) dependsOnWrt[o] = 1;
  }
  // Values the loss depends on (backward reachability).
  const reachesLoss = new Uint8Array(g.values.length);
  reachesLoss[loss.id] = 1;
  for (let i = firstBackwardNode - 1; i >= 0; i--) {
    const n = g.nodes[i]!;
    if (n.outputs.some((o) => reachesLoss[o])) for (const x of n.inputs) reachesLoss[x] = 1;
  }

  const grads = new Map<number, Tensor>();
  const accumulate = (id: number, t: Tensor): void => {
    const have = grads.get(id);
    grads.set(id, have ? F.add(have, t) : t);
  };
  accumulate(loss.id, F.fill(g, loss.shape, 1));

  for (let i = firstBackwardNode - 1; i >= 0; i--) {
    const node = g.nodes[i]!;
    const dOutputs = node.outputs.map((o) => grads.get(o) ?? null);
    if (dOutputs.every((d) => d === null)) continue;
    const needs = node.inputs.map((x) => dependsOnWrt[x] === 1 && reachesLoss[x] === 1 && g.values[x]!.dtype === 'f32');
    if (!needs.some(Boolean)) continue;
    const def = getOp(node.op);
    if (!def.grad) throw new GraphError(`node #${node.index} ${node.op}${node.name ? ` (${node.name})` : ''}: op has no gradient rule, but a gradient flows through it`);
    const { inputs, outputs } = operands(node);
    // Outputs without a gradient (e.g. attention's lse) get zeros only if the rule needs them all.
    const filled = dOutputs.map((d, k) => d ?? (k === 0 ? F.fill(g, outputs[k]!.shape, 0) : null));
    const scope = `${node.name ?? node.op}.backward`;
    const dIns = g.within(scope, () => def.grad!({ node, inputs, outputs, dOutputs: filled, needs }));
    node.inputs.forEach((x, k) => {
      const d = dIns[k];
      if (!needs[k] || !d) return;
      if (d.shape.join() !== g.values[x]!.shape.join()) {
        throw new GraphError(`node #${node.index} ${node.op}: gradient rule gave ${shapeStr(d.shape)} for input ${k} of shape ${shapeStr(g.values[x]!.shape)}`);
      }
      accumulate(x, d);
    });
  }
  return grads;
}
