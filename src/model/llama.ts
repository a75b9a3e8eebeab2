/**
 * A Llama-family decoder built as a graph from the op catalogue: RMSNorm, RoPE (either layout),
 * grouped-query attention, SwiGLU MLP, tied or separate output head, optional q/k/v biases (Qwen2).
 * Parameters carry Hugging Face names (`model.layers.N.self_attn.q_proj.weight`, …) whatever file the
 * weights came from, because adapters target modules by those names.
 */
import * as F from '../graph/api.js';
import type { Graph, Tensor } from '../graph/graph.js';
import type { DType } from '../graph/types.js';
import { configHeadDim, type LlamaConfig, layerWindow } from '../formats/checkpoint.js';
import { ropeTable } from './rope-scaling.js';
import { decoderGraphParts } from './graph-parts.js';
import { llamaTensorShapes } from '../formats/checkpoint.js';
import { hfLlamaConfig } from '../formats/hf.js';
import { llamaModules } from '../adapters/targets.js';
import type { DecoderFamily } from './families.js';

import { INSTANCE_INPUT, LLAMA_MODEL_TYPES, LLAMA_PROJECTIONS, TASK_ID_INPUT, VIRTUAL_SLOT_INPUT } from './names.js';
export { INSTANCE_INPUT, LLAMA_MODEL_TYPES, LLAMA_PROJECTIONS, TASK_ID_INPUT, VIRTUAL_SLOT_INPUT };

/**
 * A linear layer y = x·Wᵀ (+ b), W [out, in]. Adapters replace it per module name; `base` computes the
 * frozen layer so an adapter can add to it.
 */
export interface LinearContext {
  readonly graph: Graph;
  /** Module name, e.g. `model.layers.0.self_attn.q_proj`. */
  readonly name: string;
  readonly x: Tensor;
  readonly weight: Tensor;
  readonly bias?: Tensor;
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** For the embedding module: the token ids (i32 [B, T]); x is then the ids too. */
  readonly ids?: Tensor;
  base(x?: Tensor): Tensor;
}
export interface ModelHooks {
  /** Called for every linear module and for the token embedding (`model.embed_tokens`, with ids). */
  linear?(ctx: LinearContext): Tensor;
  /**
   * Transforms the token embeddings [B, T, D] (input-side adapters: prompt tuning), prepending
   * `virtualTokens` positions. When decoding (one position per run) it prepends nothing and may instead
   * read the i32 [B, 1] input `VIRTUAL_SLOT_INPUT`, which the runtime sets to s < virtualTokens to feed
   * virtual token s, and to virtualTokens + b to feed batch row b's own token.
   */
  embeddings?(x: Tensor, graph: Graph, o: { decoding: boolean; batch: number }): Tensor;
  /** Positions the embeddings hook prepends. */
  readonly virtualTokens?: number;
  /**
   * Keys and values [B, P, Hkv, headDim] every attention layer sees before the sequence's own (prefix
   * tuning). They sit before position 0: the sequence's rotary positions start at P, as when the prefix
   * is a KV cache, and a decoding runtime adds P to the valid cache length.
   */
  attentionPrefix?(ctx: { graph: Graph; layer: number; batch: number; kvHeads: number; headDim: number }): { k: Tensor; v: Tensor };
  /** Length P of the attention prefix. */
  readonly prefixTokens?: number;
  /**
   * Task ids the active adapters route by (Poly: n_tasks), when any does: their graphs read each row's id
   * from the i32 [B] input `TASK_ID_INPUT`, which must hold ids in [0, tasks).
   */
  readonly tasks?: number;
  /**
   * Each row's instance representation, f32 [batch, D], for the input `INSTANCE_INPUT` (IDPT): from the
   * rows' token ids and, when training or scoring, their targets (−100 where a position predicts nothing),
   * so that only context tokens — never a predicted one — shape it.
   */
  instance?(ids: ArrayLike<number>, targets: ArrayLike<number> | undefined, batch: number, seq: number): Float32Array;
  /** Linear modules that carry a bias the config does not declare (adapters merged with an output shift: SSF). */
  readonly biases?: ReadonlySet<string>;
  /**
   * Transforms a sublayer's output before the residual add (bottleneck adapters, Compacter):
   * `name` is `model.layers.N.self_attn` or `model.layers.N.mlp`; `input` is the normed sublayer
   * input [B, T, D], `output` its output [B, T, D].
   */
  sublayer?(ctx: SublayerContext): Tensor;
}

export interface SublayerContext {
  readonly graph: Graph;
  readonly name: string;
  readonly kind: 'attention' | 'mlp';
  readonly layer: number;
  readonly input: Tensor;
  readonly output: Tensor;
}

export interface LlamaGraphOptions {
  batch: number;
  /** Tokens per sequence in this graph (1 for decoding a token at a time). */
  seq: number;
  /** KV-cache length: when set, the graph decodes with persistent caches (state values) instead of training. */
  cacheLen?: number;
  /**
   * Decoding only: verify a draft tree of `seq` tokens in one run (src/decoding/draft/). Attention then
   * follows an explicit mask (input `attn_mask`, i32 [seq, cacheLen]: each draft token sees the cached
   * prefix and its own ancestors) instead of causal order, and before the new rows are written,
   * `moveRows` cache rows are moved (inputs `kv_move_src` i32 [moveRows] → rows kv_move_dst…, i32 [1]),
   * which compacts the previous run's accepted path onto consecutive positions.
   */
  tree?: { moveRows: number };
  hooks?: ModelHooks;
  /**
   * The storage type of each weight, by Hugging Face name (default f32): a compact type (f16, bf16, q8_0,
   * q4_0) makes that frozen weight a compact param that the matmul and embedding kernels read directly.
   */
  weightDtype?: (name: string) => DType;
}

export interface LlamaGraph {
  /** i32 [B, T] token ids. */
  readonly ids: Tensor;
  /** f32 [B, T, V]: the output head over every position, built on first read. */
  readonly logits: Tensor;
  /** f32 [B, T, D]: the final normed hidden states the output head reads. */
  readonly hidden: Tensor;
  /** Width of the output head (the vocabulary size). */
  readonly vocabSize: number;
  /**
   * The output head (with its adapters) on rows [..., D] → [..., V]: a loss can apply it a chunk of rows
   * at a time so the whole logits tensor never exists (chunked cross-entropy); each call adds its nodes.
   */
  head(rows: Tensor): Tensor;
  /** Decoding only: rope positions (i32 [T]), cache write position and valid cache length (i32 [1]). */
  readonly positions?: Tensor;
  readonly pos?: Tensor;
  readonly kvLen?: Tensor;
  /** Tree verification only (LlamaGraphOptions.tree): the attention mask and the cache rows moved first. */
  readonly treeInputs?: { readonly mask: Tensor; readonly moveSrc: Tensor; readonly moveDst: Tensor };
  /** Frozen weights by Hugging Face name (an untied `lm_head.weight` once the head has been applied). */
  readonly weights: Map<string, Tensor>;
  /** Positions the adapters prepend to the sequence (training logits include them first). */
  readonly virtualTokens: number;
  /** Attention prefix length (rotary positions start there). */
  readonly prefixTokens: number;
  /** Decoding with virtual tokens: i32 [B, 1], see ModelHooks.embeddings. */
  readonly virtualSlot?: Tensor;
}

export function headDim(c: LlamaConfig): number { return configHeadDim(c); }


export function buildLlama(g: Graph, c: LlamaConfig, o: LlamaGraphOptions): LlamaGraph {
  const { batch: B, seq: T } = o;
  const hd = headDim(c), kvDim = c.nKvHeads * hd, qDim = c.nHeads * hd;
  const { weights, w, decoding, ids, positions, pos, kvLen, linear } = decoderGraphParts(g, o, false);
  if (o.tree && (!decoding || B !== 1)) throw new Error('draft-tree verification needs a KV cache and one sequence');
  const treeInputs = o.tree ? {
    mask: g.input('attn_mask', [T, o.cacheLen!], 'i32'),
    moveSrc: g.input('kv_move_src', [o.tree.moveRows], 'i32'),
    moveDst: g.input('kv_move_dst', [1], 'i32'),
  } : undefined;
  // Gathers rows of a cache [1, S, H, D] (as a table [S, H·D]) and writes them back at moveDst…: the
  // gather reads before the write, so source and destination ranges may overlap.
  const moveRows = (cache: Tensor): Tensor => {
    if (!treeInputs) return cache;
    const [, S, H, D] = cache.shape as [number, number, number, number];
    const rows = F.embedding(F.reshape(cache, [S, H * D]), treeInputs.moveSrc);
    return F.kvWrite(cache, F.reshape(rows, [1, o.tree!.moveRows, H, D]), treeInputs.moveDst);
  };


  const embed = w('model.embed_tokens.weight', [c.vocabSize, c.dim]);
  const embedBase = (): Tensor => g.within('model.embed_tokens', () => F.embedding(embed, ids));
  let x = o.hooks?.linear
    ? o.hooks.linear({ graph: g, name: 'model.embed_tokens', x: ids, ids, weight: embed, inFeatures: c.vocabSize, outFeatures: c.dim, base: embedBase })
    : embedBase();
  if (o.hooks?.embeddings) x = o.hooks.embeddings(x, g, { decoding, batch: B });
  // Granite scales whatever enters the first block (inputs_embeds in Hugging Face, virtual tokens included).
  if (c.embeddingMultiplier !== undefined) x = g.within('model', () => F.scale(x, c.embeddingMultiplier!));
  const seqLen = x.shape[1]!;
  const prefix = o.hooks?.prefixTokens ?? 0;
  // RoPE scaling; dynamic NTK sizes itself by the whole sequence: prefix + T, or the KV cache when decoding.
  const ropeOpts = { theta: c.ropeTheta, layout: c.ropeLayout, offset: prefix, ...ropeTable(c, hd, decoding ? o.cacheLen! : prefix + seqLen) };

  for (let l = 0; l < c.nLayers; l++) {
    const p = `model.layers.${l}`;
    const n1 = g.within(`${p}.input_layernorm`, () => F.rmsnorm(x, w(`${p}.input_layernorm.weight`, [c.dim]), c.normEps));
    // Phi-3 fuses q, k and v into one projection (rows q, then k, then v): its output is split along the last axis.
    const qkv = c.fusedProjections ? linear(`${p}.self_attn.qkv_proj`, n1, c.dim, qDim + 2 * kvDim, c.qkvBias) : undefined;
    const proj = (name: string, from: number, width: number): Tensor =>
      (qkv ? F.slice(qkv, 2, from, from + width) : linear(`${p}.self_attn.${name}`, n1, c.dim, width, c.qkvBias));
    const q = F.reshape(proj('q_proj', 0, qDim), [B, seqLen, c.nHeads, hd]);
    const k = F.reshape(proj('k_proj', qDim, kvDim), [B, seqLen, c.nKvHeads, hd]);
    const v = F.reshape(proj('v_proj', qDim + kvDim, kvDim), [B, seqLen, c.nKvHeads, hd]);
    const pre = o.hooks?.attentionPrefix?.({ graph: g, layer: l, batch: B, kvHeads: c.nKvHeads, headDim: hd });
    const attn = g.within(`${p}.self_attn`, () => {
      // Qwen3: each head of q and k RMS-normed (weights [headDim]) before rotary.
      const qn = c.qkNorm ? g.within(`${p}.self_attn.q_norm`, () => F.rmsnorm(q, w(`${p}.self_attn.q_norm.weight`, [hd]), c.normEps)) : q;
      const kn = c.qkNorm ? g.within(`${p}.self_attn.k_norm`, () => F.rmsnorm(k, w(`${p}.self_attn.k_norm.weight`, [hd]), c.normEps)) : k;
      const qr = F.rope(qn, ropeOpts, positions);
      const kr = F.rope(kn, ropeOpts, positions);
      // Sliding-window layers: the attention prefix counts as the positions before the sequence.
      const window = layerWindow(c, l);
      // A draft tree is not in causal order: its mask says everything (a window that reaches past the whole cache never bites).
      if (treeInputs && window !== undefined && window < o.cacheLen!) throw new Error(`draft-tree verification does not take sliding-window attention (layer ${l}: window ${window} < cache ${o.cacheLen})`);
      const ao = treeInputs
        ? { causal: false, mask: treeInputs.mask, ...(c.attentionScale !== undefined ? { scale: c.attentionScale } : {}) }
        : { ...(window !== undefined ? { window } : {}), ...(c.attentionScale !== undefined ? { scale: c.attentionScale } : {}) };
      if (!decoding) return pre ? F.attention(qr, F.concat([pre.k, kr], 1), F.concat([pre.v, v], 1), ao) : F.attention(qr, kr, v, ao);
      const kc = F.kvWrite(moveRows(g.state(`${p}.self_attn.k_cache`, [B, o.cacheLen!, c.nKvHeads, hd])), kr, pos!);
      const vc = F.kvWrite(moveRows(g.state(`${p}.self_attn.v_cache`, [B, o.cacheLen!, c.nKvHeads, hd])), v, pos!);
      return pre ? F.attention(qr, F.concat([pre.k, kc], 1), F.concat([pre.v, vc], 1), ao, kvLen) : F.attention(qr, kc, vc, ao, kvLen);
    });
    const sub = (kind: 'attention' | 'mlp', input: Tensor, output: Tensor): Tensor =>
      o.hooks?.sublayer ? o.hooks.sublayer({ graph: g, name: `${p}.${kind === 'attention' ? 'self_attn' : 'mlp'}`, kind, layer: l, input, output }) : output;
    // Granite: each block's output scaled before the residual add.
    const residual = (y: Tensor): Tensor => (c.residualMultiplier !== undefined ? F.scale(y, c.residualMultiplier) : y);
    const h = F.add(x, residual(sub('attention', n1, linear(`${p}.self_attn.o_proj`, F.reshape(attn, [B, seqLen, qDim]), qDim, c.dim))));
    const n2 = g.within(`${p}.post_attention_layernorm`, () => F.rmsnorm(h, w(`${p}.post_attention_layernorm.weight`, [c.dim]), c.normEps));
    // Phi-3 fuses gate and up (gate rows first).
    const gateUp = c.fusedProjections ? linear(`${p}.mlp.gate_up_proj`, n2, c.dim, 2 * c.hiddenDim) : undefined;
    const gate = gateUp ? F.slice(gateUp, 2, 0, c.hiddenDim) : linear(`${p}.mlp.gate_proj`, n2, c.dim, c.hiddenDim);
    const up = gateUp ? F.slice(gateUp, 2, c.hiddenDim, 2 * c.hiddenDim) : linear(`${p}.mlp.up_proj`, n2, c.dim, c.hiddenDim);
    const act = g.within(`${p}.mlp`, () => F.mul(F.silu(gate), up));
    x = F.add(h, residual(sub('mlp', n2, linear(`${p}.mlp.down_proj`, act, c.hiddenDim, c.dim))));
  }
  const normed = g.within('model.norm', () => F.rmsnorm(x, w('model.norm.weight', [c.dim]), c.normEps));
  const headRaw = (rows: Tensor): Tensor => (c.tiedEmbeddings
    ? g.within('lm_head', () => F.matmul(rows, embed, { transB: true }))
    : linear('lm_head', rows, c.dim, c.vocabSize));
  // Granite divides the logits by logits_scaling.
  const head = (rows: Tensor): Tensor => (c.logitsScaling !== undefined ? g.within('lm_head', () => F.scale(headRaw(rows), 1 / c.logitsScaling!)) : headRaw(rows));
  let logits: Tensor | undefined;
  const virtualSlot = decoding ? g.byName(VIRTUAL_SLOT_INPUT) : undefined;
  return {
    ids, hidden: normed, vocabSize: c.vocabSize, head, weights, virtualTokens: o.hooks?.virtualTokens ?? 0, prefixTokens: prefix,
    get logits() { return (logits ??= head(normed)); },
    ...(positions ? { positions } : {}), ...(pos ? { pos } : {}), ...(kvLen ? { kvLen } : {}), ...(virtualSlot ? { virtualSlot } : {}),
    ...(treeInputs ? { treeInputs } : {}),
  };
}

/** Llama-shaped decoders: Llama 1–3, Mistral, Qwen2/2.5 (q/k/v bias), Qwen3 (q/k norm), Granite; llama2.c files. */
export const llamaFamily: DecoderFamily = {
  name: 'llama',
  hfModelTypes: LLAMA_MODEL_TYPES,
  ggufArchitectures: ['llama', 'mistral', 'qwen2', 'qwen3', 'granite'],
  hfConfig: (cfg, name) => hfLlamaConfig(cfg, name),
  tensorShapes: (c) => llamaTensorShapes(c),
  modules: (c) => llamaModules(c),
  linearSuffixes: LLAMA_PROJECTIONS,
  build: (g, c, o) => buildLlama(g, c, o),
};
