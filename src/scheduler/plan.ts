/**
 * Memory planning. Params (weights) live outside the arena, each in memory of its own (`plan.weights`), so
 * the arena holds only activations, inputs and states and a model's size never caps it. In the arena,
 * inputs, states and graph outputs keep their memory for the whole run; every other value lives from the step that writes it to its last reader, and
 * values whose lifetimes do not overlap share memory (first-fit with coalescing). Views (reshape) alias
 * their input and extend its lifetime; in-place ops (a KV-cache write) write into their input's memory.
 */
import type { ExecutionPlan, PlanStep } from '../backends/backend.js';
import { ARENA_ALIGN } from '../backends/backend.js';
import type { Graph } from '../graph/graph.js';
import { getOp } from '../graph/ops/index.js';
import { numel, valueBytes } from '../graph/types.js';

const align = (n: number): number => Math.ceil(n / ARENA_ALIGN) * ARENA_ALIGN;

class FirstFit {
  private free: { at: number; size: number }[] = [];
  top = 0;
  alloc(size: number): number {
    const i = this.free.findIndex((b) => b.size >= size);
    if (i >= 0) {
      const b = this.free[i]!;
      const at = b.at;
      if (b.size === size) this.free.splice(i, 1);
      else { b.at += size; b.size -= size; }
      return at;
    }
    const last = this.free[this.free.length - 1];
    if (last && last.at + last.size === this.top) {
      // Grow the block that ends at the top instead of leaving it stranded.
      this.free.pop();
      this.top = last.at + size;
      return last.at;
    }
    const at = this.top;
    this.top += size;
    return at;
  }
  release(at: number, size: number): void {
    let i = this.free.findIndex((b) => b.at > at);
    if (i < 0) i = this.free.length;
    this.free.splice(i, 0, { at, size });
    // Coalesce with neighbours.
    const next = this.free[i + 1];
    if (next && at + size === next.at) { this.free[i]!.size += next.size; this.free.splice(i + 1, 1); }
    const prev = this.free[i - 1];
    if (prev && prev.at + prev.size === at) { prev.size += this.free[i]!.size; this.free.splice(i, 1); }
  }
}

export function planGraph(graph: Graph): ExecutionPlan {
  const values = graph.values;
  const nodes = graph.nodes;
  const root = values.map((v) => v.id);
  const steps: PlanStep[] = [];
  for (const n of nodes) {
    const def = getOp(n.op);
    if (def.view || def.inplace) root[n.outputs[0]!] = root[n.inputs[0]!]!;
    if (def.view) continue;
    steps.push({ node: n.index, op: n.op, attrs: n.attrs, inputs: n.inputs, outputs: n.outputs });
  }

  // Last step that reads each root (or Infinity when it must survive the run).
  const weights = values.filter((v) => v.kind === 'param').map((v) => ({ value: v.id, bytes: valueBytes(v.dtype, v.shape) }));
  const lastUse = new Array<number>(values.length).fill(-1);
  const forever = Number.POSITIVE_INFINITY;
  for (const v of values) if (v.kind !== 'node') lastUse[v.id] = forever;
  for (const o of graph.outputs) lastUse[root[o]!] = forever;
  steps.forEach((s, i) => {
    for (const x of s.inputs) {
      const r = root[x]!;
      if (lastUse[r]! < i) lastUse[r] = i;
    }
  });

  const offsets = new Array<number>(values.length).fill(-1);
  const heap = new FirstFit();
  for (const v of values) {
    if (v.kind !== 'node' && v.kind !== 'param') offsets[v.id] = heap.alloc(align(Math.max(1, numel(v.shape))));
  }
  const dying: number[][] = steps.map(() => []);
  steps.forEach((s, i) => {
    for (const o of s.outputs) {
      if (root[o] !== o) continue;
      const size = align(Math.max(1, numel(values[o]!.shape)));
      offsets[o] = heap.alloc(size);
      const end = lastUse[o]!;
      // A value nobody reads is freed right after its step.
      if (end !== forever) dying[Math.max(i, end)]!.push(o);
    }
    for (const r of dying[i]!) heap.release(offsets[r]!, align(Math.max(1, numel(values[r]!.shape))));
  });
  for (const v of values) if (offsets[v.id] === -1) offsets[v.id] = offsets[root[v.id]!]!;
  return { values, nodes, offsets, arenaElems: Math.max(heap.top, ARENA_ALIGN), steps, weights, roots: root };
}
