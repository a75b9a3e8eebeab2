/**
 * Arithmetic operations a node performs, read from its op, attributes and shapes alone: the cost model that
 * lets a trainer compare what different backward passes would do before it builds them (GreenTrainer's
 * per-tensor costs, src/updaters/greentrainer). A multiply-add counts as 2 operations, so a matmul of
 * [M, K]·[K, N] is 2·M·N·K; attention counts only the (query, key) pairs its mask lets through; ops that only
 * move or view memory (reshape, transpose, slice, concat, gathers) count 0. Elementwise ops count a small
 * fixed number per output element: they are a rounding error next to the matmuls of a transformer, but they
 * are counted so a tiny model's table is complete.
 */
import type { Graph } from './graph.js';
import { GraphError, type NodeInfo, numel } from './types.js';

/** Operations per output element of the elementwise and normalisation ops (per input element for reductions). */
export const PER_ELEMENT_OPS: Readonly<Record<string, number>> = {
  add: 1, sub: 1, mul: 1, div: 1, neg: 1, scale: 1, accumulate: 1,
  exp: 1, log: 1, sqrt: 1, erf: 1, tanh: 1, relu: 1, relu_backward: 1,
  // silu(x) = x / (1 + e^−x): negate, exp, add, divide; its derivative s·(1 + x·(1 − s)) times dy.
  silu: 4, silu_backward: 8,
  // gelu with erf: scale, erf, add, two products; its derivative adds the Gaussian density.
  gelu: 5, gelu_backward: 10,
  // dropout: a hash compare and a scale per element.
  dropout: 2,
  // rope: each element is a·cos ± b·sin (two products and an add).
  rope: 3,
  // rmsnorm: square, sum, scale by the reciprocal root, times the weight.
  rmsnorm: 4,
  // rmsnorm_backward: dx (dy·w, the dot with x, the correction) and dw (dy·x·r summed over rows).
  rmsnorm_backward: 8,
  layernorm: 7, layernorm_backward: 12,
  // dequantize: a scale per element.
  dequantize: 1,
  // reductions: one add per input element.
  sum: 1, mean: 1,
  // embedding_backward: one add per gradient element scattered into the table.
  embedding_backward: 1,
};

/** Ops that compute nothing: views, copies, gathers, constants. */
const MOVES = new Set(['reshape', 'transpose', 'slice', 'pad', 'concat', 'fill', 'broadcast_to', 'stop_gradient', 'embedding', 'kv_write']);

/** Operations per (query, key) pair and head dimension: q·k and p·v (forward); 5 such products backward (flash-attention's recomputation included). */
const ATTENTION_FORWARD_PER_PAIR_DIM = 4, ATTENTION_BACKWARD_PER_PAIR_DIM = 10;
/** Softmax work per (query, key) pair: subtract the max, exp, add (forward); recomputed p, dp − δ, product (backward). */
const ATTENTION_FORWARD_PER_PAIR = 3, ATTENTION_BACKWARD_PER_PAIR = 4;
/** Cross-entropy per logit: max, exp, sum (forward); exp, divide, subtract the one-hot, scale (backward). */
const CE_FORWARD_PER_LOGIT = 3, CE_BACKWARD_PER_LOGIT = 4;

/** Operations node `node` of `g` performs. Throws for an op this table does not know, naming it. */
export function nodeFlops(g: Graph, node: NodeInfo): number {
  const shape = (id: number): readonly number[] => g.values[id]!.shape;
  const out0 = numel(shape(node.outputs[0]!));
  if (MOVES.has(node.op)) return 0;
  switch (node.op) {
    case 'matmul': {
      const a = shape(node.inputs[0]!), c = shape(node.outputs[0]!);
      const k = a[node.attrs.transA === true ? a.length - 2 : a.length - 1]!;
      return 2 * numel(c) * k;
    }
    case 'attention':
    case 'attention_backward': {
      const [B, T, Hq, D] = shape(node.inputs[0]!) as [number, number, number, number];
      const S = shape(node.inputs[1]!)[1]!;
      const pairs = B * Hq * visiblePairs(T, S, node.attrs.causal === true, typeof node.attrs.window === 'number' ? node.attrs.window : undefined);
      return node.op === 'attention'
        ? pairs * (ATTENTION_FORWARD_PER_PAIR_DIM * D + ATTENTION_FORWARD_PER_PAIR)
        : pairs * (ATTENTION_BACKWARD_PER_PAIR_DIM * D + ATTENTION_BACKWARD_PER_PAIR);
    }
    case 'cross_entropy': return CE_FORWARD_PER_LOGIT * numel(shape(node.inputs[0]!));
    case 'cross_entropy_backward': return CE_BACKWARD_PER_LOGIT * out0;
    case 'sum':
    case 'mean': return numel(shape(node.inputs[0]!));
    case 'embedding_backward': return numel(shape(node.inputs[1]!));
    default: {
      const per = PER_ELEMENT_OPS[node.op];
      if (per === undefined) throw new GraphError(`node #${node.index} ${node.op}: no operation count is known for this op (add it to src/graph/flops.ts)`);
      // A fused backward's outputs after the first (rmsnorm's dw) are reductions folded into its per-element count.
      return per * (node.op.endsWith('_backward') && node.op !== 'embedding_backward' ? numel(shape(node.inputs[0]!)) : out0);
    }
  }
}

/**
 * (query, key) pairs one head of one row computes: all T·S without a causal mask; with it, query t (at
 * position t + S − T) sees keys 0…t + S − T, and with a window w only the last w of them.
 */
export function visiblePairs(T: number, S: number, causal: boolean, window?: number): number {
  if (!causal) return T * S;
  let n = 0;
  for (let t = 0; t < T; t++) {
    const p = t + S - T;
    n += Math.min(p + 1, window ?? Infinity);
  }
  return n;
}

/** Operations of nodes [from, to) of a graph. */
export function graphFlops(g: Graph, from = 0, to = g.nodes.length): number {
  let n = 0;
  for (let i = from; i < to; i++) n += nodeFlops(g, g.nodes[i]!);
  return n;
}
