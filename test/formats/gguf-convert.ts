/**
 * Test fixture: a Hugging Face folder (config.json, model.safetensors, optional tokenizer.json) converted to GGUF
 * by the rules of llama.cpp's convert_hf_to_gguf.py (--outtype f32), written here from those rules and
 * independently of src/: its own name tables (gguf-py's tensor_mapping.py), its own metadata keys
 * (Phi3MiniModel, GPT2Model, BertModel / RobertaModel / DistilBertModel .set_gguf_parameters), the same tensor
 * transformations (GPT-2's Conv1D weights transposed, RoBERTa's position table cut by pad + 1, BERT's pooler and
 * MLM heads dropped, a labelled BERT classifier renamed `classifier.out_proj`). Only src/formats/gguf.ts's
 * byte writer and the safetensors reader are shared with the code under test.
 */
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { type GgufValue, type GgufWriteTensor, gguf, writeGguf } from '../../src/formats/gguf.js';
import { parseSafetensors, safetensorsTensorToF32 } from '../../src/formats/safetensors.js';

type T = { shape: number[]; data: Float32Array };

function readFolder(dir: string): { cfg: Record<string, unknown>; tensors: Map<string, T>; tok?: Record<string, unknown> } {
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const st = parseSafetensors(new Uint8Array(readFileSync(join(dir, 'model.safetensors'))));
  const tensors = new Map<string, T>();
  for (const t of st.tensors) tensors.set(t.name, { shape: [...t.shape], data: safetensorsTensorToF32(st, t) });
  const tokPath = join(dir, 'tokenizer.json');
  return { cfg, tensors, ...(existsSync(tokPath) ? { tok: JSON.parse(readFileSync(tokPath, 'utf8')) as Record<string, unknown> } : {}) };
}

function transpose(t: T): T {
  const [r, c] = t.shape as [number, number], out = new Float32Array(t.data.length);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j]!;
  return { shape: [c, r], data: out };
}

/** tensor_mapping.py's entries for the names these models use: [Hugging Face pattern, GGUF name]. */
const MAPPING: ReadonlyArray<[RegExp, string]> = [
  // Phi-3 (and Llama names it shares)
  [/^model\.embed_tokens$/, 'token_embd'], [/^model\.norm$/, 'output_norm'], [/^lm_head$/, 'output'],
  [/^model\.layers\.(\d+)\.input_layernorm$/, 'blk.$1.attn_norm'], [/^model\.layers\.(\d+)\.self_attn\.qkv_proj$/, 'blk.$1.attn_qkv'],
  [/^model\.layers\.(\d+)\.self_attn\.o_proj$/, 'blk.$1.attn_output'], [/^model\.layers\.(\d+)\.post_attention_layernorm$/, 'blk.$1.ffn_norm'],
  [/^model\.layers\.(\d+)\.mlp\.gate_up_proj$/, 'blk.$1.ffn_up'], [/^model\.layers\.(\d+)\.mlp\.down_proj$/, 'blk.$1.ffn_down'],
  // GPT-2
  [/^(?:transformer\.)?wte$/, 'token_embd'], [/^(?:transformer\.)?wpe$/, 'position_embd'], [/^(?:transformer\.)?ln_f$/, 'output_norm'],
  [/^(?:transformer\.)?h\.(\d+)\.ln_1$/, 'blk.$1.attn_norm'], [/^(?:transformer\.)?h\.(\d+)\.attn\.c_attn$/, 'blk.$1.attn_qkv'],
  [/^(?:transformer\.)?h\.(\d+)\.attn\.c_proj$/, 'blk.$1.attn_output'], [/^(?:transformer\.)?h\.(\d+)\.ln_2$/, 'blk.$1.ffn_norm'],
  [/^(?:transformer\.)?h\.(\d+)\.mlp\.c_fc$/, 'blk.$1.ffn_up'], [/^(?:transformer\.)?h\.(\d+)\.mlp\.c_proj$/, 'blk.$1.ffn_down'],
  // BERT (prefix already stripped), DistilBERT
  [/^embeddings\.word_embeddings$/, 'token_embd'], [/^embeddings\.token_type_embeddings$/, 'token_types'],
  [/^embeddings\.position_embeddings$/, 'position_embd'], [/^embeddings\.LayerNorm$/, 'token_embd_norm'],
  [/^encoder\.layer\.(\d+)\.attention\.self\.query$/, 'blk.$1.attn_q'], [/^encoder\.layer\.(\d+)\.attention\.self\.key$/, 'blk.$1.attn_k'],
  [/^encoder\.layer\.(\d+)\.attention\.self\.value$/, 'blk.$1.attn_v'], [/^encoder\.layer\.(\d+)\.attention\.output\.dense$/, 'blk.$1.attn_output'],
  [/^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm$/, 'blk.$1.attn_output_norm'], [/^encoder\.layer\.(\d+)\.intermediate\.dense$/, 'blk.$1.ffn_up'],
  [/^encoder\.layer\.(\d+)\.output\.dense$/, 'blk.$1.ffn_down'], [/^encoder\.layer\.(\d+)\.output\.LayerNorm$/, 'blk.$1.layer_output_norm'],
  [/^transformer\.layer\.(\d+)\.attention\.q_lin$/, 'blk.$1.attn_q'], [/^transformer\.layer\.(\d+)\.attention\.k_lin$/, 'blk.$1.attn_k'],
  [/^transformer\.layer\.(\d+)\.attention\.v_lin$/, 'blk.$1.attn_v'], [/^transformer\.layer\.(\d+)\.attention\.out_lin$/, 'blk.$1.attn_output'],
  [/^transformer\.layer\.(\d+)\.sa_layer_norm$/, 'blk.$1.attn_output_norm'], [/^transformer\.layer\.(\d+)\.ffn\.lin1$/, 'blk.$1.ffn_up'],
  [/^transformer\.layer\.(\d+)\.ffn\.lin2$/, 'blk.$1.ffn_down'], [/^transformer\.layer\.(\d+)\.output_layer_norm$/, 'blk.$1.layer_output_norm'],
  [/^(?:classifier|classifier\.dense|pre_classifier)$/, 'cls'], [/^classifier\.out_proj$/, 'cls.output'],
];

function mapName(name: string): string {
  const m = /^(.+)\.(weight|bias)$/.exec(name);
  if (!m) throw new Error(`fixture converter: cannot map ${name}`);
  for (const [re, g] of MAPPING) if (re.test(m[1]!)) return `${m[1]!.replace(re, g)}.${m[2]}`;
  throw new Error(`fixture converter: cannot map ${name}`);
}

/** The GGUF file convert_hf_to_gguf.py --outtype f32 writes for the folder (phi3, gpt2, bert, roberta or distilbert). */
export function convertHfFolder(dir: string): Uint8Array {
  const { cfg, tensors, tok } = readFolder(dir);
  const meta: [string, GgufValue][] = [];
  const out: GgufWriteTensor[] = [];
  const add = (hf: string, t: T) => out.push({ name: mapName(hf), shape: t.shape, data: t.data, type: 'F32' });
  const type = cfg.model_type;
  if (type === 'phi3') {
    const a = (k: string, v: GgufValue) => meta.push([`phi3.${k}`, v]);
    meta.push(['general.architecture', gguf.str('phi3')], ['general.name', gguf.str('fixture')]);
    const nEmbd = cfg.hidden_size as number, nHead = cfg.num_attention_heads as number, maxPos = cfg.max_position_embeddings as number;
    const scaling = (cfg.rope_scaling ?? {}) as Record<string, unknown>;
    const orig = (cfg.original_max_position_embeddings ?? scaling.original_max_position_embeddings ?? maxPos) as number;
    const ropeDims = Math.floor((((cfg.partial_rotary_factor as number | undefined) ?? 1) * nEmbd) / nHead);
    a('context_length', gguf.u32(maxPos));
    a('rope.scaling.original_context_length', gguf.u32(orig));
    a('embedding_length', gguf.u32(nEmbd));
    a('feed_forward_length', gguf.u32(cfg.intermediate_size as number));
    a('block_count', gguf.u32(cfg.num_hidden_layers as number));
    a('attention.head_count', gguf.u32(nHead));
    a('attention.head_count_kv', gguf.u32(cfg.num_key_value_heads as number));
    a('attention.layer_norm_rms_epsilon', gguf.f32(cfg.rms_norm_eps as number));
    a('rope.dimension_count', gguf.u32(ropeDims));
    a('rope.freq_base', gguf.f32((cfg.rope_theta as number | undefined) ?? 10000));
    meta.push(['general.file_type', gguf.u32(0)]);
    a('attention.sliding_window', gguf.u32((cfg.sliding_window as number | null | undefined) ?? 0));
    const long = scaling.long_factor as number[] | undefined, short = scaling.short_factor as number[] | undefined;
    if (long) {
      const scale = maxPos / orig;
      a('rope.scaling.attn_factor', gguf.f32(scale > 1 ? Math.sqrt(1 + Math.log(scale) / Math.log(orig)) : 1));
      out.push({ name: 'rope_factors_long.weight', shape: [long.length], data: Float32Array.from(long), type: 'F32' });
      out.push({ name: 'rope_factors_short.weight', shape: [short!.length], data: Float32Array.from(short!), type: 'F32' });
    }
    for (const [k, t] of tensors) add(k, t);
  } else if (type === 'gpt2') {
    const a = (k: string, v: GgufValue) => meta.push([`gpt2.${k}`, v]);
    meta.push(['general.architecture', gguf.str('gpt2')], ['general.name', gguf.str('fixture')]);
    a('block_count', gguf.u32(cfg.n_layer as number));
    a('context_length', gguf.u32((cfg.n_ctx ?? cfg.n_positions) as number));
    a('embedding_length', gguf.u32(cfg.n_embd as number));
    a('feed_forward_length', gguf.u32(4 * (cfg.n_embd as number)));
    a('attention.head_count', gguf.u32(cfg.n_head as number));
    a('attention.layer_norm_epsilon', gguf.f32(cfg.layer_norm_epsilon as number));
    meta.push(['general.file_type', gguf.u32(0)]);
    for (const [k, t] of tensors) {
      if (/\.attn\.(bias|masked_bias)$/.test(k)) continue;
      add(k, /\.(c_attn|c_proj|c_fc)\.weight$/.test(k) ? transpose(t) : t);
    }
  } else if (type === 'bert' || type === 'roberta' || type === 'distilbert') {
    const a = (k: string, v: GgufValue) => meta.push([`bert.${k}`, v]);
    const d = type === 'distilbert';
    meta.push(['general.architecture', gguf.str('bert')], ['general.name', gguf.str('fixture')]);
    const pad = cfg.pad_token_id as number | undefined;
    const offset = type === 'roberta' && pad !== undefined ? pad + 1 : 0;
    if (d) a('attention.layer_norm_epsilon', gguf.f32(1e-12));
    a('block_count', gguf.u32((d ? cfg.n_layers : cfg.num_hidden_layers) as number));
    a('context_length', gguf.u32((cfg.max_position_embeddings as number) - offset));
    a('embedding_length', gguf.u32((d ? cfg.dim : cfg.hidden_size) as number));
    a('feed_forward_length', gguf.u32((d ? cfg.hidden_dim : cfg.intermediate_size) as number));
    a('attention.head_count', gguf.u32((d ? cfg.n_heads : cfg.num_attention_heads) as number));
    if (cfg.layer_norm_eps !== undefined) a('attention.layer_norm_epsilon', gguf.f32(cfg.layer_norm_eps as number));
    meta.push(['general.file_type', gguf.u32(0)]);
    a('attention.causal', gguf.bool(false));
    // AutoConfig's dummy labels (LABEL_0, LABEL_1) do not count.
    let labels = cfg.id2label as Record<string, string> | undefined;
    if (labels && Object.keys(labels).length === 2 && labels['0'] === 'LABEL_0') labels = undefined;
    if (labels) a('classifier.output_labels', gguf.strings(Object.keys(labels).sort().map((k) => labels![k]!)));
    if (tok) bertVocab(tok, cfg, meta);
    for (const [k0, t] of tensors) {
      let k = k0.replace(/^(bert|roberta|distilbert)\./, '');
      if (['embeddings.position_ids', 'pooler.dense.weight', 'pooler.dense.bias'].includes(k) || k.startsWith('cls.') || k.startsWith('vocab_')) continue;
      if (labels && type === 'bert' && (k === 'classifier.weight' || k === 'classifier.bias')) k = k.replace('classifier', 'classifier.out_proj');
      add(k, k === 'embeddings.position_embeddings.weight' && offset ? { shape: [t.shape[0]! - offset, t.shape[1]!], data: t.data.slice(offset * t.shape[1]!) } : t);
    }
  } else {
    throw new Error(`fixture converter: model_type ${String(type)}`);
  }
  return writeGguf({ metadata: meta, tensors: out });
}

/** BertModel.set_vocab: WordPiece tokens in "phantom space" form (word starts "▁x", continuations without "##"), types, special ids. */
function bertVocab(tok: Record<string, unknown>, cfg: Record<string, unknown>, meta: [string, GgufValue][]): void {
  const vocab = (tok.model as { vocab: Record<string, number> }).vocab;
  const byId: string[] = [];
  for (const [t, id] of Object.entries(vocab)) byId[id] = t;
  const special = new Set(((tok.added_tokens ?? []) as { id: number; special: boolean }[]).filter((a) => a.special).map((a) => a.id));
  const CONTROL = 3, NORMAL = 1;
  const types = byId.map((_, id) => (special.has(id) ? CONTROL : NORMAL));
  const tokens = byId.map((t, id) => (types[id] === CONTROL ? t : t.startsWith('##') ? t.slice(2) : `\u2581${t}`));
  meta.push(['tokenizer.ggml.token_type_count', gguf.u32((cfg.type_vocab_size as number | undefined) ?? 1)]);
  meta.push(['tokenizer.ggml.model', gguf.str('bert')], ['tokenizer.ggml.pre', gguf.str('default')]);
  meta.push(['tokenizer.ggml.tokens', gguf.strings(tokens)], ['tokenizer.ggml.token_type', gguf.i32s(types)]);
  for (const [key, piece] of [['unknown_token_id', '[UNK]'], ['seperator_token_id', '[SEP]'], ['padding_token_id', '[PAD]'], ['cls_token_id', '[CLS]']] as const) {
    if (vocab[piece] !== undefined) meta.push([`tokenizer.ggml.${key}`, gguf.u32(vocab[piece]!)]);
  }
}
