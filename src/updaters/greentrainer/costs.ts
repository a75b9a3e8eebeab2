/**
 * GreenTrainer's per-tensor backward costs, read off the training graph itself (no per-model formula):
 * build the model's forward pass and next-token loss, append the backward pass for every base tensor, and
 * charge each backward node to the tensors whose gradients it leads to. The loss is built in one piece: the
 * trainer's chunked cross-entropy for large vocabularies (and its forming of the rows' gradient in the
 * forward pass when the head is frozen) moves the same work between chunks and passes, which would only
 * blur the table.
 *
 * Tensors are ranked from the output (rank 0) to the input by their first use in the forward pass (a tied
 * embedding is first used at the input, so it ranks deepest). For a backward node let S be the set of
 * tensors whose gradients it feeds (following the backward graph's edges to the gradient outputs):
 * - S = {i} alone: the node is work for tensor i's gradient only — its weight gradient, `dw[i]`;
 * - otherwise: the node lies on the activation-gradient path and runs as soon as any tensor of S trains.
 *   S is (up to siblings such as k beside q) every tensor from its shallowest member down to the input, so
 *   the node runs exactly when the deepest training tensor is at or below that member: it is charged to
 *   `dy[min S]`, the cost of carrying the gradient down to that tensor.
 * A selection whose deepest tensor has rank k then costs Σ_{j ≤ k} dy[j] + Σ_{i selected} dw[i].
 */
import { gradients } from '../../graph/autodiff.js';
import { nodeFlops } from '../../graph/flops.js';
import { Graph } from '../../graph/graph.js';
import type { LlamaConfig } from '../../formats/checkpoint.js';
import { buildModel } from '../../model/families.js';
import { nextTokenLoss } from '../../model/loss.js';

export interface TensorCost {
  name: string;
  /** Operations of this tensor's own weight gradient. */
  dw: number;
  /** Activation-gradient operations the backward pass adds to carry the gradient down to this tensor from the one above it. */
  dy: number;
}

export interface BackwardCosts {
  /** Every base tensor, from the output (index 0) to the input. */
  tensors: TensorCost[];
  /** Operations of the forward pass and the loss. */
  forward: number;
  /** Operations of the backward pass when every tensor trains (Σ dw + Σ dy). */
  backward: number;
}

/** The cost table of a model's training step on batches of `batch` rows of `seq` tokens. */
export function backwardCosts(config: LlamaConfig, batch: number, seq: number): BackwardCosts {
  if (!(Number.isInteger(batch) && batch >= 1 && Number.isInteger(seq) && seq >= 1)) throw new RangeError(`greentrainer: batch and seq must be positive integers (got ${batch}, ${seq})`);
  const g = new Graph();
  const model = buildModel(g, config, { batch, seq });
  const targets = g.input('targets', [batch * seq], 'i32');
  const { loss } = nextTokenLoss(model, targets, { ceChunk: 0 });
  const forwardEnd = g.nodes.length, forwardValues = g.values.length;
  const weights = [...model.weights];
  // Rank by first use, the node closest to the output first.
  const firstUse = new Map<number, number>();
  for (const n of g.nodes) for (const x of n.inputs) if (!firstUse.has(x)) firstUse.set(x, n.index);
  const order = weights
    .map(([name, t]) => ({ name, t, use: firstUse.get(t.id) ?? -1 }))
    .sort((a, b) => b.use - a.use);
  const grads = gradients(loss, order.map((o) => o.t));
  let forward = 0;
  for (let i = 0; i < forwardEnd; i++) forward += nodeFlops(g, g.nodes[i]!);

  // (lowest, highest) rank of the tensors each backward value feeds; Infinity/−1: none.
  const lo = new Float64Array(g.values.length).fill(Infinity), hi = new Float64Array(g.values.length).fill(-1);
  order.forEach((o, rank) => {
    const id = grads.get(o.t).id;
    lo[id] = Math.min(lo[id]!, rank);
    hi[id] = Math.max(hi[id]!, rank);
  });
  const tensors: TensorCost[] = order.map((o) => ({ name: o.name, dw: 0, dy: 0 }));
  for (let i = g.nodes.length - 1; i >= forwardEnd; i--) {
    const n = g.nodes[i]!;
    let a = Infinity, b = -1;
    for (const o of n.outputs) { a = Math.min(a, lo[o]!); b = Math.max(b, hi[o]!); }
    if (b < 0) continue; // feeds no gradient (an output nothing reads)
    const cost = nodeFlops(g, n);
    if (a === b) tensors[a]!.dw += cost;
    else tensors[a]!.dy += cost;
    for (const x of n.inputs) {
      if (x < forwardValues) continue; // forward values carry no gradient
      lo[x] = Math.min(lo[x]!, a);
      hi[x] = Math.max(hi[x]!, b);
    }
  }
  const backward = tensors.reduce((s, t) => s + t.dw + t.dy, 0);
  return { tensors, forward, backward };
}

/** Backward operations of training `selected` (indices into costs.tensors): the reach to the deepest one plus their weight gradients. */
export function selectionCost(costs: Pick<BackwardCosts, 'tensors'>, selected: Iterable<number>): number {
  let deepest = -1, dw = 0;
  for (const i of selected) { deepest = Math.max(deepest, i); dw += costs.tensors[i]!.dw; }
  let dy = 0;
  for (let j = 0; j <= deepest; j++) dy += costs.tensors[j]!.dy;
  return dy + dw;
}
