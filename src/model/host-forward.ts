/**
 * A Llama, Gemma or Phi-3 forward pass over a few tokens on the host, in float64 and synchronously, for initialisations
 * that need the model's activations before any backend exists (prefix tuning from real tokens). It follows
 * the graphs of `llama.ts` and `gemma.ts` step by step (RMSNorm, rotary in the checkpoint's layout, grouped-query
 * causal attention with each layer's sliding window, SwiGLU or Gemma's GeGLU and norms); tests check it against a
 * backend's KV cache.
 * O(n²·d + n·d²) per layer: meant for tens of tokens, not for training data.
 */
import { type LlamaCheckpoint, layerWindow, tensorF32 } from '../formats/checkpoint.js';
import { headDim } from './llama.js';
import { familyOf } from './families.js';
import { hasSandwichNorms } from './gemma.js';
import { type RopeTable, ropeTable } from './rope-scaling.js';

export interface HostKeyValues {
  /** Per layer, [n, nKvHeads·headDim]: the keys as a KV cache holds them (rotated at positions 0…n−1). */
  keys: Float64Array[];
  /** Per layer, [n, nKvHeads·headDim]. */
  values: Float64Array[];
}

/**
 * Sees the input of adapted linear modules during a host forward pass: `modules` are the modules that read
 * this same input (q, k and v projections share one), `x` is [n, inFeatures].
 */
export type LinearInputVisitor = (modules: readonly string[], x: Float64Array, n: number, inFeatures: number) => void;

/** The keys and values every layer computes for `ids` read from position 0. */
export function hostKeyValues(ckpt: LlamaCheckpoint, ids: readonly number[]): HostKeyValues {
  return hostForward(ckpt, ids);
}

/**
 * The inputs of every linear projection of the decoder layers for `ids` read from position 0 (data-driven
 * LoRA initialisations: EVA, CorDA), given to `visit` layer by layer.
 */
export function hostLinearInputs(ckpt: LlamaCheckpoint, ids: readonly number[], visit: LinearInputVisitor): void {
  hostForward(ckpt, ids, visit);
}

function hostForward(ckpt: LlamaCheckpoint, ids: readonly number[], visit?: LinearInputVisitor): HostKeyValues {
  const family = familyOf(ckpt.config).name;
  if (family !== 'llama' && family !== 'gemma' && family !== 'phi3') {
    const what = visit ? "module inputs on a data sample (LoRA's EVA and CorDA inits)" : "keys and values from real tokens (prefix tuning's initialisation)";
    throw new Error(`${ckpt.source}: ${what} are computed for Llama-shaped, Gemma and Phi-3 decoders only, not ${ckpt.config.architecture}; use ${visit ? 'another' : 'a random'} initialisation`);
  }
  const c = ckpt.config, n = ids.length, D = c.dim, hd = headDim(c), kv = c.nKvHeads * hd, qd = c.nHeads * hd, H = c.hiddenDim;
  // Gemma (src/model/gemma.ts): embeddings × √D, norms scale by 1 + w, GeGLU, block output norms (Gemma 2/3).
  const gemma = family === 'gemma', sandwich = gemma && hasSandwichNorms(c);
  // RoPE scaling as the graph applies it (dynamic NTK sized by these n tokens); Gemma 3's sliding layers use their own base.
  const table = ropeTable(c, hd, n);
  const localTheta = c.localRopeTheta ?? c.ropeTheta;
  const localTable = c.localRopeTheta === undefined ? table : ropeTable({ ...c, ropeTheta: c.localRopeTheta, ropeScaling: undefined, ropeFreqFactors: undefined }, hd, n);
  const get = (name: string): Float32Array => {
    const t = ckpt.tensors.get(name);
    if (!t) throw new Error(`${ckpt.source}: no tensor ${name}`);
    return tensorF32(t);
  };
  // A norm's weights: Gemma's are offsets from 1.
  const normW = (name: string): Float32Array | Float64Array => (gemma ? Float64Array.from(get(name), (w) => w + 1) : get(name));
  const embed = get('model.embed_tokens.weight');
  const normalizer = gemma ? Math.fround(Math.sqrt(D)) : c.embeddingMultiplier ?? 1;
  const resid = c.residualMultiplier ?? 1;
  let x = new Float64Array(n * D);
  ids.forEach((id, t) => {
    if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) throw new Error(`token id ${id} is outside the vocabulary (${c.vocabSize})`);
    for (let j = 0; j < D; j++) x[t * D + j] = embed[id * D + j]! * normalizer;
  });
  const keys: Float64Array[] = [], values: Float64Array[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const p = `model.layers.${l}`;
    const n1 = rmsnorm(x, normW(`${p}.input_layernorm.weight`), n, D, c.normEps);
    const bias = (m: string) => (c.qkvBias ? get(`${p}.self_attn.${m}.bias`) : undefined);
    // Phi-3's fused projections: rows q | k | v of qkv_proj, gate | up of gate_up_proj ([out, in] rows).
    const qkv = c.fusedProjections ? get(`${p}.self_attn.qkv_proj.weight`) : undefined;
    const proj = (m: string, from: number, width: number): Float32Array => (qkv ? qkv.subarray(from * D, (from + width) * D) : get(`${p}.self_attn.${m}.weight`));
    visit?.(qkv ? [`${p}.self_attn.qkv_proj`] : ['q_proj', 'k_proj', 'v_proj'].map((m) => `${p}.self_attn.${m}`), n1, n, D);
    let q = linear(n1, proj('q_proj', 0, qd), bias('q_proj'), n, D, qd);
    let k = linear(n1, proj('k_proj', qd, kv), bias('k_proj'), n, D, kv);
    const v = linear(n1, proj('v_proj', qd + kv, kv), bias('v_proj'), n, D, kv);
    if (c.qkNorm) {
      q = rmsnorm(q, normW(`${p}.self_attn.q_norm.weight`), n * c.nHeads, hd, c.normEps);
      k = rmsnorm(k, normW(`${p}.self_attn.k_norm.weight`), n * c.nKvHeads, hd, c.normEps);
    }
    const window = layerWindow(c, l);
    const [theta, tbl] = window !== undefined ? [localTheta, localTable] : [c.ropeTheta, table];
    rope(q, n, c.nHeads, hd, theta, c.ropeLayout, tbl);
    rope(k, n, c.nKvHeads, hd, theta, c.ropeLayout, tbl);
    keys.push(k);
    values.push(v);
    const attn = attention(q, k, v, n, c.nHeads, c.nKvHeads, hd, window ?? n, c.attentionScale ?? 1 / Math.sqrt(hd), c.attnSoftcap);
    visit?.([`${p}.self_attn.o_proj`], attn, n, qd);
    let o = linear(attn, get(`${p}.self_attn.o_proj.weight`), undefined, n, qd, D);
    if (sandwich) o = rmsnorm(o, normW(`${p}.post_attention_layernorm.weight`), n, D, c.normEps);
    const h = x.map((xi, i) => xi + resid * o[i]!);
    const n2 = rmsnorm(h, normW(`${p}.${sandwich ? 'pre_feedforward_layernorm' : 'post_attention_layernorm'}.weight`), n, D, c.normEps);
    const gateUp = c.fusedProjections ? get(`${p}.mlp.gate_up_proj.weight`) : undefined;
    visit?.(gateUp ? [`${p}.mlp.gate_up_proj`] : [`${p}.mlp.gate_proj`, `${p}.mlp.up_proj`], n2, n, D);
    const gate = linear(n2, gateUp ? gateUp.subarray(0, H * D) : get(`${p}.mlp.gate_proj.weight`), undefined, n, D, H);
    const up = linear(n2, gateUp ? gateUp.subarray(H * D) : get(`${p}.mlp.up_proj.weight`), undefined, n, D, H);
    const act = gate.map((g, i) => (gemma ? geluTanh(g) : g / (1 + Math.exp(-g))) * up[i]!);
    visit?.([`${p}.mlp.down_proj`], act, n, H);
    let down = linear(act, get(`${p}.mlp.down_proj.weight`), undefined, n, H, D);
    if (sandwich) down = rmsnorm(down, normW(`${p}.post_feedforward_layernorm.weight`), n, D, c.normEps);
    x = h.map((hi, i) => hi + resid * down[i]!);
  }
  return { keys, values };
}

function rmsnorm(x: Float64Array, w: Float32Array | Float64Array, n: number, D: number, eps: number): Float64Array {
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

/** GELU, tanh form. */
const geluTanh = (x: number): number => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));

/**
 * Causal attention with grouped key/value heads, query t seeing keys t − window < s ≤ t, scores × scale
 * (then cap·tanh(s/cap) with a soft-cap): q [n, Hq, hd], k and v [n, Hkv, hd] → [n, Hq·hd].
 */
function attention(q: Float64Array, k: Float64Array, v: Float64Array, n: number, Hq: number, Hkv: number, hd: number, window: number, scale: number, cap?: number): Float64Array {
  const out = new Float64Array(n * Hq * hd), group = Hq / Hkv, w = new Float64Array(n);
  for (let t = 0; t < n; t++) {
    for (let h = 0; h < Hq; h++) {
      const g = Math.floor(h / group), qo = (t * Hq + h) * hd;
      const first = Math.max(0, t - window + 1);
      let max = -Infinity;
      for (let s = first; s <= t; s++) {
        let dot = 0;
        for (let j = 0; j < hd; j++) dot += q[qo + j]! * k[(s * Hkv + g) * hd + j]!;
        w[s] = cap === undefined ? dot * scale : cap * Math.tanh((dot * scale) / cap);
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
