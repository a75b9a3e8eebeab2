/**
 * Fused neural-network ops with explicit backward ops (as llm.c pairs forward and backward):
 * norms, rotary embedding, causal attention, embedding lookup, cross-entropy.
 * Backward ops are kernels of their own and are not differentiated again.
 */
import * as F from '../api.js';
import { isCompact, shapeStr } from '../types.js';
import type { OutSpec } from './registry.js';
import { defineOp } from './registry.js';
import { expectInputs, numAttr, sameShape } from './shape.js';

const lastDim = (s: readonly number[]): number => s[s.length - 1] ?? 1;

// rmsnorm(x [..., D], w [D]) → y [..., D];  y = x · rsqrt(mean(x²) + eps) · w
defineOp({
  name: 'rmsnorm',
  infer(ins, attrs) {
    expectInputs(ins, 2); numAttr(attrs, 'eps');
    const [x, w] = [ins[0]!, ins[1]!];
    if (x.shape.length < 1 || w.shape.length !== 1 || w.shape[0] !== lastDim(x.shape)) throw new Error('weight must be [D] with D the last dimension of x');
    return [{ shape: x.shape, dtype: 'f32' }];
  },
  grad({ node, inputs: [x, w], dOutputs: [dy] }) {
    const [dx, dw] = x!.graph.apply('rmsnorm_backward', [x!, w!, dy!], { eps: node.attrs.eps as number });
    return [dx!, dw!];
  },
});
// rmsnorm_backward(x, w, dy) → dx [..., D], dw [D]
defineOp({
  name: 'rmsnorm_backward',
  infer(ins, attrs) {
    expectInputs(ins, 3); numAttr(attrs, 'eps');
    if (!sameShape(ins[0]!.shape, ins[2]!.shape)) throw new Error('x and dy must have the same shape');
    return [{ shape: ins[0]!.shape, dtype: 'f32' }, { shape: ins[1]!.shape, dtype: 'f32' }];
  },
});

// layernorm(x [..., D], w [D], b [D]) → y;  y = (x − μ) · rsqrt(σ² + eps) · w + b
defineOp({
  name: 'layernorm',
  infer(ins, attrs) {
    expectInputs(ins, 3); numAttr(attrs, 'eps');
    const D = lastDim(ins[0]!.shape);
    if (ins[1]!.shape.join() !== `${D}` || ins[2]!.shape.join() !== `${D}`) throw new Error('weight and bias must be [D] with D the last dimension of x');
    return [{ shape: ins[0]!.shape, dtype: 'f32' }];
  },
  grad({ node, inputs: [x, w], dOutputs: [dy] }) {
    const [dx, dw, db] = x!.graph.apply('layernorm_backward', [x!, w!, dy!], { eps: node.attrs.eps as number });
    return [dx!, dw!, db!];
  },
});
// layernorm_backward(x, w, dy) → dx, dw, db
defineOp({
  name: 'layernorm_backward',
  infer(ins, attrs) {
    expectInputs(ins, 3); numAttr(attrs, 'eps');
    if (!sameShape(ins[0]!.shape, ins[2]!.shape)) throw new Error('x and dy must have the same shape');
    return [{ shape: ins[0]!.shape, dtype: 'f32' }, { shape: ins[1]!.shape, dtype: 'f32' }, { shape: ins[1]!.shape, dtype: 'f32' }];
  },
});

// rope(x [B, T, H, D], positions? i32 [T]) → [B, T, H, D]. A rotation by angle p·θ^(−2i/D) per pair;
// its adjoint is the rotation by the opposite angle (attribute inverse). Optional attributes freqs (D/2 per-pair
// inverse frequencies replacing θ^(−2i/D)) and scale (a factor on cos and sin) carry RoPE scaling; the
// adjoint keeps both (scale·R(−α) is the transpose of scale·R(α)).
defineOp({
  name: 'rope',
  infer(ins, attrs) {
    expectInputs(ins, [1, 2]);
    const x = ins[0]!;
    numAttr(attrs, 'theta'); numAttr(attrs, 'offset', 0);
    if (attrs.layout !== 'pairs' && attrs.layout !== 'half') throw new Error(`layout must be 'pairs' or 'half' (got ${JSON.stringify(attrs.layout)})`);
    if (x.shape.length !== 4 || lastDim(x.shape) % 2 !== 0) throw new Error('x must be [B, T, H, D] with D even');
    if (attrs.freqs !== undefined) {
      const f = attrs.freqs;
      if (!Array.isArray(f) || f.length !== lastDim(x.shape) / 2 || !f.every((v) => typeof v === 'number' && Number.isFinite(v))) {
        throw new Error(`freqs must be ${lastDim(x.shape) / 2} finite numbers (one per rotary pair)`);
      }
      numAttr(attrs, 'scale', 1);
    }
    if (ins[1] && (ins[1].dtype !== 'i32' || ins[1].shape.length !== 1 || ins[1].shape[0] !== x.shape[1])) throw new Error('positions must be i32 [T]');
    return [{ shape: x.shape, dtype: 'f32' }];
  },
  grad({ node, inputs, dOutputs: [dy] }) {
    const attrs = { ...node.attrs, inverse: node.attrs.inverse !== true };
    return [dy!.graph.apply1('rope', inputs.length > 1 ? [dy!, inputs[1]!] : [dy!], attrs), null];
  },
});

function attentionShapes(ins: readonly { shape: readonly number[]; dtype: string }[]): [number, number, number, number, number, number] {
  const [q, k, v] = [ins[0]!, ins[1]!, ins[2]!];
  if (q.shape.length !== 4 || k.shape.length !== 4 || !sameShape(k.shape, v.shape)) throw new Error('q must be [B, T, Hq, D]; k and v [B, S, Hkv, D]');
  const [B, T, Hq, D] = q.shape as [number, number, number, number];
  const [Bk, S, Hkv, Dk] = k.shape as [number, number, number, number];
  if (Bk !== B || Dk !== D) throw new Error('batch and head size of q, k, v must match');
  if (Hkv === 0 || Hq % Hkv !== 0) throw new Error(`query heads (${Hq}) must be a multiple of key/value heads (${Hkv})`);
  return [B, T, Hq, D, S, Hkv];
}

/**
 * Checks the masking attrs and the optional 4th input shared by attention and its backward:
 * `window` (positive integer, causal only), `softcap` (positive number), and `rowLengths` (the 4th
 * input is i32 [B], valid keys per batch row) against the i32 [1] kvLen form.
 */
function attentionMasking(ins: readonly { shape: readonly number[]; dtype: string }[], lengths: number, attrs: Record<string, unknown>, B: number): void {
  const w = attrs.window, cap = attrs.softcap;
  if (w !== undefined) {
    if (typeof w !== 'number' || !Number.isSafeInteger(w) || w < 1) throw new Error(`attention window must be a positive integer (got ${JSON.stringify(w)})`);
    if (attrs.causal !== true) throw new Error('attention window needs causal masking');
  }
  if (cap !== undefined && !(typeof cap === 'number' && Number.isFinite(cap) && cap > 0)) throw new Error(`attention softcap must be a positive number (got ${JSON.stringify(cap)})`);
  const len = ins[lengths];
  if (attrs.rowLengths === true) {
    if (!len || len.dtype !== 'i32' || len.shape.join() !== String(B)) throw new Error(`per-row key lengths must be i32 [${B}] (one per batch row), got ${len ? `${len.dtype} [${len.shape.join(', ')}]` : 'none'}`);
  } else if (len && (len.dtype !== 'i32' || len.shape.join() !== '1')) {
    throw new Error(`kvLen must be i32 [1] (per-row key lengths need the rowLengths attribute), got ${len.dtype} [${len.shape.join(', ')}]`);
  }
}

// attention(q, k, v, lengths?) → out [B, T, Hq, D], lse [B, Hq, T] (log-sum-exp of each query's scores,
// kept for backward). Masking, for query t of batch row b:
//   valid keys: kvLen (i32 [1]: a KV cache filled up to kvLen), or with rowLengths len[b] (i32 [B]: a
//   right-padded batch), or all S.
//   position of query t: p = t + kvLen − T with kvLen, else t + S − T (the last query meets the last
//   key of a KV cache; with right padding every row's queries keep their own positions).
//   causal: keys j ≤ p; window w (causal only): also j > p − w.
//   softcap c: a score s (after scale) becomes c·tanh(s/c) before the softmax.
//   mask (attr mask, the last input, i32 [T, S]): query t also needs mask[t, j] ≠ 0 to see key j.
// A query that sees no key gives zeros and lse −∞. The kvLen and mask forms have no gradient.
defineOp({
  name: 'attention',
  infer(ins, attrs) {
    const masked = attrs.mask === true;
    expectInputs(ins, masked ? [4, 5] : [3, 4]); numAttr(attrs, 'scale');
    const [B, T, Hq, D, S] = attentionShapes(ins);
    if (masked) {
      const m = ins[ins.length - 1]!;
      if (m.dtype !== 'i32' || m.shape.join() !== `${T},${S}`) throw new Error(`attention mask must be i32 [${T}, ${S}] (queries × keys), got ${m.dtype} [${m.shape.join(', ')}]`);
    }
    attentionMasking(masked ? ins.slice(0, -1) : ins, 3, attrs, B);
    if (attrs.causal === true && S < T) throw new Error(`causal attention needs at least as many keys (${S}) as queries (${T})`);
    return [{ shape: [B, T, Hq, D], dtype: 'f32' }, { shape: [B, Hq, T], dtype: 'f32' }];
  },
  grad({ node, inputs: [q, k, v, lengths], outputs: [out, lse], dOutputs: [dOut] }) {
    if (node.attrs.mask === true) throw new Error('attention with an explicit mask (draft verification) has no gradient');
    if (lengths && node.attrs.rowLengths !== true) throw new Error('attention with a kvLen input (KV-cache decoding) has no gradient');
    const ins = [q!, k!, v!, out!, lse!, dOut!, ...(lengths ? [lengths] : [])];
    const [dq, dk, dv] = q!.graph.apply('attention_backward', ins, node.attrs);
    return lengths ? [dq!, dk!, dv!, null] : [dq!, dk!, dv!];
  },
});
// attention_backward(q, k, v, out, lse, dOut, rowLengths?) → dq, dk, dv (masking as the forward's)
defineOp({
  name: 'attention_backward',
  infer(ins, attrs) {
    expectInputs(ins, [6, 7]); numAttr(attrs, 'scale');
    const [B] = attentionShapes(ins);
    if (ins.length === 7 && attrs.rowLengths !== true) throw new Error('attention_backward takes a 7th input only as per-row key lengths');
    attentionMasking(ins, 6, attrs, B);
    return [{ shape: ins[0]!.shape, dtype: 'f32' }, { shape: ins[1]!.shape, dtype: 'f32' }, { shape: ins[2]!.shape, dtype: 'f32' }];
  },
});

// embedding(table [V, D], ids i32 [...]) → [..., D]
defineOp({
  name: 'embedding',
  compactInputs: [0],
  infer(ins) {
    expectInputs(ins, 2);
    const [t, ids] = [ins[0]!, ins[1]!];
    if (t.shape.length !== 2 || t.dtype === 'i32') throw new Error('table must be [V, D], f32 or a compact weight');
    if (ids.dtype !== 'i32') throw new Error('ids must be i32');
    return [{ shape: [...ids.shape, t.shape[1]!], dtype: 'f32' }];
  },
  grad({ inputs: [t, ids], dOutputs: [dy] }) {
    return [t!.graph.apply1('embedding_backward', [ids!, dy!], { rows: t!.shape[0]! }), null];
  },
});
// dequantize(w compact) → f32, same shape: a compact frozen weight for ops that cannot read it directly
defineOp({
  name: 'dequantize',
  compactInputs: [0],
  infer(ins) {
    expectInputs(ins, 1);
    const w = ins[0]!;
    if (!isCompact(w.dtype)) throw new Error(`expects a compact weight, got ${w.dtype}`);
    return [{ shape: w.shape, dtype: 'f32' }];
  },
});
// embedding_backward(ids, dy [..., D]) → dtable [rows, D] (scatter-add; ids outside [0, rows) are skipped)
defineOp({
  name: 'embedding_backward',
  infer(ins, attrs) {
    expectInputs(ins, 2);
    const rows = numAttr(attrs, 'rows');
    const [ids, dy] = [ins[0]!, ins[1]!];
    if (ids.dtype !== 'i32' || !sameShape(ids.shape, dy.shape.slice(0, -1))) throw new Error(`dy must be [...ids.shape, D]; got ids ${shapeStr(ids.shape)}, dy ${shapeStr(dy.shape)}`);
    return [{ shape: [rows, lastDim(dy.shape)], dtype: 'f32' }];
  },
});

function ceShapes(ins: readonly { shape: readonly number[]; dtype: string }[]): void {
  const [logits, targets] = [ins[0]!, ins[1]!];
  if (logits.shape.length !== 2 || logits.dtype !== 'f32') throw new Error('logits must be f32 [N, V]');
  if (targets.dtype !== 'i32' || targets.shape.length !== 1 || targets.shape[0] !== logits.shape[0]) throw new Error('targets must be i32 [N]');
}

// cross_entropy(logits [N, V], targets i32 [N]) → mean loss [] over rows whose target ≠ ignoreIndex
defineOp({
  name: 'cross_entropy',
  infer(ins, attrs): OutSpec[] {
    // Stryker disable next-line UnaryOperator: only the attribute's type is checked here; the default's value is not used
    expectInputs(ins, 2); ceShapes(ins); numAttr(attrs, 'ignoreIndex', -100);
    return [{ shape: [], dtype: 'f32' }];
  },
  grad({ node, inputs: [logits, targets], dOutputs: [dl] }) {
    return [logits!.graph.apply1('cross_entropy_backward', [logits!, targets!, dl!], node.attrs), null];
  },
});
// cross_entropy_backward(logits, targets, dloss []) → dlogits [N, V]
defineOp({
  name: 'cross_entropy_backward',
  infer(ins, attrs) {
    // Stryker disable next-line UnaryOperator: only the attribute's type is checked here; the default's value is not used
    expectInputs(ins, 3); ceShapes(ins); numAttr(attrs, 'ignoreIndex', -100);
    if (ins[2]!.shape.length !== 0) throw new Error('dloss must be a scalar');
    return [{ shape: ins[0]!.shape, dtype: 'f32' }];
  },
});


// kv_write(cache [B, S, H, D], rows [B, T, H, D], pos i32 [1]) → cache with rows written at positions
// pos..pos+T−1, in place (the output is the cache's memory). Rows past S are dropped.
defineOp({
  name: 'kv_write',
  inplace: true,
  infer(ins) {
    expectInputs(ins, 3);
    const [c, r, p] = [ins[0]!, ins[1]!, ins[2]!];
    if (c.shape.length !== 4 || r.shape.length !== 4 || c.shape[0] !== r.shape[0] || c.shape[2] !== r.shape[2] || c.shape[3] !== r.shape[3]) {
      throw new Error('cache must be [B, S, H, D] and rows [B, T, H, D]');
    }
    if (p.dtype !== 'i32' || p.shape.join() !== '1') throw new Error('pos must be i32 [1]');
    return [{ shape: c.shape, dtype: c.dtype }];
  },
});
