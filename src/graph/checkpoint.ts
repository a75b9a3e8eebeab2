/**
 * Activation checkpointing as a graph transform. A segment is a run of forward nodes [start, end) (a
 * transformer layer, one chunk of the output head). When `gradients` is given segments, the backward
 * pass, on reaching a segment, first appends a copy of the forward nodes whose values that segment's
 * gradient rules read, computed from the segment's inputs (saved values from before it, and params);
 * the rules then read those copies. A segment's own activations are then read only by later forward
 * nodes of the same segment, so the memory planner frees them during the forward pass, and the arena
 * holds the segment boundaries plus one segment's activations at a time instead of every activation.
 *
 * Recomputation repeats the same kernels on the same inputs, so gradients are bit-identical to the
 * plain pass; dropout draws its mask from a hash of (seed, salt, index), so it repeats too. Nodes that
 * write into their input's memory (kv_write, accumulate) are never copied: their values are read as
 * they are.
 */
import type { Graph, Tensor } from './graph.js';
import { getOp } from './ops/index.js';
import { GraphError, type NodeInfo } from './types.js';

export interface CheckpointSegment {
  /** Label of the recomputed nodes (`model.layers.3`). */
  readonly name: string;
  /** First forward node of the segment (graph.nodes index). */
  readonly start: number;
  /** One past its last node. */
  readonly end: number;
}

const LAYER = /^(model\.layers\.\d+)(?:\.|$)/;

/**
 * One segment per transformer layer of a forward graph, from node labels: a node labelled
 * `model.layers.N…` opens (or continues) layer N's segment; an unlabelled node (a residual add, a
 * reshape) joins the open segment; a node labelled outside any layer (`model.norm`, an adapter's shared
 * encoder) closes it.
 */
export function layerSegments(g: Graph, end = g.nodes.length): CheckpointSegment[] {
  const out: CheckpointSegment[] = [];
  let open: { name: string; start: number } | undefined;
  const close = (at: number): void => {
    if (open) out.push({ name: open.name, start: open.start, end: at });
    open = undefined;
  };
  for (let i = 0; i < end; i++) {
    const label = g.nodes[i]!.name;
    if (label === undefined) continue;
    const layer = LAYER.exec(label)?.[1];
    if (layer === open?.name) continue;
    close(i);
    if (layer !== undefined) open = { name: layer, start: i };
  }
  close(end);
  return out;
}

/** Run `build` and return what it returns with the segment of the nodes it appended. */
export function segment<T>(g: Graph, name: string, build: () => T): { value: T; segment: CheckpointSegment } {
  const start = g.nodes.length;
  const value = build();
  return { value, segment: { name, start, end: g.nodes.length } };
}

/** Sorted, disjoint, non-empty segments inside the forward nodes [0, forwardEnd); throws otherwise. */
export function checkSegments(segments: readonly CheckpointSegment[], forwardEnd: number): CheckpointSegment[] {
  const sorted = segments.filter((s) => s.end > s.start).sort((a, b) => a.start - b.start);
  sorted.forEach((s, i) => {
    if (!(Number.isInteger(s.start) && Number.isInteger(s.end) && s.start >= 0 && s.end <= forwardEnd)) {
      throw new GraphError(`checkpoint segment ${s.name} [${s.start}, ${s.end}) is outside the forward nodes [0, ${forwardEnd})`);
    }
    const prev = sorted[i - 1];
    if (prev && prev.end > s.start) throw new GraphError(`checkpoint segments ${prev.name} [${prev.start}, ${prev.end}) and ${s.name} [${s.start}, ${s.end}) overlap`);
  });
  return sorted;
}

/**
 * The operands the gradient rules of checkpointed nodes read. `reads[k]` lists the values produced
 * inside segment k that its gradient rules read (found by a trial backward pass); the first call for a
 * node of segment k appends the recomputation of those values and what they depend on inside k.
 */
export function recomputingOperands(g: Graph, segments: readonly CheckpointSegment[], reads: readonly Set<number>[], forwardEnd: number): (node: NodeInfo) => { inputs: Tensor[]; outputs: Tensor[] } {
  const segmentOf = new Int32Array(forwardEnd).fill(-1);
  segments.forEach((s, k) => segmentOf.fill(k, s.start, s.end));
  const producedIn = (id: number, k: number): boolean => {
    const p = g.values[id]!.producer;
    return p >= 0 && p < forwardEnd && segmentOf[p] === k;
  };
  const copies: (Map<number, number> | undefined)[] = segments.map(() => undefined);

  const recompute = (k: number): Map<number, number> => {
    const s = segments[k]!;
    const needed = new Set(reads[k]);
    const copy = new Uint8Array(s.end - s.start);
    for (let i = s.end - 1; i >= s.start; i--) {
      const n = g.nodes[i]!;
      if (getOp(n.op).inplace || !n.outputs.some((o) => needed.has(o))) continue;
      copy[i - s.start] = 1;
      for (const x of n.inputs) if (producedIn(x, k)) needed.add(x);
    }
    const map = new Map<number, number>();
    g.within(`${s.name}.recompute`, () => {
      for (let i = s.start; i < s.end; i++) {
        if (!copy[i - s.start]) continue;
        const n = g.nodes[i]!;
        const outs = g.apply(n.op, n.inputs.map((x) => g.tensor(map.get(x) ?? x)), n.attrs);
        n.outputs.forEach((o, j) => map.set(o, outs[j]!.id));
      }
    });
    return map;
  };

  return (node) => {
    const k = node.index < forwardEnd ? segmentOf[node.index]! : -1;
    const map = k < 0 ? undefined : (copies[k] ??= recompute(k));
    const t = (id: number): Tensor => g.tensor(map?.get(id) ?? id);
    return { inputs: node.inputs.map(t), outputs: node.outputs.map(t) };
  };
}
