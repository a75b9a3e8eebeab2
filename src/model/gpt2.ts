/**
 * GPT-2 decoders (Hugging Face `model_type: "gpt2"`, Radford et al. 2019): learned absolute positions
 * (`transformer.wpe`), pre-LayerNorm blocks (`ln_1`, `ln_2`, with biases, eps `layer_norm_epsilon`), one fused
 * q/k/v projection `attn.c_attn`, `attn.c_proj`, an MLP `mlp.c_fc` → GELU (tanh form, `gelu_new`) →
 * `mlp.c_proj`, every projection with a bias, a final `transformer.ln_f` and an output head tied to the token
 * embedding `transformer.wte` (unless `tie_word_embeddings` is false and the file has `lm_head.weight`).
 * Causal attention scaled by 1/√headDim; no rotary embedding.
 *
 * Hugging Face stores the projections as Conv1D, weights [in, out] (PEFT's `fan_in_fan_out`). Here they are
 * held [out, in] like every other linear layer: loading transposes them (`fromHf`), writing a model or a PEFT
 * folder's base tensors transposes them back (`toHf`). So LoRA's factors (A [r, in], B [out, r]), DoRA's
 * per-output magnitudes, PiSSA's SVD and every merge see the same orientation as on Llama, and equal PEFT's,
 * which transposes Conv1D weights to [out, in] for the same computations. LoRA adapters are saved with
 * `fan_in_fan_out: true`, as PEFT writes them for GPT-2.
 *
 * Tensor names are `transformer.*`, as GPT2LMHeadModel saves them; files with bare names (`h.0.attn.c_attn…`,
 * `wte`, `wpe`, `ln_f`, as GPT2Model saves them) are read too. The causal-mask buffers older files carry
 * (`attn.bias`, `attn.masked_bias`) are skipped. Refused by name: `scale_attn_by_inverse_layer_idx`,
 * `scale_attn_weights: false`, cross-attention, and activations other than the tanh GELU.
 */
import * as F from '../graph/api.js';
import type { Graph, Tensor } from '../graph/graph.js';
import { FormatError } from '../formats/binary.js';
import { type LlamaConfig, type NamedTensor, isCompactTensor, tensorF32 } from '../formats/checkpoint.js';
import { isBlockQuant } from '../quant/types.js';
import { quantize } from '../quant/codec.js';
import type { ModuleInfo } from '../adapters/types.js';
import type { DecoderFamily } from './families.js';
import { type LinearContext, type LlamaGraph, type LlamaGraphOptions } from './llama.js';
import { VIRTUAL_SLOT_INPUT } from './names.js';
import { decoderGraphParts } from './graph-parts.js';

/** The projections of a GPT-2 block (`c_proj` names both the attention output and the MLP output). */
export const GPT2_PROJECTIONS = ['c_attn', 'c_proj', 'c_fc'] as const;

/** The tanh-approximated GELU under its Hugging Face names (`gelu_new` is GPT-2's default). */
const TANH_GELU = ['gelu_new', 'gelu_pytorch_tanh', 'gelu_fast'];

/** A GPT-2 config from config.json; unsupported values throw a FormatError naming `name`. */
export function hfGpt2Config(cfg: Record<string, unknown>, name = 'config.json'): LlamaConfig {
  const fail: (p: string) => never = (p) => { throw new FormatError(name, p); };
  const num = (k: string, fallback?: number): number => {
    const v = cfg[k];
    if (v === undefined || v === null) return fallback ?? fail(`${k} is missing`);
    if (typeof v !== 'number' || !Number.isFinite(v)) return fail(`${k} is ${JSON.stringify(v)}, expected a number`);
    return v;
  };
  const act = cfg.activation_function ?? 'gelu_new';
  if (typeof act !== 'string' || !TANH_GELU.includes(act)) fail(`activation_function ${JSON.stringify(act)} is not supported (only the tanh GELU: ${TANH_GELU.join(', ')})`);
  if (cfg.scale_attn_by_inverse_layer_idx === true) fail('scale_attn_by_inverse_layer_idx is not supported');
  if (cfg.scale_attn_weights === false) fail('scale_attn_weights false (unscaled attention scores) is not supported');
  if (cfg.add_cross_attention === true) fail('add_cross_attention is not supported (decoder-only models only)');
  const dim = num('n_embd', 768), nHeads = num('n_head', 12);
  const c: LlamaConfig = {
    dim,
    hiddenDim: num('n_inner', 4 * dim),
    nLayers: num('n_layer', 12),
    nHeads,
    nKvHeads: nHeads,
    vocabSize: num('vocab_size', 50257),
    maxSeqLen: num('n_positions', 1024),
    normEps: num('layer_norm_epsilon', 1e-5),
    // GPT-2 has no rotary embedding; the field only has to be valid.
    ropeTheta: 10000,
    tiedEmbeddings: cfg.tie_word_embeddings !== false,
    qkvBias: true,
    ropeLayout: 'half',
    architecture: 'gpt2',
  };
  for (const [k, v] of [['n_layer', c.nLayers], ['n_embd', dim], ['n_inner', c.hiddenDim], ['n_head', nHeads], ['vocab_size', c.vocabSize], ['n_positions', c.maxSeqLen]] as const) {
    if (!(Number.isSafeInteger(v) && v > 0)) fail(`${k} is ${v}, expected a positive integer`);
  }
  if (dim % nHeads !== 0) fail(`n_embd ${dim} is not a multiple of n_head ${nHeads}`);
  if (!(c.normEps > 0)) fail(`layer_norm_epsilon is ${c.normEps}, expected a positive number`);
  return c;
}

const TOP = /^(wte|wpe|ln_f|h\.\d+)\./;

/** The held name of a GPT-2 file tensor: `transformer.` added to bare names; causal-mask buffers skipped. */
export function gpt2TensorName(stored: string): string | undefined {
  if (/\.attn\.(bias|masked_bias)$/.test(stored)) return undefined;
  return TOP.test(stored) ? `transformer.${stored}` : stored;
}

/** Conv1D weights: stored [in, out] in Hugging Face files. */
const isConv1d = (name: string): boolean => /^transformer\.h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/.test(name);

/** A 2-D tensor transposed, in its storage type where the new rows allow it (f16 otherwise). */
function transposed(t: NamedTensor): NamedTensor {
  const [rows, cols] = t.shape as [number, number], src = tensorF32(t), out = new Float32Array(src.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = src[i * cols + j]!;
  if (!isCompactTensor(t)) return { shape: [cols, rows], data: out };
  const dtype = isBlockQuant(t.dtype) && rows % 32 !== 0 ? 'f16' : t.dtype;
  return { shape: [cols, rows], dtype, bytes: quantize(dtype, out) };
}

const orient = (name: string, t: NamedTensor): NamedTensor => (isConv1d(name) && t.shape.length === 2 ? transposed(t) : t);

/** The tensors of a GPT-2 checkpoint with their shapes as held here (Conv1D weights [out, in]). */
export function gpt2TensorShapes(c: LlamaConfig): Map<string, number[]> {
  const D = c.dim, I = c.hiddenDim;
  const m = new Map<string, number[]>();
  m.set('transformer.wte.weight', [c.vocabSize, D]);
  m.set('transformer.wpe.weight', [c.maxSeqLen, D]);
  for (let l = 0; l < c.nLayers; l++) {
    const p = `transformer.h.${l}.`;
    for (const [n, w, b] of [['ln_1', [D], [D]], ['attn.c_attn', [3 * D, D], [3 * D]], ['attn.c_proj', [D, D], [D]], ['ln_2', [D], [D]], ['mlp.c_fc', [I, D], [I]], ['mlp.c_proj', [D, I], [D]]] as const) {
      m.set(`${p}${n}.weight`, [...w]);
      m.set(`${p}${n}.bias`, [...b]);
    }
  }
  m.set('transformer.ln_f.weight', [D]);
  m.set('transformer.ln_f.bias', [D]);
  if (!c.tiedEmbeddings) m.set('lm_head.weight', [c.vocabSize, D]);
  return m;
}

/** Every adaptable module of a GPT-2 model, in graph order. */
export function gpt2Modules(c: LlamaConfig): ModuleInfo[] {
  const D = c.dim, I = c.hiddenDim;
  const out: ModuleInfo[] = [{ name: 'transformer.wte', kind: 'embedding', inFeatures: c.vocabSize, outFeatures: D }];
  for (let l = 0; l < c.nLayers; l++) {
    const p = `transformer.h.${l}`;
    out.push(
      { name: `${p}.attn.c_attn`, kind: 'linear', inFeatures: D, outFeatures: 3 * D, layer: l },
      { name: `${p}.attn.c_proj`, kind: 'linear', inFeatures: D, outFeatures: D, layer: l },
      { name: `${p}.mlp.c_fc`, kind: 'linear', inFeatures: D, outFeatures: I, layer: l },
      { name: `${p}.mlp.c_proj`, kind: 'linear', inFeatures: I, outFeatures: D, layer: l },
    );
  }
  if (!c.tiedEmbeddings) out.push({ name: 'lm_head', kind: 'linear', inFeatures: D, outFeatures: c.vocabSize });
  return out;
}

export function buildGpt2(g: Graph, c: LlamaConfig, o: LlamaGraphOptions): LlamaGraph {
  const { batch: B, seq: T } = o;
  const D = c.dim, hd = D / c.nHeads;
  const { weights, w, decoding, ids, positions, pos, kvLen, linear } = decoderGraphParts(g, o, true);
  const layernorm = (name: string, x: Tensor): Tensor => g.within(name, () => F.layernorm(x, w(`${name}.weight`, [D]), w(`${name}.bias`, [D]), c.normEps));

  const wte = w('transformer.wte.weight', [c.vocabSize, D]);
  const embedBase = (): Tensor => g.within('transformer.wte', () => F.embedding(wte, ids));
  let x = o.hooks?.linear
    ? o.hooks.linear({ graph: g, name: 'transformer.wte', x: ids, ids, weight: wte, inFeatures: c.vocabSize, outFeatures: D, base: embedBase })
    : embedBase();
  if (o.hooks?.embeddings) x = o.hooks.embeddings(x, g, { decoding, batch: B });
  const seqLen = x.shape[1]!;
  const prefix = o.hooks?.prefixTokens ?? 0;
  const span = prefix + (decoding ? o.cacheLen! : seqLen);
  if (span > c.maxSeqLen) throw new RangeError(`attention over ${span} positions exceeds GPT-2's ${c.maxSeqLen} learned positions (n_positions)`);
  // Learned positions: the sequence's own start after the attention prefix (as after a KV cache of that length).
  const wpe = w('transformer.wpe.weight', [c.maxSeqLen, D]);
  x = g.within('transformer.wpe', () => F.add(x, decoding ? F.embedding(wpe, positions!) : F.slice(F.dequantize(wpe), 0, prefix, prefix + seqLen)));

  for (let l = 0; l < c.nLayers; l++) {
    const p = `transformer.h.${l}`;
    const n1 = layernorm(`${p}.ln_1`, x);
    const qkv = linear(`${p}.attn.c_attn`, n1, D, 3 * D);
    const q = F.reshape(F.slice(qkv, 2, 0, D), [B, seqLen, c.nHeads, hd]);
    const k = F.reshape(F.slice(qkv, 2, D, 2 * D), [B, seqLen, c.nHeads, hd]);
    const v = F.reshape(F.slice(qkv, 2, 2 * D, 3 * D), [B, seqLen, c.nHeads, hd]);
    const pre = o.hooks?.attentionPrefix?.({ graph: g, layer: l, batch: B, kvHeads: c.nHeads, headDim: hd });
    const attn = g.within(`${p}.attn`, () => {
      if (!decoding) return pre ? F.attention(q, F.concat([pre.k, k], 1), F.concat([pre.v, v], 1)) : F.attention(q, k, v);
      const kc = F.kvWrite(g.state(`${p}.attn.k_cache`, [B, o.cacheLen!, c.nHeads, hd]), k, pos!);
      const vc = F.kvWrite(g.state(`${p}.attn.v_cache`, [B, o.cacheLen!, c.nHeads, hd]), v, pos!);
      return pre ? F.attention(q, F.concat([pre.k, kc], 1), F.concat([pre.v, vc], 1), {}, kvLen) : F.attention(q, kc, vc, {}, kvLen);
    });
    const sub = (kind: 'attention' | 'mlp', input: Tensor, output: Tensor): Tensor =>
      o.hooks?.sublayer ? o.hooks.sublayer({ graph: g, name: `${p}.${kind === 'attention' ? 'attn' : 'mlp'}`, kind, layer: l, input, output }) : output;
    const h = F.add(x, sub('attention', n1, linear(`${p}.attn.c_proj`, F.reshape(attn, [B, seqLen, D]), D, D)));
    const n2 = layernorm(`${p}.ln_2`, h);
    const fc = linear(`${p}.mlp.c_fc`, n2, D, c.hiddenDim);
    const act = g.within(`${p}.mlp`, () => F.gelu(fc));
    x = F.add(h, sub('mlp', n2, linear(`${p}.mlp.c_proj`, act, c.hiddenDim, D)));
  }
  const normed = layernorm('transformer.ln_f', x);
  const head = (rows: Tensor): Tensor => (c.tiedEmbeddings
    ? g.within('lm_head', () => F.matmul(rows, wte, { transB: true }))
    : linear('lm_head', rows, D, c.vocabSize, false));
  let logits: Tensor | undefined;
  const virtualSlot = decoding ? g.byName(VIRTUAL_SLOT_INPUT) : undefined;
  return {
    ids, hidden: normed, vocabSize: c.vocabSize, head, weights, virtualTokens: o.hooks?.virtualTokens ?? 0, prefixTokens: prefix,
    get logits() { return (logits ??= head(normed)); },
    ...(positions ? { positions } : {}), ...(pos ? { pos } : {}), ...(kvLen ? { kvLen } : {}), ...(virtualSlot ? { virtualSlot } : {}),
  };
}

export const gpt2Family: DecoderFamily = {
  name: 'gpt2',
  hfModelTypes: ['gpt2'],
  ggufArchitectures: ['gpt2'],
  hfConfig: (cfg, name) => hfGpt2Config(cfg, name),
  tensorShapes: (c) => gpt2TensorShapes(c),
  modules: (c) => gpt2Modules(c),
  linearSuffixes: GPT2_PROJECTIONS,
  build: (g, c, o) => buildGpt2(g, c, o),
  hfTensorName: gpt2TensorName,
  fromHf: orient,
  toHf: orient,
  fanInFanOut: true,
  rotary: false,
  toHfConfig: (c, x) => ({
    architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', n_embd: c.dim, n_inner: c.hiddenDim, n_layer: c.nLayers, n_head: c.nHeads,
    vocab_size: c.vocabSize, n_positions: c.maxSeqLen, n_ctx: c.maxSeqLen, layer_norm_epsilon: c.normEps, activation_function: 'gelu_new',
    tie_word_embeddings: c.tiedEmbeddings, torch_dtype: x.torchDtype,
    ...(x.bosId !== undefined ? { bos_token_id: x.bosId } : {}), ...(x.eosId !== undefined ? { eos_token_id: x.eosId } : {}),
  }),
};
