/**
 * Typed builders for every op in the catalogue. `matmul(a, b)` appends a node to `a`'s graph and
 * returns its output; shape errors name the node and the shapes.
 */
import type { Graph, Tensor } from './graph.js';
import { isCompact, type Shape } from './types.js';

export interface MatmulOptions { transA?: boolean; transB?: boolean }
export const matmul = (a: Tensor, b: Tensor, o: MatmulOptions = {}): Tensor =>
  a.graph.apply1('matmul', [a, b], { transA: o.transA ?? false, transB: o.transB ?? false });

export const add = (a: Tensor, b: Tensor): Tensor => a.graph.apply1('add', [a, b]);
export const sub = (a: Tensor, b: Tensor): Tensor => a.graph.apply1('sub', [a, b]);
export const mul = (a: Tensor, b: Tensor): Tensor => a.graph.apply1('mul', [a, b]);
export const div = (a: Tensor, b: Tensor): Tensor => a.graph.apply1('div', [a, b]);
/** x · factor, with a constant factor. */
export const scale = (x: Tensor, factor: number): Tensor => x.graph.apply1('scale', [x], { factor });
export const neg = (x: Tensor): Tensor => x.graph.apply1('neg', [x]);
export const exp = (x: Tensor): Tensor => x.graph.apply1('exp', [x]);
export const log = (x: Tensor): Tensor => x.graph.apply1('log', [x]);
export const sqrt = (x: Tensor): Tensor => x.graph.apply1('sqrt', [x]);
export const silu = (x: Tensor): Tensor => x.graph.apply1('silu', [x]);
/** GELU, tanh approximation (as GPT-2 and most Hugging Face configs use). */
export const gelu = (x: Tensor): Tensor => x.graph.apply1('gelu', [x]);
/** The error function: to double precision on js; wasm and webgpu use a float32 approximation (absolute error below 2e-7). */
export const erf = (x: Tensor): Tensor => x.graph.apply1('erf', [x]);
/** GELU in its exact form, ½x(1 + erf(x/√2)) (BERT's `gelu`), built from erf. */
export const geluErf = (x: Tensor): Tensor => mul(scale(x, 0.5), add(erf(scale(x, Math.SQRT1_2)), fill(x.graph, [1], 1)));
/** tanh (an op with kernels on every backend; its gradient is 1 − tanh², read from the output, finite for every x). */
export const tanh = (x: Tensor): Tensor => x.graph.apply1('tanh', [x]);
/** max(x, 0); the gradient at 0 is 0. */
export const relu = (x: Tensor): Tensor => x.graph.apply1('relu', [x]);

/** Inverted dropout with rate p; the mask is a hash of (seed, element index), so any backend draws the same one. */
export const dropout = (x: Tensor, seed: Tensor, p: number, salt = 0): Tensor => x.graph.apply1('dropout', [x, seed], { p, salt });
/** Uniform numbers in (0, 1) of the given shape, a hash of (seed + salt, element index): the same on any backend. */
export const uniform = (seed: Tensor, shape: Shape, salt = 0): Tensor => seed.graph.apply1('uniform', [seed], { shape: [...shape], salt });
/** Identity forward; blocks the gradient. */
export const stopGradient = (x: Tensor): Tensor => x.graph.apply1('stop_gradient', [x]);

/** acc += x, in place (acc is a state value). */
export const accumulate = (acc: Tensor, x: Tensor): Tensor => acc.graph.apply1('accumulate', [acc, x]);

export const sum = (x: Tensor, axes?: number[], keepDims = false): Tensor =>
  x.graph.apply1('sum', [x], { axes: axes ?? null, keepDims });
export const mean = (x: Tensor, axes?: number[], keepDims = false): Tensor =>
  x.graph.apply1('mean', [x], { axes: axes ?? null, keepDims });
export const broadcastTo = (x: Tensor, shape: Shape): Tensor => x.graph.apply1('broadcast_to', [x], { shape: [...shape] });

/** Reshape; one dimension may be -1 (inferred). A view: no data moves. */
export const reshape = (x: Tensor, shape: readonly number[]): Tensor => x.graph.apply1('reshape', [x], { shape: [...shape] });
export const transpose = (x: Tensor, perm: readonly number[]): Tensor => x.graph.apply1('transpose', [x], { perm: [...perm] });
export const slice = (x: Tensor, axis: number, start: number, end: number): Tensor =>
  x.graph.apply1('slice', [x], { axis, start, end });
/** Zero padding along one axis. */
export const pad = (x: Tensor, axis: number, before: number, after: number): Tensor =>
  x.graph.apply1('pad', [x], { axis, before, after });
export const concat = (xs: readonly Tensor[], axis: number): Tensor => xs[0]!.graph.apply1('concat', xs, { axis });
export const fill = (g: Graph, shape: Shape, value: number): Tensor => g.apply1('fill', [], { shape: [...shape], value });

/** RMSNorm over the last axis: x / sqrt(mean(x²) + eps) · w. */
export const rmsnorm = (x: Tensor, w: Tensor, eps: number): Tensor => x.graph.apply1('rmsnorm', [x, w], { eps });
/** LayerNorm over the last axis: (x − mean) / sqrt(var + eps) · w + b. */
export const layernorm = (x: Tensor, w: Tensor, b: Tensor, eps: number): Tensor =>
  x.graph.apply1('layernorm', [x, w, b], { eps });

export interface RopeOptions {
  theta: number;
  /** 'pairs': rotate (x[2i], x[2i+1]) as GGUF/llama.cpp; 'half': rotate (x[i], x[i+D/2]) as Hugging Face. */
  layout: 'pairs' | 'half';
  /** Position of the first row when `positions` is not given. */
  offset?: number;
  /** Per-pair inverse frequencies (D/2 of them) replacing θ^(−2i/D): RoPE scaling (src/model/rope-scaling.ts). */
  freqs?: readonly number[];
  /** Factor on cos and sin (YaRN's attention factor); 1 unless freqs is given. */
  scale?: number;
}
/** Rotary position embedding on x [B, T, H, D]; positions (i32 [T]) override offset + 0..T-1. */
export const rope = (x: Tensor, o: RopeOptions, positions?: Tensor): Tensor =>
  x.graph.apply1('rope', positions ? [x, positions] : [x], {
    theta: o.theta, layout: o.layout, offset: o.offset ?? 0, inverse: false,
    ...(o.freqs ? { freqs: [...o.freqs], scale: o.scale ?? 1 } : {}),
  });

export interface AttentionOptions {
  /** Mask keys after each query's position (default true). */
  causal?: boolean;
  /** Factor on q·k (default 1/sqrt(D)). */
  scale?: number;
  /**
   * Sliding window (causal only): the query at position p attends keys j with p − window < j ≤ p, as
   * Hugging Face's Mistral and Gemma 2/3 `sliding_window`. Positions are aligned as the causal rule aligns
   * them, so it holds with a KV cache longer than the window too.
   */
  window?: number;
  /** Logit soft-capping (Gemma 2 `attn_logit_softcapping`): a score s (after scale) becomes softcap·tanh(s/softcap). */
  softcap?: number;
  /**
   * Valid keys per batch row, i32 [B], each in 1…S: keys j ≥ keyLengths[b] are masked (right-padded batches,
   * e.g. a BERT-style encoder's attention mask). Query positions stay t + S − T in every row, and a padded
   * query (t ≥ keyLengths[b] when T = S) still attends the row's valid keys (those its window, if any,
   * reaches; none: zeros), so its output is defined and finite; mask it in the loss. Differentiable in q, k,
   * v (not in the lengths). Not with kvLen. js and wasm refuse lengths outside 1…S when they run; webgpu
   * clamps them to 0…S.
   */
  keyLengths?: Tensor;
  /**
   * An explicit mask, i32 [T, S] shared by every batch row and head: query t sees key j only where
   * mask[t, j] ≠ 0, on top of the rules above (tree-shaped drafts verified in one pass: each draft token
   * sees the cached prefix and its own ancestors). Forward only (no gradient).
   */
  mask?: Tensor;
}
/**
 * Fused scaled-dot-product attention. q [B, T, Hq, D], k and v [B, S, Hkv, D] with Hq a multiple of Hkv
 * (grouped-query). Causal masking aligns the last query with the last key (S ≥ T, as with a KV cache).
 * kvLen (i32 [1], KV-cache decoding, no gradient): only the first kvLen keys are valid, and the last query
 * meets key kvLen − 1. Returns [B, T, Hq, D].
 */
export const attention = (q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions = {}, kvLen?: Tensor): Tensor => {
  if (kvLen && o.keyLengths) throw new Error('attention takes either kvLen (a KV cache) or keyLengths (per-row padding), not both');
  const lengths = kvLen ?? o.keyLengths;
  return q.graph.apply('attention', [q, k, v, ...(lengths ? [lengths] : []), ...(o.mask ? [o.mask] : [])], {
    causal: o.causal ?? true, scale: o.scale ?? 1 / Math.sqrt(q.shape[q.rank - 1]!),
    ...(o.window !== undefined ? { window: o.window } : {}),
    ...(o.softcap !== undefined ? { softcap: o.softcap } : {}),
    ...(o.keyLengths ? { rowLengths: true } : {}),
    ...(o.mask ? { mask: true } : {}),
  })[0]!;
};

/** Write rows [B, T, H, D] into a KV cache [B, S, H, D] at positions pos.. (i32 [1]), in place. */
export const kvWrite = (cache: Tensor, rows: Tensor, pos: Tensor): Tensor => cache.graph.apply1('kv_write', [cache, rows, pos]);

/** Rows of `table` [V, D] picked by `ids` (i32 [...]) → [..., D]. */
/** A compact frozen weight as f32 (an f32 tensor is returned as it is). */
export const dequantize = (w: Tensor): Tensor => (isCompact(w.dtype) ? w.graph.apply1('dequantize', [w]) : w);
export const embedding = (table: Tensor, ids: Tensor): Tensor => table.graph.apply1('embedding', [table, ids]);

/** Mean cross-entropy of logits [N, V] against targets (i32 [N]); rows whose target is ignoreIndex do not count. */
export const crossEntropy = (logits: Tensor, targets: Tensor, ignoreIndex = -100): Tensor =>
  logits.graph.apply1('cross_entropy', [logits, targets], { ignoreIndex });

/** Soft-capping (Gemma 2's logits): cap·tanh(x/cap), smooth and bounded by ±cap. */
export const softcap = (x: Tensor, cap: number): Tensor => scale(tanh(scale(x, 1 / cap)), cap);
