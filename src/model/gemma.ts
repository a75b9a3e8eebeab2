/**
 * Gemma decoders (Hugging Face `model_type` gemma, gemma2, gemma3_text) built from the op catalogue. What
 * differs from Llama:
 *   - token embeddings × √hidden_size (the factor rounded to float32, as the model dtype holds it);
 *   - RMSNorm scales by (1 + w): the stored weights are offsets from 1;
 *   - GeGLU MLP: down(gelu_tanh(gate(x)) · up(x));
 *   - always a tied output head unless the checkpoint has lm_head.weight;
 *   - Gemma 2 and 3 wrap each block in norms: x + post_attention_layernorm(attn(input_layernorm(x))), then
 *     h + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(h))) (Gemma 1 is Llama-shaped);
 *   - attention scale query_pre_attn_scalar^−½ (Gemma 2, 3); attention logit soft-capping and output logit
 *     soft-capping c·tanh(z/c) (Gemma 2);
 *   - sliding-window layers (Gemma 2: even layers; Gemma 3: all but every sliding_window_pattern-th, or
 *     `layer_types`); Gemma 3's q_norm/k_norm per head (Gemma RMSNorm) before rotary, and rope_local_base_freq
 *     without rope_scaling on its sliding layers, rope_theta with rope_scaling on the others.
 * Parameters carry Hugging Face names, so PEFT targets (`model.layers.N.self_attn.q_proj`, …) match.
 * Windows and attention soft-capping are the attention op's own (training, evaluation and KV-cache decoding).
 * GGUF files (llama.cpp's gemma, gemma2, gemma3) are read by src/formats/gguf-llama.ts into the same config.
 */
import * as F from '../graph/api.js';
import type { Graph, Tensor } from '../graph/graph.js';
import { FormatError } from '../formats/binary.js';
import { configHeadDim, type LlamaConfig, layerWindow, llamaTensorShapes } from '../formats/checkpoint.js';
import { hfLlamaConfig } from '../formats/hf.js';
import { llamaModules } from '../adapters/targets.js';
import { ropeTable } from './rope-scaling.js';
import { decoderGraphParts } from './graph-parts.js';
import { type LinearContext, type LlamaGraph, type LlamaGraphOptions } from './llama.js';
import { LLAMA_PROJECTIONS, VIRTUAL_SLOT_INPUT } from './names.js';
import type { DecoderFamily } from './families.js';

export const GEMMA_MODEL_TYPES: readonly string[] = ['gemma', 'gemma2', 'gemma3_text'];

/** Gemma 2 and 3 put a norm after each block as well as before it (Gemma 1 does not). */
export const hasSandwichNorms = (c: LlamaConfig): boolean => c.architecture === 'gemma2' || c.architecture === 'gemma3_text';

type LayerType = 'full_attention' | 'sliding_attention';

/** The config from a Gemma config.json object; unsupported values throw a FormatError naming `name`. */
export function hfGemmaConfig(cfg: Record<string, unknown>, name = 'config.json'): LlamaConfig {
  const fail: (p: string) => never = (p) => { throw new FormatError(name, p); };
  const type = cfg.model_type;
  if (typeof type !== 'string' || !GEMMA_MODEL_TYPES.includes(type)) fail(`model_type ${String(type)} is not a Gemma type (${GEMMA_MODEL_TYPES.join(', ')})`);
  const gemma3 = type === 'gemma3_text', gemma2 = type === 'gemma2';
  const given = (k: string): boolean => cfg[k] !== undefined && cfg[k] !== null;
  const num = (k: string): number => {
    const v = cfg[k];
    if (typeof v !== 'number' || !Number.isFinite(v)) return fail(`${k} is ${JSON.stringify(v)}, expected a number`);
    return v;
  };
  // Hugging Face's defaults (GemmaConfig, Gemma2Config, Gemma3TextConfig) for keys a file may leave out.
  const dflt = (k: string, v: unknown): unknown => (cfg[k] === undefined ? v : cfg[k]);
  // Gemma reads hidden_activation (hidden_act is ignored by Hugging Face's Gemma code); only the tanh form exists here.
  const act = cfg.hidden_activation ?? 'gelu_pytorch_tanh';
  if (act !== 'gelu_pytorch_tanh' && act !== 'gelu_tanh') fail(`hidden_activation ${String(act)} is not supported (only gelu_pytorch_tanh)`);
  if (cfg.use_bidirectional_attention === true) fail('use_bidirectional_attention is not supported (decoders here are causal)');
  const rope = ropeKeys(cfg, fail);
  // The common fields as Llama reads them (validated there), with Gemma's defaults.
  const base = hfLlamaConfig({
    ...cfg, model_type: 'llama', hidden_act: undefined, sliding_window: undefined, layer_types: undefined,
    head_dim: dflt('head_dim', 256), rope_theta: rope.theta ?? (gemma3 ? 1_000_000 : 10000),
    max_position_embeddings: dflt('max_position_embeddings', gemma3 ? 131072 : 8192),
    tie_word_embeddings: dflt('tie_word_embeddings', true),
    // Gemma 3 applies rope_scaling to its global layers only (Gemma 1 and 2 to every layer).
    rope_scaling: rope.scaling,
  }, name);
  const c: LlamaConfig = { ...base, architecture: type };
  const hd = configHeadDim(c);
  if (gemma3) c.qkNorm = true;
  if (type !== 'gemma') {
    const scalar = given('query_pre_attn_scalar') ? num('query_pre_attn_scalar') : 256;
    if (!(scalar > 0)) fail(`query_pre_attn_scalar is ${scalar}, expected a positive number`);
    const s = 1 / Math.sqrt(scalar);
    if (s !== 1 / Math.sqrt(hd)) c.attentionScale = s;
  }
  const cap = (k: string, fallback: number | null): number | undefined => {
    const v = cfg[k] === undefined ? fallback : cfg[k];
    if (v === null) return undefined;
    const x = typeof v === 'number' ? v : NaN;
    if (!(Number.isFinite(x) && x > 0)) fail(`${k} is ${JSON.stringify(v)}, expected a positive number or null`);
    return x;
  };
  const attnCap = cap('attn_logit_softcapping', gemma2 ? 50 : null);
  const finalCap = cap('final_logit_softcapping', gemma2 ? 30 : null);
  if (attnCap !== undefined) c.attnSoftcap = attnCap;
  if (finalCap !== undefined) c.finalSoftcap = finalCap;
  if (gemma3) {
    const local = rope.localTheta ?? 10000;
    if (!(local > 0)) fail(`rope_local_base_freq is ${local}, expected a positive number`);
    c.localRopeTheta = local;
  }
  if (type !== 'gemma') {
    const wnd = dflt('sliding_window', 4096);
    if (wnd !== null) {
      if (!(typeof wnd === 'number' && Number.isSafeInteger(wnd) && wnd > 0)) fail(`sliding_window is ${JSON.stringify(wnd)}, expected a positive integer`);
      let types: LayerType[];
      if (given('layer_types')) {
        const lt = cfg.layer_types;
        if (!Array.isArray(lt) || lt.length !== c.nLayers) fail(`layer_types must list one type per layer (${c.nLayers}), got ${JSON.stringify(lt)}`);
        lt.forEach((t: unknown, i: number) => {
          if (t !== 'full_attention' && t !== 'sliding_attention') fail(`layer_types[${i}] is ${JSON.stringify(t)}; supported: full_attention, sliding_attention`);
        });
        types = lt as LayerType[];
      } else {
        // Gemma 2 slides on even layers; Gemma 3 on all but every sliding_window_pattern-th (default 6).
        const pattern = gemma2 ? 2 : given('sliding_window_pattern') ? num('sliding_window_pattern') : 6;
        if (!(Number.isSafeInteger(pattern) && pattern > 0)) fail(`sliding_window_pattern is ${pattern}, expected a positive integer`);
        types = Array.from({ length: c.nLayers }, (_, i) => ((i + 1) % pattern !== 0 ? 'sliding_attention' : 'full_attention'));
      }
      if (wnd < c.maxSeqLen && types.some((t) => t === 'sliding_attention')) {
        c.slidingWindow = wnd;
        c.layerTypes = types;
      }
    }
  }
  return c;
}

/**
 * The rotary keys in either form: `rope_theta`, `rope_scaling` and `rope_local_base_freq`, or the newer
 * `rope_parameters` ({rope_type, rope_theta, …}, or one such object per layer type: `full_attention`,
 * `sliding_attention`), which wins when present.
 */
function ropeKeys(cfg: Record<string, unknown>, fail: (p: string) => never): { theta?: number; scaling?: Record<string, unknown>; localTheta?: number } {
  const theta = (v: unknown, key: string): number | undefined => {
    if (v === undefined || v === null) return undefined;
    if (!(typeof v === 'number' && Number.isFinite(v) && v > 0)) fail(`${key} is ${JSON.stringify(v)}, expected a positive number`);
    return v as number;
  };
  const params = cfg.rope_parameters;
  if (params === undefined || params === null) {
    return {
      ...(theta(cfg.rope_theta, 'rope_theta') !== undefined ? { theta: cfg.rope_theta as number } : {}),
      ...(cfg.rope_scaling && typeof cfg.rope_scaling === 'object' ? { scaling: cfg.rope_scaling as Record<string, unknown> } : {}),
      ...(theta(cfg.rope_local_base_freq, 'rope_local_base_freq') !== undefined ? { localTheta: cfg.rope_local_base_freq as number } : {}),
    };
  }
  if (typeof params !== 'object' || Array.isArray(params)) fail(`rope_parameters is ${JSON.stringify(params)}, expected an object`);
  const p = params as Record<string, unknown>;
  const split = (o: unknown, key: string): { theta?: number; scaling?: Record<string, unknown> } => {
    if (typeof o !== 'object' || o === null) fail(`${key} is ${JSON.stringify(o)}, expected an object`);
    const { rope_theta: t, ...rest } = o as Record<string, unknown>;
    const th = theta(t, `${key}.rope_theta`);
    const kind = rest.rope_type ?? rest.type ?? 'default';
    return { ...(th !== undefined ? { theta: th } : {}), ...(kind !== 'default' ? { scaling: rest } : {}) };
  };
  if (p.full_attention === undefined && p.sliding_attention === undefined) return split(p, 'rope_parameters');
  const full = p.full_attention === undefined ? {} : split(p.full_attention, 'rope_parameters.full_attention');
  const local = p.sliding_attention === undefined ? {} : split(p.sliding_attention, 'rope_parameters.sliding_attention');
  if (local.scaling) fail(`rope_parameters.sliding_attention has rope_type ${String(local.scaling.rope_type ?? local.scaling.type)}; only the default rotary is supported on sliding layers`);
  return { ...full, ...(local.theta !== undefined ? { localTheta: local.theta } : {}) };
}

/** The tensors of a Gemma checkpoint with their shapes: Llama's, plus the block output norms of Gemma 2 and 3. */
export function gemmaTensorShapes(c: LlamaConfig): Map<string, number[]> {
  const m = llamaTensorShapes(c);
  if (!hasSandwichNorms(c)) return m;
  for (let l = 0; l < c.nLayers; l++) {
    m.set(`model.layers.${l}.pre_feedforward_layernorm.weight`, [c.dim]);
    m.set(`model.layers.${l}.post_feedforward_layernorm.weight`, [c.dim]);
  }
  return m;
}

export function buildGemma(g: Graph, c: LlamaConfig, o: LlamaGraphOptions): LlamaGraph {
  const { batch: B, seq: T } = o;
  const hd = configHeadDim(c), kvDim = c.nKvHeads * hd, qDim = c.nHeads * hd;
  const sandwich = hasSandwichNorms(c), gemma3 = c.architecture === 'gemma3_text';
  const { weights, w, decoding, ids, positions, pos, kvLen, linear } = decoderGraphParts(g, o, false);
  // Gemma's RMSNorm: x / rms(x) · (1 + w).
  const norm = (name: string, x: Tensor, size: number): Tensor =>
    g.within(name, () => F.rmsnorm(x, F.add(w(`${name}.weight`, [size]), F.fill(g, [], 1)), c.normEps));

  const embed = w('model.embed_tokens.weight', [c.vocabSize, c.dim]);
  const embedBase = (): Tensor => g.within('model.embed_tokens', () => F.embedding(embed, ids));
  let x = o.hooks?.linear
    ? o.hooks.linear({ graph: g, name: 'model.embed_tokens', x: ids, ids, weight: embed, inFeatures: c.vocabSize, outFeatures: c.dim, base: embedBase })
    : embedBase();
  // √hidden_size in the model's dtype (float32). Gemma 3 scales inside its embedding module, so virtual tokens
  // (prompt tuning's inputs_embeds) are not scaled; Gemma 1 and 2 scale inputs_embeds, virtual tokens too.
  const normalizer = Math.fround(Math.sqrt(c.dim));
  if (gemma3) x = g.within('model.embed_tokens', () => F.scale(x, normalizer));
  if (o.hooks?.embeddings) x = o.hooks.embeddings(x, g, { decoding, batch: B });
  if (!gemma3) x = g.within('model', () => F.scale(x, normalizer));
  const seqLen = x.shape[1]!;
  const prefix = o.hooks?.prefixTokens ?? 0;
  const ropeLength = decoding ? o.cacheLen! : prefix + seqLen;
  const globalRope = { theta: c.ropeTheta, layout: c.ropeLayout, offset: prefix, ...ropeTable(c, hd, ropeLength) };
  // Gemma 3's sliding layers: rope_local_base_freq, no scaling.
  const localRope = c.localRopeTheta === undefined ? globalRope : {
    theta: c.localRopeTheta, layout: c.ropeLayout, offset: prefix,
    ...ropeTable({ ...c, ropeTheta: c.localRopeTheta, ropeScaling: undefined, ropeFreqFactors: undefined }, hd, ropeLength),
  };
  const scaleOpts = {
    ...(c.attentionScale !== undefined ? { scale: c.attentionScale } : {}),
    ...(c.attnSoftcap !== undefined ? { softcap: c.attnSoftcap } : {}),
  };

  for (let l = 0; l < c.nLayers; l++) {
    const p = `model.layers.${l}`;
    // Sliding layers: the attention prefix counts as the positions before the sequence.
    const window = layerWindow(c, l);
    const ropeOpts = window !== undefined ? localRope : globalRope;
    const attnOpts = window !== undefined ? { ...scaleOpts, window } : scaleOpts;
    const n1 = norm(`${p}.input_layernorm`, x, c.dim);
    const q = F.reshape(linear(`${p}.self_attn.q_proj`, n1, c.dim, qDim, c.qkvBias), [B, seqLen, c.nHeads, hd]);
    const k = F.reshape(linear(`${p}.self_attn.k_proj`, n1, c.dim, kvDim, c.qkvBias), [B, seqLen, c.nKvHeads, hd]);
    const v = F.reshape(linear(`${p}.self_attn.v_proj`, n1, c.dim, kvDim, c.qkvBias), [B, seqLen, c.nKvHeads, hd]);
    const pre = o.hooks?.attentionPrefix?.({ graph: g, layer: l, batch: B, kvHeads: c.nKvHeads, headDim: hd });
    const attn = g.within(`${p}.self_attn`, () => {
      const qn = c.qkNorm ? norm(`${p}.self_attn.q_norm`, q, hd) : q;
      const kn = c.qkNorm ? norm(`${p}.self_attn.k_norm`, k, hd) : k;
      const qr = F.rope(qn, ropeOpts, positions);
      const kr = F.rope(kn, ropeOpts, positions);
      if (!decoding) return pre ? F.attention(qr, F.concat([pre.k, kr], 1), F.concat([pre.v, v], 1), attnOpts) : F.attention(qr, kr, v, attnOpts);
      const kc = F.kvWrite(g.state(`${p}.self_attn.k_cache`, [B, o.cacheLen!, c.nKvHeads, hd]), kr, pos!);
      const vc = F.kvWrite(g.state(`${p}.self_attn.v_cache`, [B, o.cacheLen!, c.nKvHeads, hd]), v, pos!);
      return pre ? F.attention(qr, F.concat([pre.k, kc], 1), F.concat([pre.v, vc], 1), attnOpts, kvLen) : F.attention(qr, kc, vc, attnOpts, kvLen);
    });
    // Block-output adapters (bottleneck) see what is added to the residual stream: after the post norm.
    const sub = (kind: 'attention' | 'mlp', input: Tensor, output: Tensor): Tensor =>
      o.hooks?.sublayer ? o.hooks.sublayer({ graph: g, name: `${p}.${kind === 'attention' ? 'self_attn' : 'mlp'}`, kind, layer: l, input, output }) : output;
    let a = linear(`${p}.self_attn.o_proj`, F.reshape(attn, [B, seqLen, qDim]), qDim, c.dim);
    if (sandwich) a = norm(`${p}.post_attention_layernorm`, a, c.dim);
    const h = F.add(x, sub('attention', n1, a));
    const n2 = norm(sandwich ? `${p}.pre_feedforward_layernorm` : `${p}.post_attention_layernorm`, h, c.dim);
    const gate = linear(`${p}.mlp.gate_proj`, n2, c.dim, c.hiddenDim);
    const up = linear(`${p}.mlp.up_proj`, n2, c.dim, c.hiddenDim);
    const act = g.within(`${p}.mlp`, () => F.mul(F.gelu(gate), up));
    let m = linear(`${p}.mlp.down_proj`, act, c.hiddenDim, c.dim);
    if (sandwich) m = norm(`${p}.post_feedforward_layernorm`, m, c.dim);
    x = F.add(h, sub('mlp', n2, m));
  }
  const normed = norm('model.norm', x, c.dim);
  const head = (rows: Tensor): Tensor => {
    const z = c.tiedEmbeddings
      ? g.within('lm_head', () => F.matmul(rows, embed, { transB: true }))
      : linear('lm_head', rows, c.dim, c.vocabSize);
    return c.finalSoftcap === undefined ? z : g.within('lm_head', () => F.softcap(z, c.finalSoftcap!));
  };
  let logits: Tensor | undefined;
  const virtualSlot = decoding ? g.byName(VIRTUAL_SLOT_INPUT) : undefined;
  return {
    ids, hidden: normed, head, weights, virtualTokens: o.hooks?.virtualTokens ?? 0, prefixTokens: prefix, vocabSize: c.vocabSize,
    get logits() { return (logits ??= head(normed)); },
    ...(positions ? { positions } : {}), ...(pos ? { pos } : {}), ...(kvLen ? { kvLen } : {}), ...(virtualSlot ? { virtualSlot } : {}),
  };
}

/** Gemma 1, 2 and 3 (text) decoders from Hugging Face checkpoints. */
export const gemmaFamily: DecoderFamily = {
  name: 'gemma',
  hfModelTypes: GEMMA_MODEL_TYPES,
  ggufArchitectures: ['gemma', 'gemma2', 'gemma3'],
  hfConfig: (cfg, name) => hfGemmaConfig(cfg, name),
  tensorShapes: (c) => gemmaTensorShapes(c),
  modules: (c) => llamaModules(c),
  linearSuffixes: LLAMA_PROJECTIONS,
  build: (g, c, o) => buildGemma(g, c, o),
};

/** A Hugging Face config.json object for a Gemma config (what `hfGemmaConfig` reads back to the same config). */
export function gemmaHfConfigJson(k: LlamaConfig, torchDtype = 'float32', tokens: { bosId?: number; eosId?: number } = {}): Record<string, unknown> {
  const type = k.architecture;
  if (!GEMMA_MODEL_TYPES.includes(type)) throw new Error(`${type} is not a Gemma model type (${GEMMA_MODEL_TYPES.join(', ')})`);
  const hd = configHeadDim(k);
  const cls = type === 'gemma' ? 'GemmaForCausalLM' : type === 'gemma2' ? 'Gemma2ForCausalLM' : 'Gemma3ForCausalLM';
  const out: Record<string, unknown> = {
    architectures: [cls], model_type: type, hidden_size: k.dim, head_dim: hd, intermediate_size: k.hiddenDim,
    num_hidden_layers: k.nLayers, num_attention_heads: k.nHeads, num_key_value_heads: k.nKvHeads, vocab_size: k.vocabSize,
    max_position_embeddings: k.maxSeqLen, rms_norm_eps: k.normEps, rope_theta: k.ropeTheta, tie_word_embeddings: k.tiedEmbeddings,
    attention_bias: k.qkvBias, hidden_activation: 'gelu_pytorch_tanh', torch_dtype: torchDtype,
    bos_token_id: tokens.bosId ?? 2, eos_token_id: tokens.eosId ?? 1, pad_token_id: 0,
  };
  if (type === 'gemma') return out;
  // query_pre_attn_scalar from the scale, rounded where it is an integer up to float error.
  const scalar = k.attentionScale === undefined ? hd : 1 / (k.attentionScale * k.attentionScale);
  out.query_pre_attn_scalar = Math.abs(scalar - Math.round(scalar)) < 1e-9 * scalar ? Math.round(scalar) : scalar;
  out.attn_logit_softcapping = k.attnSoftcap ?? null;
  out.final_logit_softcapping = k.finalSoftcap ?? null;
  // No window (or one at least the context): a window of the whole context on every layer is the same.
  out.sliding_window = k.slidingWindow ?? k.maxSeqLen;
  out.layer_types = k.slidingWindow === undefined ? Array.from({ length: k.nLayers }, () => 'full_attention') : k.layerTypes ?? Array.from({ length: k.nLayers }, () => 'sliding_attention');
  if (type === 'gemma3_text') {
    out.rope_local_base_freq = k.localRopeTheta ?? k.ropeTheta;
    if (k.ropeScaling) out.rope_scaling = k.ropeScaling;
  }
  return out;
}
