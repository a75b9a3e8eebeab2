/**
 * Mixed-adapter batches (Hugging Face PEFT's `adapter_names`): each row of one batch uses its own adapter,
 * or none. The rows pick by an i32 id per row (the task-id input that Poly's routing uses too): 0 is the
 * base model, i the i-th of the row adapters. A one-hot selector table turns the ids into masks, and each
 * adapted module computes
 *
 *   y = base(x) + Σ_a m_a ⊙ (y_a − base(x)),   m_a ∈ {0, 1} per row,
 *
 * where y_a is adapter a's output on that module alone. One row sees exactly one y_a, so its output is the
 * adapter's own (to float rounding: one subtraction and one addition). Every row pays for every adapter's
 * branch; that is the price of one forward pass over the batch instead of one per adapter.
 */
import * as F from '../../graph/api.js';
import type { Graph, Tensor } from '../../graph/graph.js';
import { TASK_ID_INPUT } from '../../model/names.js';
import type { Adapter } from '../adapted-model.js';

/** The name a row gives to use no adapter (as in PEFT). */
export const MIXED_BASE = '__base__';
/** The graph parameter holding the one-hot selector, [adapters + 1, adapters]. */
export const ROW_SELECTOR_PARAM = '__rows__/selector';

/** Refuse adapters that cannot be chosen per row, by name and reason. */
export function checkRowAdapters(adapters: readonly Adapter[]): void {
  if (adapters.length === 0) throw new Error('mixed batch: no adapters named');
  const names = new Set<string>();
  for (const a of adapters) {
    if (names.has(a.name)) throw new Error(`mixed batch: adapter '${a.name}' is named twice`);
    names.add(a.name);
    if (a.name === MIXED_BASE) throw new Error(`mixed batch: '${MIXED_BASE}' names the base model; an adapter cannot use it`);
    if (a.merged) throw new Error(`mixed batch: adapter '${a.name}' is merged into the base weights; unmerge it first`);
    const m = a.method;
    if (m.embeddings || m.attentionPrefix) throw new Error(`mixed batch: adapter '${a.name}' (${m.name}) adds positions before the input; rows of one batch cannot differ in that`);
    if (m.taskCount) throw new Error(`mixed batch: adapter '${a.name}' (${m.name}) routes rows by task id itself`);
    if (a.baseOverrides.size) throw new Error(`mixed batch: adapter '${a.name}' replaces base weights (${[...a.baseOverrides.keys()].slice(0, 3).join(', ')}); rows of one batch share the base`);
  }
}

/** The selector table: row 0 (the base) all zeros, row i + 1 the one-hot of adapter i. */
export function rowSelectorTable(n: number): Float32Array {
  const t = new Float32Array((n + 1) * n);
  for (let i = 0; i < n; i++) t[(i + 1) * n + i] = 1;
  return t;
}

/** Per-row masks [rows, 1, …] for adapter `index`, broadcastable against an output of `rank` dimensions. */
export function rowMask(g: Graph, n: number, rows: number, index: number, rank: number): Tensor {
  const ids = g.byName(TASK_ID_INPUT) ?? g.input(TASK_ID_INPUT, [rows], 'i32');
  const selector = g.byName(ROW_SELECTOR_PARAM) ?? g.param(ROW_SELECTOR_PARAM, [n + 1, n]);
  const onehot = F.embedding(selector, ids); // [rows, n]
  return F.reshape(F.slice(onehot, 1, index, index + 1), [rows, ...new Array<number>(rank - 1).fill(1)]);
}

/** y = base + m ⊙ (adapted − base), summed over the adapters of one module. */
export function mixRows(base: Tensor, branches: readonly { out: Tensor; mask: Tensor }[]): Tensor {
  let y = base;
  for (const { out, mask } of branches) y = F.add(y, F.mul(F.sub(out, base), mask));
  return y;
}
