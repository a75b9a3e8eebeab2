/**
 * GGUF files of the `phi3` and `gpt2` architectures: llama.cpp's tensor names (src/llama-arch.cpp) for the
 * Hugging Face modules of src/model/phi3.ts and src/model/gpt2.ts, the metadata keys convert_hf_to_gguf.py
 * writes for them (Phi3MiniModel, GPT2Model) as llama.cpp's loader reads them (src/llama-model.cpp), and a
 * check that names a missing, mis-shaped or foreign GGUF tensor before any tensor data is read.
 *
 * phi3 (llama.cpp runs it with NEOX rotary, i.e. Hugging Face's rotate-half, so q/k rows are stored as they are):
 *   blk.N.attn_qkv    self_attn.qkv_proj   [(Hq + 2·Hkv)·headDim, D], q | k | v rows, unpermuted
 *   blk.N.ffn_up      mlp.gate_up_proj     [2·I, D]: gate rows first. llama.cpp builds the MLP as SWIGLU on an
 *                                          `ffn_up` with no `ffn_gate`, which splits the product in halves and
 *                                          takes silu(first) · second, as Phi3MLP's `chunk(2)` does.
 *   attn_norm, attn_output, ffn_norm, ffn_down, token_embd, output_norm, output: as Llama.
 *   LongRoPE: `rope_factors_long.weight` and `rope_factors_short.weight` (headDim/2 float32 each, one per
 *   rotary pair), `phi3.rope.scaling.attn_factor`, `phi3.rope.scaling.original_context_length` (written for
 *   every phi3 file). `phi3.attention.sliding_window` is 0 for none. llama.cpp currently ignores Phi-3's window
 *   (llama.cpp PR 13676); it is read here as Hugging Face's Phi3Attention applies it, on every layer.
 * gpt2 (no rotary):
 *   token_embd        transformer.wte          position_embd  transformer.wpe [n_ctx, D]
 *   blk.N.attn_norm   transformer.h.N.ln_1     (weight and bias; likewise every norm and projection)
 *   blk.N.attn_qkv    attn.c_attn              blk.N.attn_output  attn.c_proj
 *   blk.N.ffn_norm    ln_2                     blk.N.ffn_up       mlp.c_fc       blk.N.ffn_down  mlp.c_proj
 *   output_norm       transformer.ln_f         output             lm_head (absent: tied)
 *   Hugging Face stores the four projections as Conv1D, [in, out]; the converter transposes them to [out, in],
 *   which is also how src/model/gpt2.ts holds them, so they are read and written without a transpose here.
 *   Keys: context_length (n_ctx), embedding_length, feed_forward_length, block_count, attention.head_count,
 *   attention.layer_norm_epsilon. The converter writes feed_forward_length as 4·n_embd; llama.cpp sizes
 *   ffn_up by the key, so it is written here as the model's own width (the same for every GPT-2 checkpoint).
 */
import { FormatError, shortestF32 } from './binary.js';
import type { LlamaConfig, LlamaCheckpoint, NamedTensor } from './checkpoint.js';
import { configHeadDim, tensorF32 } from './checkpoint.js';
import { type GgufHeader, type GgufValue, type GgufWriteTensor, gguf, ggufMeta, ggufNumber } from './gguf.js';
import { familyOf } from '../model/families.js';
import { validateRopeScaling } from '../model/rope-scaling.js';

/** The architectures read and written here. */
export const FAMILY_GGUF_ARCHITECTURES = ['phi3', 'gpt2'] as const;

const PHI3_LAYER_NAMES: ReadonlyArray<[string, string]> = [
  ['attn_norm', 'input_layernorm'],
  ['attn_qkv', 'self_attn.qkv_proj'],
  ['attn_output', 'self_attn.o_proj'],
  ['ffn_norm', 'post_attention_layernorm'],
  ['ffn_up', 'mlp.gate_up_proj'],
  ['ffn_down', 'mlp.down_proj'],
];
const PHI3_GLOBAL_NAMES: ReadonlyArray<[string, string]> = [
  ['token_embd', 'model.embed_tokens'],
  ['output_norm', 'model.norm'],
  ['output', 'lm_head'],
];
const GPT2_LAYER_NAMES: ReadonlyArray<[string, string]> = [
  ['attn_norm', 'ln_1'],
  ['attn_qkv', 'attn.c_attn'],
  ['attn_output', 'attn.c_proj'],
  ['ffn_norm', 'ln_2'],
  ['ffn_up', 'mlp.c_fc'],
  ['ffn_down', 'mlp.c_proj'],
];
const GPT2_GLOBAL_NAMES: ReadonlyArray<[string, string]> = [
  ['token_embd', 'transformer.wte'],
  ['position_embd', 'transformer.wpe'],
  ['output_norm', 'transformer.ln_f'],
  ['output', 'lm_head'],
];

/** LongRoPE's per-pair divisors in a phi3 file (llama.cpp's LLM_TENSOR_ROPE_FACTORS_LONG / _SHORT). */
export const PHI3_ROPE_FACTOR_TENSORS = ['rope_factors_long.weight', 'rope_factors_short.weight'] as const;

const tables = (arch: string) => (arch === 'gpt2'
  ? { layer: GPT2_LAYER_NAMES, global: GPT2_GLOBAL_NAMES, prefix: 'transformer.h.' }
  : { layer: PHI3_LAYER_NAMES, global: PHI3_GLOBAL_NAMES, prefix: 'model.layers.' });

/** The Hugging Face name of a phi3 or gpt2 GGUF tensor, or undefined when it has none. */
export function familyGgufToHf(name: string, arch: string): string | undefined {
  const t = tables(arch);
  const m = /^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$/.exec(name);
  if (m) {
    const hf = t.layer.find(([g]) => g === m[2])?.[1];
    return hf === undefined ? undefined : `${t.prefix}${m[1]}.${hf}.${m[3]}`;
  }
  const g = /^([a-z_]+)\.(weight|bias)$/.exec(name);
  const hf = g ? t.global.find(([n]) => n === g[1])?.[1] : undefined;
  return hf === undefined ? undefined : `${hf}.${g![2]}`;
}

/** The GGUF name of a phi3 or gpt2 Hugging Face tensor name, or undefined when it has none. */
export function familyHfToGguf(name: string, arch: string): string | undefined {
  const t = tables(arch);
  const layer = arch === 'gpt2' ? /^transformer\.h\.(\d+)\.(.+)\.(weight|bias)$/ : /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/;
  const m = layer.exec(name);
  if (m) {
    const g = t.layer.find(([, h]) => h === m[2])?.[0];
    return g === undefined ? undefined : `blk.${m[1]}.${g}.${m[3]}`;
  }
  const g = /^(.+)\.(weight|bias)$/.exec(name);
  const n = g ? t.global.find(([, h]) => h === g[1])?.[0] : undefined;
  return n === undefined ? undefined : `${n}.${g![2]}`;
}

/**
 * Before any data is read: every tensor the model needs is in the file with its shape, and the file holds no
 * tensor the model would not use (a bias Phi-3 has no place for would otherwise be dropped silently). Errors
 * name the GGUF tensor and the Hugging Face module it stands for.
 */
export function checkFamilyTensors(file: GgufHeader, config: LlamaConfig, arch: string): void {
  const fail = (p: string): never => { throw new FormatError(file.name, p); };
  const c = { ...config, tiedEmbeddings: !file.tensorsByName.has('output.weight') };
  const expected = new Set<string>();
  for (const [hf, shape] of familyOf(c).tensorShapes(c)) {
    const name = familyHfToGguf(hf, arch)!;
    expected.add(name);
    const t = file.tensorsByName.get(name);
    if (!t) fail(`tensor ${name} (${hf}) is missing; a ${arch} model of this config needs it, shape [${shape.join(', ')}]`);
    if (t!.shape.length !== shape.length || t!.shape.some((d, i) => d !== shape[i])) {
      fail(`tensor ${name} (${hf}) has shape [${t!.shape.join(', ')}], expected [${shape.join(', ')}] from the file's metadata`);
    }
  }
  for (const t of file.tensors) {
    if (expected.has(t.name) || (arch === 'phi3' && (PHI3_ROPE_FACTOR_TENSORS as readonly string[]).includes(t.name))) continue;
    const hint = arch === 'phi3' && /^blk\.\d+\.attn_[qkv]\./.test(t.name) ? ' (phi3 files hold q, k and v fused in blk.N.attn_qkv, as convert_hf_to_gguf.py writes them)' : '';
    fail(`tensor ${t.name} is not part of a ${arch} model${hint}`);
  }
}

/** A GPT-2 config from a gpt2 GGUF file's metadata (llama.cpp's keys). */
export function ggufGpt2Config(file: GgufHeader, tied: boolean): LlamaConfig {
  const fail = (p: string): never => { throw new FormatError(file.name, p); };
  const req = (k: string): number => {
    const v = ggufNumber(file, `gpt2.${k}`);
    if (v === undefined) return fail(`metadata gpt2.${k} is missing`);
    return v;
  };
  const dim = req('embedding_length'), nHeads = req('attention.head_count');
  const nKv = ggufNumber(file, 'gpt2.attention.head_count_kv', nHeads);
  if (nKv !== nHeads) fail(`metadata gpt2.attention.head_count_kv is ${nKv}; GPT-2 has as many key/value heads as query heads (${nHeads})`);
  const embd = file.tensorsByName.get('token_embd.weight') ?? fail('tensor token_embd.weight (transformer.wte.weight) is missing');
  const c: LlamaConfig = {
    dim, hiddenDim: req('feed_forward_length'), nLayers: req('block_count'), nHeads, nKvHeads: nHeads,
    vocabSize: embd.shape[0]!, maxSeqLen: req('context_length'), normEps: shortestF32(req('attention.layer_norm_epsilon')),
    // GPT-2 has no rotary embedding; the field only has to be valid.
    ropeTheta: 10000, tiedEmbeddings: tied, qkvBias: true, ropeLayout: 'half', architecture: 'gpt2',
  };
  for (const [k, v] of [['embedding_length', dim], ['attention.head_count', nHeads], ['feed_forward_length', c.hiddenDim], ['block_count', c.nLayers], ['context_length', c.maxSeqLen]] as const) {
    if (!(Number.isSafeInteger(v) && v > 0)) fail(`metadata gpt2.${k} is ${v}, expected a positive integer`);
  }
  // Twelve tensors a layer: the count is checked before anything is sized by it.
  if (c.nLayers * 12 > file.tensors.length) fail(`metadata gpt2.block_count is ${c.nLayers} but the file has ${file.tensors.length} tensors (12 per layer)`);
  if (dim % nHeads !== 0) fail(`metadata gpt2.embedding_length ${dim} is not a multiple of gpt2.attention.head_count ${nHeads}`);
  if (!(c.normEps > 0 && Number.isFinite(c.normEps))) fail(`metadata gpt2.attention.layer_norm_epsilon is ${c.normEps}, expected a positive number`);
  return c;
}

/**
 * Phi-3's LongRoPE from a file's factor tensors (read) and keys, as a Hugging Face `rope_scaling`; undefined
 * when the file has neither tensor. The attention factor is kept only when it differs from the one
 * src/model/rope-scaling.ts derives (√(1 + ln(s) / ln M), s = context / original context), which the
 * converter writes.
 */
export function phi3RopeScaling(file: GgufHeader, config: LlamaConfig, long: NamedTensor | undefined, short: NamedTensor | undefined): Record<string, unknown> | undefined {
  const fail = (p: string): never => { throw new FormatError(file.name, p); };
  if (!long && !short) return undefined;
  if (!long || !short) fail(`tensor ${long ? 'rope_factors_short.weight' : 'rope_factors_long.weight'} is missing (LongRoPE needs both factor tensors)`);
  const half = configHeadDim(config) / 2;
  const factors = (t: NamedTensor, name: string): number[] => {
    const v = Array.from(tensorF32(t));
    if (t.shape.length !== 1 || v.length !== half || !v.every((x) => Number.isFinite(x) && x > 0)) fail(`tensor ${name} should hold ${half} positive values (one per rotary pair), has shape [${t.shape.join(', ')}]`);
    return v.map(shortestF32);
  };
  const orig = ggufNumber(file, 'phi3.rope.scaling.original_context_length');
  if (orig === undefined) fail('metadata phi3.rope.scaling.original_context_length is missing (LongRoPE needs the original context)');
  if (!(Number.isSafeInteger(orig) && orig! > 0)) fail(`metadata phi3.rope.scaling.original_context_length is ${orig}, expected a positive integer`);
  const out: Record<string, unknown> = {
    rope_type: 'longrope', long_factor: factors(long!, 'rope_factors_long.weight'), short_factor: factors(short!, 'rope_factors_short.weight'),
    original_max_position_embeddings: orig,
  };
  const attn = ggufNumber(file, 'phi3.rope.scaling.attn_factor');
  if (attn !== undefined) {
    if (!(Number.isFinite(attn) && attn > 0)) fail(`metadata phi3.rope.scaling.attn_factor is ${attn}, expected a positive number`);
    const ratio = config.maxSeqLen / orig!;
    const derived = ratio <= 1 ? 1 : Math.sqrt(1 + Math.log(ratio) / Math.log(orig!));
    if (Math.fround(derived) !== Math.fround(attn)) out.attention_factor = shortestF32(attn);
  }
  try { validateRopeScaling(out, config.maxSeqLen); } catch (e) { fail((e as Error).message); }
  return out;
}

/**
 * The architecture metadata (after general.*) and extra tensors of a phi3 or gpt2 file for a checkpoint, as
 * convert_hf_to_gguf.py writes them; what the format cannot hold is refused naming the family.
 */
export function familyGgufMetadata(ckpt: LlamaCheckpoint, arch: string): { meta: [string, GgufValue][]; extra: GgufWriteTensor[] } {
  const c = ckpt.config;
  const refuse = (p: string): never => { throw new FormatError(ckpt.source, `GGUF export of a ${arch} model: ${p}`); };
  const k = (key: string) => `${arch}.${key}`;
  if (arch === 'gpt2') {
    return {
      meta: [
        [k('block_count'), gguf.u32(c.nLayers)],
        [k('context_length'), gguf.u32(c.maxSeqLen)],
        [k('embedding_length'), gguf.u32(c.dim)],
        [k('feed_forward_length'), gguf.u32(c.hiddenDim)],
        [k('attention.head_count'), gguf.u32(c.nHeads)],
        [k('attention.layer_norm_epsilon'), gguf.f32(c.normEps)],
      ],
      extra: [],
    };
  }
  if (c.slidingWindow !== undefined && c.layerTypes?.some((t) => t === 'full_attention')) refuse('a sliding window on some layers only (layerTypes) has no GGUF key');
  for (const f of ['attentionScale', 'embeddingMultiplier', 'residualMultiplier', 'logitsScaling', 'ropeFreqFactors'] as const) {
    if (c[f] !== undefined) refuse(`${f} has no phi3 GGUF key`);
  }
  const hd = configHeadDim(c);
  const s = c.ropeScaling, kind = s ? validateRopeScaling(s, c.maxSeqLen) : 'default';
  if (kind !== 'default' && kind !== 'longrope' && kind !== 'su') refuse(`rope_scaling "${kind}" is not written for phi3 (its files carry LongRoPE factor tensors only)`);
  const orig = (s?.original_max_position_embeddings as number | undefined) ?? c.maxSeqLen;
  const meta: [string, GgufValue][] = [
    [k('context_length'), gguf.u32(c.maxSeqLen)],
    [k('rope.scaling.original_context_length'), gguf.u32(orig)],
    [k('embedding_length'), gguf.u32(c.dim)],
    [k('feed_forward_length'), gguf.u32(c.hiddenDim)],
    [k('block_count'), gguf.u32(c.nLayers)],
    [k('attention.head_count'), gguf.u32(c.nHeads)],
    [k('attention.head_count_kv'), gguf.u32(c.nKvHeads)],
    [k('attention.layer_norm_rms_epsilon'), gguf.f32(c.normEps)],
    [k('rope.dimension_count'), gguf.u32(hd)],
    [k('rope.freq_base'), gguf.f32(c.ropeTheta)],
    ...(c.headDim !== undefined && c.headDim !== c.dim / c.nHeads ? [[k('attention.key_length'), gguf.u32(hd)], [k('attention.value_length'), gguf.u32(hd)]] as [string, GgufValue][] : []),
    // 0: no window (the converter's value for a config without one).
    [k('attention.sliding_window'), gguf.u32(c.slidingWindow ?? 0)],
  ];
  const extra: GgufWriteTensor[] = [];
  if (kind === 'longrope' || kind === 'su') {
    const ratio = c.maxSeqLen / orig;
    const attn = (s!.attention_factor as number | undefined) ?? (ratio <= 1 ? 1 : Math.sqrt(1 + Math.log(ratio) / Math.log(orig)));
    meta.push([k('rope.scaling.attn_factor'), gguf.f32(attn)]);
    for (const [name, key] of [['rope_factors_long.weight', 'long_factor'], ['rope_factors_short.weight', 'short_factor']] as const) {
      const v = s![key] as number[];
      if (v.length !== hd / 2) refuse(`rope_scaling ${key} has ${v.length} entries, expected ${hd / 2} (head size / 2)`);
      extra.push({ name, shape: [hd / 2], data: Float32Array.from(v), type: 'F32' });
    }
  }
  return { meta, extra };
}

/** `{arch}.attention.sliding_window` of a phi3 file: 0 (the converter's "none") or absent gives undefined. */
export function phi3SlidingWindow(file: GgufHeader): number | undefined {
  const w = ggufMeta(file, 'phi3.attention.sliding_window');
  if (w === undefined) return undefined;
  const v = ggufNumber(file, 'phi3.attention.sliding_window');
  if (v === undefined || !(Number.isSafeInteger(v) && v >= 0)) throw new FormatError(file.name, `metadata phi3.attention.sliding_window is ${JSON.stringify(v)}, expected a whole number (0 for none)`);
  return v === 0 ? undefined : v;
}
