/**
 * A Llama forward pass over a few tokens on the host, in float64 and synchronously, for initialisations
 * that need the model's activations before any backend exists (prefix tuning from real tokens). It follows
 * the graph of `llama.ts` step by step (RMSNorm, rotary in the checkpoint's layout, grouped-query causal
 * attention with each layer's sliding window, SwiGLU); test/model checks it against a backend's KV cache.
 * O(n²·d + n·d²) per layer: meant for tens of tokens, not for training data.
 */
import { type LlamaCheckpoint, layerWindow, tensorF32 } from '../formats/checkpoint.js';
import { headDim } from './llama.js';
import { type RopeTable, ropeTable } from './rope-scaling.js';

export interface HostKeyValues {
  /** Per layer, [n, nKvHeads·headDim]: the keys as a KV cache holds them (rotated at positions 0…n−1). */
  keys: Float64Array[];
  /** Per layer, [n, nKvHeads·headDim]. */
  values: Float64Array[];
}

/** The keys and values every layer computes for `ids` read from position 0. */
export function hostKeyValues(ckpt: LlamaCheckpoint, ids: readonly number[]): HostKeyValues {
  const c = ckpt.config, n = ids.length, D = c.dim, hd = headDim(c), kv = c.nKvHeads * hd, qd = c.nHeads * hd, H = c.hiddenDim;
  // RoPE scaling as the graph applies it (dynamic NTK sized by these n tokens).
  const table = ropeTable(c, hd, n);
  const get = (name: string): Float32Array => {
    const t = ckpt.tensors.get(name);
    if (!t) throw new Error(`${ckpt.source}: no tensor ${name}`);
    return tensorF32(t);
  };
  const embed = get('model.embed_tokens.weight');
  let x = new Float64Array(n * D);
  ids.forEach((id, t) => {
    if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) throw new Error(`token id ${id} is outside the vocabulary (${c.vocabSize})`);
    for (let j = 0; j < D; j++) x[t * D + j] = embed[id * D + j]!;
  });
  const keys: Float64Array[] = [], values: Float64Array[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const p = `model.layers.${l}`;
    const n1 = rmsnorm(x, get(`${p}.input_layernorm.weight`), n, D, c.normEps);
    const bias = (m: string) => (c.qkvBias ? get(`${p}.self_attn.${m}.bias`) : undefined);
    let q = linear(n1, get(`${p}.self_attn.q_proj.weight`), bias('q_proj'), n, D, qd);
    let k = linear(n1, get(`${p}.self_attn.k_proj.weight`), bias('k_proj'), n, D, kv);
    const v = linear(n1, get(`${p}.self_attn.v_proj.weight`), bias('v_proj'), n, D, kv);
    if (c.qkNorm) {
      q = rmsnorm(q, get(`${p}.self_attn.q_norm.weight`), n * c.nHeads, hd, c.normEps);
      k = rmsnorm(k, get(`${p}.self_attn.k_norm.weight`), n * c.nKvHeads, hd, c.normEps);
    }
    rope(q, n, c.nHeads, hd, c.ropeTheta, c.ropeLayout, table);
    rope(k, n, c.nKvHeads, hd, c.ropeTheta, c.ropeLayout, table);
    keys.push(k);
    values.push(v);
    const attn = attention(q, k, v, n, c.nHeads, c.nKvHeads, hd, layerWindow(c, l) ?? n);
    const o = linear(attn, get(`${p}.self_attn.o_proj.weight`), undefined, n, qd, D);
    const h = x.map((xi, i) => xi + o[i]!);
    const n2 = rmsnorm(h, get(`${p}.post_attention_layernorm.weight`), n, D, c.normEps);
    const gate = linear(n2, get(`${p}.mlp.gate_proj.weight`), undefined, n, D, H);
    const up = linear(n2, get(`${p}.mlp.up_proj.weight`), undefined, n, D, H);
    const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]!);
    const down = linear(act, get(`${p}.mlp.down_proj.weight`), undefined, n, H, D);
    x = h.map((hi, i) => hi + down[i]!);
  }
  return { keys, values };
}

function rmsnorm(x: Float64Array, w: Float32Array, n: number, D: number, eps: number): Float64Array {
  const y = new Float64Array(n * D);
  for (let t = 0; t < n; t++) {
    let ss = 0;
    for (let j = 0; j < D; j++) ss += x[t * D + j]! ** 2;
    const r = 1 / Math.sqrt(ss / D + eps);
    for (let j = 0; j < D; j++) y[t * D + j] = x[t * D + j]! * r * w[j]!;
  }
  return y;
}

/** y = x·Wᵀ (+ b) with W [out, in] as stored. */
function linear(x: Float64Array, w: Float32Array, b: Float32Array | undefined, n: number, inF: number, outF: number): Float64Array {
  const y = new Float64Array(n * outF);
  for (let t = 0; t < n; t++) {
    for (let o = 0; o < outF; o++) {
      let s = b ? b[o]! : 0;
      for (let i = 0; i < inF; i++) s += x[t * inF + i]! * w[o * inF + i]!;
      y[t * outF + o] = s;
    }
  }
  return y;
}

/** In place on [n, heads, hd]; the same pairing and angles as the graph's rope op. */
function rope(x: Float64Array, n: number, heads: number, hd: number, theta: number, layout: 'pairs' | 'half', table?: RopeTable): void {
  const half = hd / 2, m = table ? table.scale : 1;
  for (let t = 0; t < n; t++) {
    for (let i = 0; i < half; i++) {
      const angle = table ? t * table.freqs[i]! : t * Math.pow(theta, (-2 * i) / hd), cos = m * Math.cos(angle), sin = m * Math.sin(angle);
      const i0 = layout === 'pairs' ? 2 * i : i, i1 = layout === 'pairs' ? 2 * i + 1 : i + half;
      for (let h = 0; h < heads; h++) {
        const o = (t * heads + h) * hd, a = x[o + i0]!, b = x[o + i1]!;
        x[o + i0] = a * cos - b * sin;
        x[o + i1] = a * sin + b * cos;
      }
    }
  }
}

/**
 * Causal attention with grouped key/value heads, query t seeing keys t − window < s ≤ t:
 * q [n, Hq, hd], k and v [n, Hkv, hd] → [n, Hq·hd].
 */
function attention(q: Float64Array, k: Float64Array, v: Float64Array, n: number, Hq: number, Hkv: number, hd: number, window: number): Float64Array {
  const out = new Float64Array(n * Hq * hd), scale = 1 / Math.sqrt(hd), group = Hq / Hkv, w = new Float64Array(n);
  for (let t = 0; t < n; t++) {
    for (let h = 0; h < Hq; h++) {
      const g = Math.floor(h / group), qo = (t * Hq + h) * hd;
      const first = Math.max(0, t - window + 1);
      let max = -Infinity;
      for (let s = first; s <= t; s++) {
        let dot = 0;
        for (let j = 0; j < hd; j++) dot += q[qo + j]! * k[(s * Hkv + g) * hd + j]!;
        w[s] = dot * scale;
        max = Math.max(max, w[s]!);
      }
      let sum = 0;
      for (let s = first; s <= t; s++) { w[s] = Math.exp(w[s]! - max); sum += w[s]!; }
      for (let s = first; s <= t; s++) {
        const a = w[s]! / sum, vo = (s * Hkv + g) * hd;
        for (let j = 0; j < hd; j++) out[qo + j] += a * v[vo + j]!;
      }
    }
  }
  return out;
}
