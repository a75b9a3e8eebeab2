/**
 * The draft tree and its attention mask. Node 0 is the root: the last token already chosen by the model
 * (not yet in the KV cache). Every other node is a drafted token under its parent; parents come before
 * their children, so node i sits in cache row pos + i and its rotary position is pos + depth(i).
 */
import type { TrigramTable } from './trigram.js';

export interface DraftNode {
  token: number;
  /** Index of the parent node (−1 for the root). */
  parent: number;
  depth: number;
}

export interface DraftShape {
  /** Deepest drafted token (the root is depth 0). */
  depth: number;
  /** Most children of one node. */
  width: number;
  /** Most drafted tokens in all (the root excluded). */
  budget: number;
}

/**
 * Grow a tree best-first: every candidate (a node's next token, from the table's continuations of its
 * last two tokens) is scored by the estimated probability of its whole path, Π P̂(token | two before);
 * the most probable candidate joins next, until `budget` nodes or no candidates. `before` is the token
 * before the root (−1: none). This spends the budget where the table expects acceptance: a confident
 * context grows one long chain, an uncertain one several short branches.
 */
export function buildDraftTree(table: TrigramTable, before: number, root: number, shape: DraftShape): DraftNode[] {
  const nodes: DraftNode[] = [{ token: root, parent: -1, depth: 0 }];
  const children = [0];
  interface Candidate { parent: number; token: number; p: number; order: number }
  const open: Candidate[] = [];
  let order = 0;
  const expand = (i: number, p: number) => {
    const n = nodes[i]!;
    if (n.depth >= shape.depth) return;
    const a = n.parent >= 0 ? nodes[n.parent]!.token : before;
    for (const c of table.candidates(a, n.token, shape.width)) open.push({ parent: i, token: c.token, p: p * c.p, order: order++ });
  };
  expand(0, 1);
  while (nodes.length - 1 < shape.budget && open.length) {
    // Highest path probability first; ties by the order candidates were proposed (deterministic).
    let best = 0;
    for (let j = 1; j < open.length; j++) {
      const x = open[j]!, y = open[best]!;
      if (x.p > y.p || (x.p === y.p && x.order < y.order)) best = j;
    }
    const c = open.splice(best, 1)[0]!;
    if (children[c.parent]! >= shape.width) continue;
    children[c.parent]!++;
    nodes.push({ token: c.token, parent: c.parent, depth: nodes[c.parent]!.depth + 1 });
    children.push(0);
    expand(nodes.length - 1, c.p);
  }
  return nodes;
}

/**
 * The i32 [slots, cacheLen] mask of a tree written at cache rows pos…: node i sees the cached prefix
 * (rows < pos) and the rows of its ancestors and itself. Slots past the tree are padding: they see the
 * root only, so their outputs are finite and ignored.
 */
export function treeMask(nodes: readonly DraftNode[], pos: number, slots: number, cacheLen: number): Int32Array {
  const m = new Int32Array(slots * cacheLen);
  for (let i = 0; i < slots; i++) {
    const row = i * cacheLen;
    m.fill(1, row, row + pos);
    if (i >= nodes.length) { m[row + pos] = 1; continue; }
    for (let a = i; a >= 0; a = nodes[a]!.parent) if (pos + a < cacheLen) m[row + pos + a] = 1;
  }
  return m;
}
