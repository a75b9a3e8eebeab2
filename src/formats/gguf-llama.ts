/**
 * Llama-family models in GGUF: tensor and metadata names (llama.cpp's convert_hf_to_gguf.py and
 * gguf-py constants), mapped to and from the Hugging Face names of `LlamaCheckpoint`.
 */
import { familyOf } from '../model/families.js';
import { FormatError, numel, shortestF32 } from './binary.js';
import type { LlamaCheckpoint, LlamaConfig, NamedTensor } from './checkpoint.js';
import { configHeadDim, isCompactTensor, tensorF32, validateCheckpoint, withRopeLayout } from './checkpoint.js';
import {
  GGML_TYPES, decodeGgmlData, gguf, ggufMeta, ggufNumber, parseGgufHeader, writeGguf,
  type GgufFile, type GgufHeader, type GgufTensorInfo, type GgufValue, type GgufWriteTensor, type GgufWriteType,
} from './gguf.js';
import { type ByteSource, bytesSource, readHeader } from './source.js';
import { type BaseDType, DEFAULT_CHUNK_BYTES, LoadNotes, type StoredTensor, readStoredTensor, targetStorage } from './storage.js';
import { GGML_TYPE_OF, compactOfGgml, q4_1FitsGgml } from '../quant/codec.js';
import { TokenType, type TokenizerData } from '../tokenizer/types.js';
import { tokenizerDataFromHfJson } from '../tokenizer/hf-json.js';
import { ropeTable, validateRopeScaling } from '../model/rope-scaling.js';
import {
  FAMILY_GGUF_ARCHITECTURES, PHI3_ROPE_FACTOR_TENSORS, checkFamilyTensors, familyGgufMetadata, familyGgufToHf, familyHfToGguf,
  ggufGpt2Config, phi3RopeScaling, phi3SlidingWindow,
} from './gguf-families.js';

const LAYER_NAMES: ReadonlyArray<[string, string]> = [
  ['attn_q', 'self_attn.q_proj'],
  ['attn_k', 'self_attn.k_proj'],
  ['attn_v', 'self_attn.v_proj'],
  ['attn_output', 'self_attn.o_proj'],
  // Qwen3's per-head query/key RMSNorms.
  ['attn_q_norm', 'self_attn.q_norm'],
  ['attn_k_norm', 'self_attn.k_norm'],
  ['attn_norm', 'input_layernorm'],
  ['ffn_norm', 'post_attention_layernorm'],
  ['ffn_gate', 'mlp.gate_proj'],
  ['ffn_up', 'mlp.up_proj'],
  ['ffn_down', 'mlp.down_proj'],
];
const GLOBAL_NAMES: ReadonlyArray<[string, string]> = [
  ['token_embd', 'model.embed_tokens'],
  ['output_norm', 'model.norm'],
  ['output', 'lm_head'],
];

/**
 * Gemma 2 and 3 files (llama.cpp's names): a norm after each block, `ffn_norm` before the MLP, and Gemma 3's
 * per-head query/key norms.
 */
const GEMMA_LAYER_NAMES: ReadonlyArray<[string, string]> = [
  ['attn_post_norm', 'post_attention_layernorm'],
  ['ffn_norm', 'pre_feedforward_layernorm'],
  ['ffn_post_norm', 'post_feedforward_layernorm'],
  ['attn_q_norm', 'self_attn.q_norm'],
  ['attn_k_norm', 'self_attn.k_norm'],
];

/** GGUF architectures of the Gemma family and the Hugging Face model_type each one is. */
export const GEMMA_GGUF_ARCHITECTURES: Readonly<Record<string, string>> = { gemma: 'gemma', gemma2: 'gemma2', gemma3: 'gemma3_text' };

/**
 * Hugging Face name for a GGUF tensor name, or undefined when it has none; `architecture` (GGUF
 * general.architecture) selects Gemma 2/3's norm names.
 */
export function ggufToHfName(name: string, architecture = 'llama'): string | undefined {
  if ((FAMILY_GGUF_ARCHITECTURES as readonly string[]).includes(architecture)) return familyGgufToHf(name, architecture);
  const m = /^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$/.exec(name);
  if (m) {
    const sandwich = architecture === 'gemma2' || architecture === 'gemma3';
    const hf = (sandwich ? GEMMA_LAYER_NAMES.find(([g]) => g === m[2])?.[1] : undefined) ?? LAYER_NAMES.find(([g]) => g === m[2])?.[1];
    return hf === undefined ? undefined : `model.layers.${m[1]}.${hf}.${m[3]}`;
  }
  const g = /^([a-z_]+)\.(weight|bias)$/.exec(name);
  if (g) {
    const hf = GLOBAL_NAMES.find(([n]) => n === g[1])?.[1];
    return hf === undefined ? undefined : `${hf}.${g[2]}`;
  }
  return undefined;
}

/** GGUF llama name for a Hugging Face tensor name, or undefined when it has none. */
export function hfToGgufName(name: string): string | undefined {
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(name);
  if (m) {
    const g = LAYER_NAMES.find(([, h]) => h === m[2])?.[0];
    return g === undefined ? undefined : `blk.${m[1]}.${g}.${m[3]}`;
  }
  const g = /^(.+)\.(weight|bias)$/.exec(name);
  if (g) {
    const n = GLOBAL_NAMES.find(([, h]) => h === g[1])?.[0];
    return n === undefined ? undefined : `${n}.${g[2]}`;
  }
  return undefined;
}

/** Architectures whose GGUF layout is the llama one (same tensor names, `<arch>.*` keys). */
const LLAMA_LIKE = new Set(['llama', 'mistral', 'qwen2', 'qwen3', 'granite']);

/**
 * Architectures llama.cpp runs with NEOX rotary (LLAMA_ROPE_TYPE_NEOX in `llama_model_rope_type`,
 * src/llama-model.cpp): each head rotates (x[i], x[i + D/2]), as Hugging Face does, and
 * convert_hf_to_gguf.py stores their q/k rows unchanged. The others with rotary (LLAMA_ROPE_TYPE_NORM:
 * llama, mistral, granite, …) rotate adjacent pairs (x[2i], x[2i+1]); for them the converter's
 * LlamaModel.permute reorders each head's q/k rows, so a file holds them in the pairs layout.
 */
const NEOX_ROPE = new Set([
  'qwen', 'qwen2', 'qwen2moe', 'qwen3', 'qwen3moe', 'phi2', 'phi3', 'phimoe', 'gemma', 'gemma2', 'gemma3',
  'gptneox', 'stablelm', 'starcoder2', 'falcon', 'olmo2', 'olmoe', 'bitnet', 'dbrx', 'grok', 'openelm',
  'codeshell', 'orion', 'nemotron', 'exaone', 'minicpm3',
]);

/** The rotary layout of an architecture's q/k rows in GGUF files (see NEOX_ROPE). */
export function ggufRopeLayout(arch: string): 'pairs' | 'half' {
  return NEOX_ROPE.has(arch) ? 'half' : 'pairs';
}

function sameTensorBytes(bytes: Uint8Array, a: GgufTensorInfo, b: GgufTensorInfo): boolean {
  return a.type === b.type && sameBytes(bytes.subarray(a.offset, a.offset + a.byteLength), bytes.subarray(b.offset, b.offset + b.byteLength));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export interface GgufCheckpointOptions {
  /** Return copies instead of views of the file bytes where alignment allows. */
  copy?: boolean;
  /** In-memory type of 2-D weights (see storage.ts); default 'auto' keeps the stored type. */
  baseDtype?: BaseDType;
  /** Bytes read per step when converting a tensor (default 4 MiB). */
  chunkBytes?: number;
}

/**
 * Llama config from GGUF metadata. Without `tied`, an `output.weight` counts as tied when it is absent
 * or (file in memory) byte-identical to `token_embd.weight`.
 */
export function ggufLlamaConfig(file: GgufHeader & { bytes?: Uint8Array }, tied?: boolean): LlamaConfig {
  const fail: (p: string) => never = (p) => { throw new FormatError(file.name, p); };
  const arch = ggufMeta(file, 'general.architecture');
  if (typeof arch !== 'string') fail('metadata general.architecture is missing');
  if (arch === 'bert') fail('architecture bert is a BERT-family encoder, not a decoder: read it with loadEncoder / readGgufEncoder (CLI: train, eval and predict --task seq-cls|token-cls)');
  const phi3 = arch === 'phi3';
  if (!LLAMA_LIKE.has(arch as string) && !phi3 && arch !== 'gpt2' && GEMMA_GGUF_ARCHITECTURES[arch as string] === undefined) {
    fail(`architecture ${arch as string} is not supported (supported: ${[...LLAMA_LIKE, ...FAMILY_GGUF_ARCHITECTURES, ...Object.keys(GEMMA_GGUF_ARCHITECTURES)].join(', ')}; bert as an encoder)`);
  }
  if (arch === 'gpt2') {
    const out = file.tensorsByName.get('output.weight');
    const c = ggufGpt2Config(file, tied ?? (out === undefined || (file.bytes !== undefined && sameTensorBytes(file.bytes, out, file.tensorsByName.get('token_embd.weight')!))));
    checkFamilyTensors(file, c, 'gpt2');
    return c;
  }
  const key = (k: string) => `${arch as string}.${k}`;
  const req = (k: string): number => {
    const v = ggufNumber(file, key(k));
    if (v === undefined) {
      if (Array.isArray(ggufMeta(file, key(k))) || ArrayBuffer.isView(ggufMeta(file, key(k)))) fail(`metadata ${key(k)} varies per layer, which is not supported`);
      return fail(`metadata ${key(k)} is missing`);
    }
    return v;
  };
  const perLayer = (k: string): number | undefined => {
    const v = ggufMeta(file, key(k));
    if (v === undefined) return undefined;
    if (ArrayBuffer.isView(v)) {
      const a = Array.from(v as Uint32Array);
      if (a.some((x) => x !== a[0])) fail(`metadata ${key(k)} varies per layer, which is not supported`);
      return a[0];
    }
    return ggufNumber(file, key(k));
  };
  const dim = req('embedding_length');
  const nHeads = perLayer('attention.head_count') ?? fail(`metadata ${key('attention.head_count')} is missing`);
  const nKvHeads = perLayer('attention.head_count_kv') ?? nHeads;
  const keyLen = ggufNumber(file, key('attention.key_length'));
  const valueLen = ggufNumber(file, key('attention.value_length'));
  if (keyLen !== undefined && valueLen !== undefined && keyLen !== valueLen) fail(`key length ${keyLen} differs from value length ${valueLen}; not supported`);
  const headDim = keyLen ?? valueLen ?? dim / nHeads;
  if (!(Number.isSafeInteger(headDim) && headDim > 0)) fail(`head size ${headDim} (embedding_length / head_count or attention.key_length) is not a positive integer`);
  const ropeDims = ggufNumber(file, key('rope.dimension_count'));
  if (ropeDims !== undefined && ropeDims !== headDim) fail(`rotary on ${ropeDims} of ${headDim} head dimensions is not supported`);
  const embd = file.tensorsByName.get('token_embd.weight') ?? fail('tensor token_embd.weight is missing');
  const out = file.tensorsByName.get('output.weight');
  const bytes = file.bytes;
  tied ??= out === undefined
    || (bytes !== undefined && out.type === embd.type && sameBytes(bytes.subarray(out.offset, out.offset + out.byteLength), bytes.subarray(embd.offset, embd.offset + embd.byteLength)));
  const nLayers = req('block_count');
  // Each layer has at least nine tensors (Phi-3's fused layers six), so the count is checked against the file
  // before anything is sized by it.
  const perLayerTensors = phi3 ? 6 : 9;
  if (!(Number.isSafeInteger(nLayers) && nLayers > 0 && nLayers * perLayerTensors <= file.tensors.length)) {
    fail(`metadata ${key('block_count')} is ${nLayers} but the file has ${file.tensors.length} tensors (at least ${perLayerTensors} per layer)`);
  }
  const normEps = req('attention.layer_norm_rms_epsilon');
  if (!(Number.isFinite(normEps) && normEps > 0)) fail(`metadata ${key('attention.layer_norm_rms_epsilon')} is ${normEps}, expected a positive finite number`);
  const ropeScaling = ggufRopeScaling(file, arch as string, fail);
  if (ropeScaling) {
    try { validateRopeScaling(ropeScaling, req('context_length')); } catch (e) { fail((e as Error).message); }
  }
  const window = phi3 ? phi3SlidingWindow(file) : ggufNumber(file, key('attention.sliding_window'));
  if (window !== undefined && !(Number.isSafeInteger(window) && window > 0)) fail(`metadata ${key('attention.sliding_window')} is ${window}, expected a positive integer`);
  const maxSeqLen = req('context_length');
  // Qwen3 and Gemma 3 normalise each head's queries and keys (blk.N.attn_q_norm / attn_k_norm); no other supported architecture does.
  const qkNorm = arch === 'qwen3' || arch === 'gemma3';
  if (qkNorm !== file.tensorsByName.has('blk.0.attn_q_norm.weight')) {
    fail(qkNorm ? `tensor blk.0.attn_q_norm.weight is missing (architecture ${arch as string} normalises queries and keys per head)`
      : `tensor blk.0.attn_q_norm.weight is not used by architecture ${arch as string} (per-head query/key norms are qwen3's and gemma3's)`);
  }
  const config: LlamaConfig = {
    ...(qkNorm ? { qkNorm } : {}),
    ...(ropeScaling ? { ropeScaling } : {}),
    ...(headDim !== dim / nHeads ? { headDim } : {}),
    ...(window !== undefined && window < maxSeqLen ? { slidingWindow: window } : {}),
    dim,
    hiddenDim: perLayer('feed_forward_length') ?? fail(`metadata ${key('feed_forward_length')} is missing`),
    nLayers,
    nHeads,
    nKvHeads,
    vocabSize: embd.shape[0]!,
    maxSeqLen,
    normEps: shortestF32(normEps),
    ropeTheta: shortestF32(ggufNumber(file, key('rope.freq_base'), 10000)),
    tiedEmbeddings: tied,
    qkvBias: file.tensorsByName.has('blk.0.attn_q.bias'),
    ropeLayout: ggufRopeLayout(arch as string),
    architecture: arch as string,
  };
  if (phi3) {
    // No q/k/v bias in Phi-3; the LongRoPE factors are tensors, read with the weights (readGgufCheckpoint).
    Object.assign(config, { fusedProjections: true, qkvBias: false });
    checkFamilyTensors(file, config, 'phi3');
  }
  if (arch === 'granite') {
    // llama.cpp's Granite keys; an attention.scale of 0 (or none) means 1/√headDim.
    for (const [k, field] of [['embedding_scale', 'embeddingMultiplier'], ['residual_scale', 'residualMultiplier'], ['logit_scale', 'logitsScaling'], ['attention.scale', 'attentionScale']] as const) {
      const v = ggufNumber(file, key(k));
      if (v === undefined || (field === 'attentionScale' && v === 0)) continue;
      if (!(Number.isFinite(v) && v > 0)) fail(`metadata ${key(k)} is ${v}, expected a positive number`);
      const f = shortestF32(v);
      if (field === 'attentionScale' ? f !== shortestF32(1 / Math.sqrt(configHeadDim(config))) : f !== 1) config[field] = f;
    }
  }
  return GEMMA_GGUF_ARCHITECTURES[arch as string] === undefined ? config : ggufGemmaConfig(file, config, fail);
}

/**
 * A Gemma config from a GGUF file, following llama.cpp's reading of it: rotate-half rotary (no Q/K
 * permutation); Gemma 2 slides on even layers, Gemma 3 on all but every 6th (or `{arch}.attention.sliding_window_pattern`),
 * Gemma 3's sliding layers rotate with base 10000 unscaled; soft-caps from `{arch}.attn_logit_softcapping` and
 * `{arch}.final_logit_softcapping`. The files do not store query_pre_attn_scalar: as llama.cpp, the attention
 * scale is (hidden / heads)^−½ for the 27B shapes (46-layer Gemma 2, 62-layer Gemma 3), head_dim^−½ otherwise.
 */
function ggufGemmaConfig(file: GgufHeader, base: LlamaConfig, fail: (p: string) => never): LlamaConfig {
  const arch = base.architecture, key = (k: string) => `${arch}.${k}`;
  const c: LlamaConfig = { ...base, architecture: GEMMA_GGUF_ARCHITECTURES[arch]!, ropeLayout: 'half' };
  delete c.slidingWindow;
  if (arch === 'gemma') return c;
  const hd = configHeadDim(c);
  const big = (arch === 'gemma2' && c.nLayers === 46) || (arch === 'gemma3' && c.nLayers === 62);
  const scale = 1 / Math.sqrt(big ? c.dim / c.nHeads : hd);
  if (scale !== 1 / Math.sqrt(hd)) c.attentionScale = scale;
  for (const [k, field] of [['attn_logit_softcapping', 'attnSoftcap'], ['final_logit_softcapping', 'finalSoftcap']] as const) {
    const v = ggufNumber(file, key(k));
    if (v === undefined || v === 0) continue;
    if (!(Number.isFinite(v) && v > 0)) fail(`metadata ${key(k)} is ${v}, expected a positive number`);
    c[field] = shortestF32(v);
  }
  if (arch === 'gemma3') {
    c.qkNorm = true;
    c.localRopeTheta = 10000;
  }
  const window = base.slidingWindow;
  if (window !== undefined) {
    const pattern = arch === 'gemma2' ? 2 : ggufNumber(file, key('attention.sliding_window_pattern'), 6);
    if (!(Number.isSafeInteger(pattern) && pattern > 0)) fail(`metadata ${key('attention.sliding_window_pattern')} is ${pattern}, expected a positive integer`);
    const types = Array.from({ length: c.nLayers }, (_, i): 'full_attention' | 'sliding_attention' => ((i + 1) % pattern !== 0 ? 'sliding_attention' : 'full_attention'));
    if (types.includes('sliding_attention')) {
      c.slidingWindow = window;
      c.layerTypes = types;
    }
  }
  return c;
}

/**
 * `{arch}.rope.scaling.*` (or the older `{arch}.rope.scale_linear`) as a Hugging Face `rope_scaling` object:
 * type none, linear or yarn (factor, original_context_length, yarn_beta_fast/slow; llama.cpp's attn_factor
 * multiplies YaRN's 0.1·ln(factor) + 1). Other types, and YaRN variants this library does not compute
 * (yarn_log_multiplier, an extrapolation factor other than 1), are refused by name.
 */
function ggufRopeScaling(file: GgufHeader, arch: string, fail: (p: string) => never): Record<string, unknown> | undefined {
  const key = (k: string) => `${arch}.rope.${k}`;
  const num = (k: string): number | undefined => ggufNumber(file, key(k));
  const type = ggufMeta(file, key('scaling.type'));
  const factor = num('scaling.factor');
  if (type === undefined) {
    const linear = num('scale_linear');
    return linear !== undefined && linear !== 1 ? { rope_type: 'linear', factor: shortestF32(linear) } : undefined;
  }
  if (typeof type !== 'string') fail(`metadata ${key('scaling.type')} is not a string`);
  if (type === 'none') return undefined;
  if (type !== 'linear' && type !== 'yarn') fail(`metadata ${key('scaling.type')}: rope scaling "${type as string}" is not supported (supported: none, linear, yarn)`);
  if (factor === undefined) fail(`metadata ${key('scaling.factor')} is missing (rope scaling "${type as string}")`);
  const out: Record<string, unknown> = { rope_type: type, factor: shortestF32(factor!) };
  if (type === 'linear') return out;
  const orig = num('scaling.original_context_length');
  if (orig !== undefined) out.original_max_position_embeddings = orig;
  for (const [g, h] of [['scaling.yarn_beta_fast', 'beta_fast'], ['scaling.yarn_beta_slow', 'beta_slow']] as const) {
    const v = num(g);
    if (v !== undefined) out[h] = shortestF32(v);
  }
  for (const k of ['scaling.yarn_log_multiplier', 'scaling.yarn_ext_factor'] as const) {
    const v = num(k);
    if (v !== undefined && v !== (k === 'scaling.yarn_ext_factor' ? 1 : 0)) fail(`metadata ${key(k)} = ${v} is not supported (a YaRN variant this library does not compute)`);
  }
  const attn = num('scaling.attn_factor');
  if (attn !== undefined && attn !== 1) {
    const f = out.factor as number;
    out.attention_factor = attn * (f <= 1 ? 1 : 0.1 * Math.log(f) + 1);
  }
  return out;
}

/** A GGUF tensor as `readStoredTensor` sees it. */
export function ggufStoredTensor(t: GgufTensorInfo, file: string): StoredTensor {
  const compact = compactOfGgml(t.typeName);
  const kind = t.typeName === 'F32' ? 'f32' : compact ?? (GGML_TYPES.get(t.type)!.blockSize > 1 ? 'block' : 'plain');
  return {
    name: t.name, shape: t.shape, offset: t.offset, byteLength: t.byteLength, typeName: t.typeName, kind,
    decode: (raw, count) => decodeGgmlData(raw, 0, count, t.typeName, file, t.name, false),
  };
}

/** Read a GGUF file's header from a source (the first 64 KiB, then more as the header needs). */
export function readGgufHeader(src: ByteSource): Promise<GgufHeader> {
  return readHeader(src, (prefix) => parseGgufHeader(prefix, src.name, src.size));
}

/**
 * A GGUF llama model as a checkpoint, read a tensor at a time from a source (or a file in memory).
 * An `output.weight` byte-identical to `token_embd.weight` counts as tied and is dropped (compared
 * chunk by chunk while the embedding is read). Tensors without a Hugging Face name (e.g.
 * `rope_freqs.weight`) keep their GGUF name. 2-D weights keep their stored type or take `baseDtype`.
 */
export async function readGgufCheckpoint(input: GgufFile | ByteSource, options: GgufCheckpointOptions = {}): Promise<LlamaCheckpoint> {
  const src = 'read' in input ? input : bytesSource(input.bytes, input.name);
  const file = 'read' in input ? await readGgufHeader(src) : input;
  // Validates the metadata before any tensor is read; tying is settled while reading the embedding.
  const config = ggufLlamaConfig(file, true);
  const arch = ggufMeta(file, 'general.architecture') as string;
  const embd = file.tensorsByName.get('token_embd.weight')!;
  const out = file.tensorsByName.get('output.weight');
  let same = out !== undefined && out.type === embd.type && out.byteLength === embd.byteLength;
  // Piece by piece, so an untied head costs at most one piece of extra reading.
  const piece = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const compareWithOutput = async (raw: Uint8Array, at: number) => {
    for (let p = 0; same && p < raw.length; p += piece) {
      const part = raw.subarray(p, p + piece);
      same = sameBytes(await src.read(out!.offset + at + p, part.length), part);
    }
  };
  const notes = new LoadNotes();
  const base = options.baseDtype ?? 'auto';
  const tensors = new Map<string, NamedTensor>();
  const order = [embd, ...file.tensors.filter((t) => t !== embd)];
  for (const t of order) {
    if (t === out && config.tiedEmbeddings) continue;
    const hf = ggufToHfName(t.name, arch) ?? t.name;
    const stored = ggufStoredTensor(t, file.name);
    tensors.set(hf, await readStoredTensor(src, stored, targetStorage({ ...stored, name: t.name }, base, notes), {
      copy: options.copy, chunkBytes: options.chunkBytes, ...(t === embd && same ? { onChunk: compareWithOutput } : {}),
    }));
    if (t === embd) config.tiedEmbeddings = out === undefined || same;
  }
  // llama.cpp's Gemma files store the norms' scales (1 + w); Hugging Face's weights are the offsets w.
  if (GEMMA_GGUF_ARCHITECTURES[arch] !== undefined) {
    for (const [name, t] of tensors) {
      if (name.endsWith('norm.weight')) tensors.set(name, { shape: t.shape, data: Float32Array.from(tensorF32(t), (v) => v - 1) });
    }
  }
  // Phi-3's LongRoPE factors become the rope_scaling a Hugging Face config.json gives it.
  if (arch === 'phi3') {
    const [long, short] = PHI3_ROPE_FACTOR_TENSORS.map((n) => tensors.get(n));
    const scaling = phi3RopeScaling(file, config, long, short);
    for (const n of PHI3_ROPE_FACTOR_TENSORS) tensors.delete(n);
    if (scaling) config.ropeScaling = scaling;
  }
  // Llama 3.1 files carry their rotary frequency divisors as a tensor (kept too, for writing back).
  const freqs = tensors.get('rope_freqs.weight');
  if (freqs) {
    const d = Array.from(tensorF32(freqs)), half = config.dim / config.nHeads / 2;
    if (d.length !== half || !d.every((v) => Number.isFinite(v) && v > 0)) throw new FormatError(file.name, `tensor rope_freqs.weight should hold ${half} positive values (one per rotary pair)`);
    config.ropeFreqFactors = d;
  }
  const ckpt: LlamaCheckpoint = { config, tensors, source: file.name };
  if (notes.list().length) ckpt.notes = notes.list();
  const tok = ggufTokenizerData(file);
  if (tok) ckpt.tokenizer = tok;
  validateCheckpoint(ckpt);
  return ckpt;
}

/**
 * Split patterns of the byte-level BPE pre-tokenizers named by `tokenizer.ggml.pre`, as llama.cpp's
 * llama-vocab.cpp lists them (and the models' tokenizer.json files write them): each pattern in turn splits
 * every piece left by the ones before, keeping matches and the text between them (Hugging Face's Split with
 * behavior "Isolated"). [] = GPT-2's ByteLevel regex. Several names share one rule, as in llama.cpp.
 */
const GPT2_SPLIT = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
const LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const CJK_RUN = '[\\u{4E00}-\\u{9FA5}\\u{0800}-\\u{4E00}\\u{AC00}-\\u{D7FF}]+';
const SPLIT_RULES: Record<string, readonly string[]> = {
  gpt2: [],
  llama3: [LLAMA3_SPLIT],
  'llama3-split': [LLAMA3_SPLIT],
  qwen2: [QWEN2_SPLIT],
  'deepseek-llm': [
    '[\r\n]',
    // The cased letters of llama.cpp's list, as code points (the literal characters do not survive normalisation).
    '\\s?[\\u{0041}-\\u{005A}\\u{0061}-\\u{007A}\\u{00B5}\\u{00C0}-\\u{00D6}\\u{00D8}-\\u{00F6}\\u{00F8}-\\u{01BA}\\u{01BC}-\\u{01BF}\\u{01C4}-\\u{0293}\\u{0295}-\\u{02AF}\\u{0370}-\\u{0373}\\u{0376}-\\u{0377}\\u{037B}-\\u{037D}\\u{037F}\\u{0386}\\u{0388}-\\u{038A}\\u{038C}\\u{038E}-\\u{03A1}\\u{03A3}-\\u{03F5}\\u{03F7}-\\u{0481}\\u{048A}-\\u{052F}\\u{0531}-\\u{0556}\\u{10A0}-\\u{10C5}\\u{13A0}-\\u{13F5}\\u{13F8}-\\u{13FD}\\u{1C90}-\\u{1CBA}\\u{1CBD}-\\u{1CBF}\\u{1D00}-\\u{1D2B}\\u{1D6B}-\\u{1D77}\\u{1D79}-\\u{1D9A}\\u{1E00}-\\u{1F15}\\u{1F18}-\\u{1F1D}\\u{1F20}-\\u{1F45}\\u{1F48}-\\u{1F4D}\\u{1F50}-\\u{1F57}\\u{1F59}\\u{1F5B}\\u{1F5D}\\u{1F5F}-\\u{1F7D}\\u{1F80}-\\u{1FB4}\\u{1FB6}-\\u{1FBC}\\u{1FBE}\\u{1FC2}-\\u{1FC4}\\u{1FC6}-\\u{1FCC}\\u{1FD0}-\\u{1FD3}\\u{1FD6}-\\u{1FDB}\\u{1FE0}-\\u{1FEC}\\u{1FF2}-\\u{1FF4}\\u{1FF6}-\\u{1FFC}\\u{2102}\\u{2107}\\u{210A}-\\u{2113}\\u{2115}\\u{2119}-\\u{211D}\\u{2124}\\u{2126}\\u{2128}\\u{212A}-\\u{212D}\\u{212F}-\\u{2134}\\u{2139}\\u{213C}-\\u{213F}\\u{2145}-\\u{2149}\\u{214E}\\u{2183}-\\u{2184}\\u{2C00}-\\u{2C7B}\\u{2C7E}-\\u{2CE4}\\u{2CEB}-\\u{2CEE}\\u{2CF2}-\\u{2CF3}\\u{A640}-\\u{A66D}\\u{A680}-\\u{A69B}\\u{A722}-\\u{A76F}\\u{A771}-\\u{A787}\\u{A78B}-\\u{A78E}\\u{AB70}-\\u{ABBF}\\u{FB00}-\\u{FB06}\\u{FB13}-\\u{FB17}\\u{FF21}-\\u{FF3A}\\u{FF41}-\\u{FF5A}\\u{10400}-\\u{1044F}\\u{104B0}-\\u{104D3}\\u{104D8}-\\u{104FB}\\u{10C80}-\\u{10CB2}\\u{10CC0}-\\u{10CF2}\\u{118A0}-\\u{118DF}\\u{1E900}-\\u{1E943}]+',
    '\\s?[!-/:-~\\u{FF01}-\\u{FF0F}\\u{FF1A}-\\u{FF5E}\\u{2018}-\\u{201F}\\u{3000}-\\u{3002}]+',
    '\\s+$',
    CJK_RUN,
    '\\p{N}+',
  ],
  'deepseek-coder': ['[\r\n]', '\\s?\\p{L}+', '\\s?\\p{P}+', CJK_RUN, '\\p{N}'],
  'deepseek-v3': [
    '\\p{N}{1,3}',
    '[\\u{4E00}-\\u{9FA5}\\u{3040}-\\u{309F}\\u{30A0}-\\u{30FF}]+',
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
  ],
  falcon: ['[\\p{P}\\$\\+<=>\\^~\\|`]+', GPT2_SPLIT, '[0-9][0-9][0-9]'],
  starcoder: ['\\p{N}', GPT2_SPLIT],
  bloom: [' ?[^(\\s|.,!?…。，、।۔،)]+'],
  viking: [' ?[^(\\s|.,!?…。，、।۔،)]+', '\\p{N}'],
  tekken: ["[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"],
  'gpt-4o': ["[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"],
};
/** `tokenizer.ggml.pre` names → their rule (llama.cpp's name groups). */
const GGUF_PRE_TOKENIZERS: Record<string, keyof typeof SPLIT_RULES> = {
  'default': 'gpt2', 'gpt-2': 'gpt2', 'mpt': 'gpt2', 'olmo': 'gpt2', 'jais': 'gpt2', 'phi-2': 'gpt2', 'jina-es': 'gpt2', 'jina-de': 'gpt2', 'trillion': 'gpt2',
  'llama3': 'llama3', 'llama-v3': 'llama3', 'llama-bpe': 'llama3', 'falcon3': 'llama3',
  // The same split without looking words up whole first.
  'dbrx': 'llama3-split', 'smaug-bpe': 'llama3-split', 'chatglm-bpe': 'llama3-split',
  'qwen2': 'qwen2', 'stablelm2': 'qwen2', 'deepseek-r1-qwen': 'qwen2', 'megrez': 'qwen2', 'hunyuan': 'qwen2',
  'deepseek-llm': 'deepseek-llm', 'deepseek-coder': 'deepseek-coder', 'deepseek-v3': 'deepseek-v3',
  'falcon': 'falcon',
  'starcoder': 'starcoder', 'refact': 'starcoder', 'command-r': 'starcoder', 'smollm': 'starcoder', 'codeshell': 'starcoder', 'exaone': 'starcoder', 'minerva-7b': 'starcoder',
  'poro-chat': 'bloom', 'bloom': 'bloom', 'gpt3-finnish': 'bloom', 'viking': 'viking',
  'tekken': 'tekken', 'gpt-4o': 'gpt-4o', 'llama4': 'gpt-4o',
};
/** Rules that look a word up whole before merging (llama.cpp's ignore_merges). */
const IGNORE_MERGES = new Set(['llama3']);

/** The tokenizer.json pre_tokenizer of a `tokenizer.ggml.pre` name (an unknown one is named, and refused when used). */
export function ggufPreTokenizer(pre: string): Record<string, unknown> {
  const rule = GGUF_PRE_TOKENIZERS[pre];
  if (rule === undefined) return { type: `GGUF tokenizer.ggml.pre "${pre}"` };
  const patterns = SPLIT_RULES[rule]!;
  if (patterns.length === 0) return { type: 'ByteLevel', add_prefix_space: false, use_regex: true };
  return {
    type: 'Sequence', pretokenizers: [
      ...patterns.map((p) => ({ type: 'Split', pattern: { Regex: p }, behavior: 'Isolated', invert: false })),
      { type: 'ByteLevel', add_prefix_space: false, use_regex: false },
    ],
  };
}

/** The name llama.cpp's converter writes for each split rule (the first of its names otherwise). */
const PRE_NAME_OF_RULE: Record<string, string> = { gpt2: 'gpt-2', llama3: 'llama-bpe' };

/**
 * The `tokenizer.ggml.pre` name of a byte-level tokenizer.json: its Split regexes (then ByteLevel without
 * its own regex), or a lone ByteLevel with GPT-2's regex, compared with the rules above; undefined when no
 * rule is the same (llama.cpp would not split such text alike). Normalizers other than NFC, which llama.cpp
 * leaves out for byte-level vocabularies too, also give undefined.
 */
export function ggufPreTokenizerName(json: Record<string, unknown>): string | undefined {
  const flat = (n: unknown, key: string): Record<string, unknown>[] => {
    if (!n || typeof n !== 'object') return [];
    const o = n as Record<string, unknown>;
    return o.type === 'Sequence' ? ((o[key] ?? []) as unknown[]).flatMap((k) => flat(k, key)) : [o];
  };
  const norms = flat(json.normalizer, 'normalizers');
  if (norms.some((n) => n.type !== 'NFC')) return undefined;
  const pres = flat(json.pre_tokenizer, 'pretokenizers');
  const last = pres[pres.length - 1];
  if (last?.type !== 'ByteLevel' || last.add_prefix_space === true) return undefined;
  let rule: string | undefined;
  if (pres.length === 1) rule = last.use_regex === false ? undefined : 'gpt2';
  else if (last.use_regex === false) {
    const splits = pres.slice(0, -1);
    if (!splits.every((p) => p.type === 'Split' && (p.behavior ?? 'Isolated') === 'Isolated' && p.invert !== true && typeof (p.pattern as { Regex?: unknown } | undefined)?.Regex === 'string')) return undefined;
    const patterns = splits.map((p) => (p.pattern as { Regex: string }).Regex);
    const ignoreMerges = (json.model as { ignore_merges?: unknown } | undefined)?.ignore_merges === true;
    rule = Object.keys(SPLIT_RULES).find((r) => {
      const want = SPLIT_RULES[r]!;
      return want.length === patterns.length && want.every((w, i) => w === patterns[i]) && IGNORE_MERGES.has(r) === ignoreMerges;
    });
  }
  if (rule === undefined) return undefined;
  return PRE_NAME_OF_RULE[rule] ?? Object.keys(GGUF_PRE_TOKENIZERS).find((n) => GGUF_PRE_TOKENIZERS[n] === rule);
}

/**
 * GGUF metadata of a byte-level BPE tokenizer.json (Llama 3, Qwen2/3, GPT-2 style) as llama.cpp's converter
 * writes it: `gpt2` model, tokens by id (ids without a token and rows past the vocabulary up to the
 * embedding's `vocabSize` as unused `[PADn]`), token types, merges as "a b", the split rule's name, BOS/EOS,
 * add_bos_token and the chat template. Undefined for other tokenizers (WordPiece, SentencePiece-style BPE) and
 * for split rules llama.cpp does not have (`ggufPreTokenizerName`).
 */
export function byteLevelTokenizerMetadata(tok: TokenizerData, vocabSize = tok.tokens.length): Map<string, GgufValue> | undefined {
  const json = tok.json as Record<string, unknown> | undefined;
  const model = json?.model as Record<string, unknown> | undefined;
  if (tok.kind !== 'hf-json' || !json || model?.type !== 'BPE' || model.byte_fallback === true) return undefined;
  const pre = ggufPreTokenizerName(json);
  if (pre === undefined) return undefined;
  const n = Math.max(vocabSize, tok.tokens.length);
  const tokens: string[] = new Array(n);
  const types = new Int32Array(n);
  for (let id = 0; id < n; id++) {
    const t = tok.tokens[id];
    if (t) { tokens[id] = t; types[id] = tok.types?.[id] ?? TokenType.NORMAL; } else { tokens[id] = `[PAD${id}]`; types[id] = TokenType.UNUSED; }
  }
  const merges = ((model.merges ?? []) as (string | [string, string])[]).map((m) => (typeof m === 'string' ? m : `${m[0]} ${m[1]}`));
  const meta = new Map<string, GgufValue>([
    ['tokenizer.ggml.model', gguf.str('gpt2')],
    ['tokenizer.ggml.pre', gguf.str(pre)],
    ['tokenizer.ggml.tokens', gguf.strings(tokens)],
    ['tokenizer.ggml.token_type', gguf.i32s(types)],
    ['tokenizer.ggml.merges', gguf.strings(merges)],
  ]);
  if (tok.bosId !== undefined) meta.set('tokenizer.ggml.bos_token_id', gguf.u32(tok.bosId));
  if (tok.eosId !== undefined) meta.set('tokenizer.ggml.eos_token_id', gguf.u32(tok.eosId));
  if (tok.padId !== undefined) meta.set('tokenizer.ggml.padding_token_id', gguf.u32(tok.padId));
  meta.set('tokenizer.ggml.add_bos_token', gguf.bool(tok.addBos === true));
  if (tok.chatTemplate !== undefined) meta.set('tokenizer.chat_template', gguf.str(tok.chatTemplate));
  return meta;
}

/** The names `tokenizer.ggml.pre` may take here. */
export const GGUF_PRE_TOKENIZER_NAMES: readonly string[] = Object.keys(GGUF_PRE_TOKENIZERS);

function optId(file: GgufHeader, k: string, n: number): number | undefined {
  const v = ggufNumber(file, k);
  return v !== undefined && v >= 0 && v < n ? v : undefined;
}

/** `tokenizer.chat_template`, when the file has one. */
function chatTemplateOf(file: GgufHeader): { chatTemplate?: string } {
  const t = ggufMeta(file, 'tokenizer.chat_template');
  if (t === undefined) return {};
  if (typeof t !== 'string') throw new FormatError(file.name, 'metadata tokenizer.chat_template should be a string');
  return { chatTemplate: t };
}

/**
 * A BERT vocabulary as llama.cpp's converter stores it (`tokenizer.ggml.model = "bert"`): word-initial pieces
 * carry a "▁" prefix and continuations none (their "##" removed). Turned back into a WordPiece tokenizer.json
 * (`##` continuations, BERT's normalizer and pre-tokenizer, [CLS] … [SEP]) and read as one, so GGUF and
 * Hugging Face BERT vocabularies encode alike.
 */
function wordPieceFromGguf(file: GgufHeader, tokens: string[], types: Int32Array | undefined, base: { unkId?: number; bosId?: number; eosId?: number }): TokenizerData {
  const special = (id: number) => (types ? types[id] === TokenType.CONTROL || types[id] === TokenType.UNKNOWN : /^\[[A-Z]+\]$/.test(tokens[id]!));
  const pieces = tokens.map((t, id) => (special(id) ? t : t.startsWith('▁') ? t.slice(1) : `##${t}`));
  const vocab: Record<string, number> = {};
  pieces.forEach((t, id) => { if (!(t in vocab)) vocab[t] = id; });
  const cls = optId(file, 'tokenizer.ggml.cls_token_id', tokens.length) ?? base.bosId;
  const sep = optId(file, 'tokenizer.ggml.seperator_token_id', tokens.length) ?? base.eosId;
  const unk = base.unkId ?? pieces.indexOf('[UNK]');
  if (unk < 0) throw new FormatError(file.name, 'a bert vocabulary needs tokenizer.ggml.unknown_token_id (or an [UNK] token)');
  const json = {
    added_tokens: pieces.flatMap((t, id) => (special(id) ? [{ id, content: t, special: true }] : [])),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    ...(cls !== undefined && sep !== undefined ? { post_processor: { type: 'BertProcessing', cls: [pieces[cls], cls], sep: [pieces[sep], sep] } } : {}),
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: pieces[unk], continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
  return tokenizerDataFromHfJson(json, file.name);
}

/** The tokenizer stored in GGUF metadata (`tokenizer.ggml.*`), when there is one this library reads. */
export function ggufTokenizerData(file: GgufHeader): TokenizerData | undefined {
  const model = ggufMeta(file, 'tokenizer.ggml.model');
  if (model === undefined) return undefined;
  const tokens = ggufMeta(file, 'tokenizer.ggml.tokens');
  if (!Array.isArray(tokens) || !tokens.every((t) => typeof t === 'string')) {
    throw new FormatError(file.name, 'metadata tokenizer.ggml.tokens is missing or not an array of strings');
  }
  const n = tokens.length;
  const scores = ggufMeta(file, 'tokenizer.ggml.scores');
  const types = ggufMeta(file, 'tokenizer.ggml.token_type');
  if (scores !== undefined && !(scores instanceof Float32Array && scores.length === n)) {
    throw new FormatError(file.name, `metadata tokenizer.ggml.scores should be ${n} float32 values`);
  }
  if (types !== undefined && !(types instanceof Int32Array && types.length === n)) {
    throw new FormatError(file.name, `metadata tokenizer.ggml.token_type should be ${n} int32 values`);
  }
  const addBos = ggufMeta(file, 'tokenizer.ggml.add_bos_token');
  const addPrefix = ggufMeta(file, 'tokenizer.ggml.add_space_prefix');
  const base = {
    tokens: tokens as string[],
    bosId: optId(file, 'tokenizer.ggml.bos_token_id', n),
    eosId: optId(file, 'tokenizer.ggml.eos_token_id', n),
    unkId: optId(file, 'tokenizer.ggml.unknown_token_id', n),
    padId: optId(file, 'tokenizer.ggml.padding_token_id', n),
    source: file.name,
    ...chatTemplateOf(file),
  };
  if (model === 'bert') return wordPieceFromGguf(file, tokens as string[], types as Int32Array | undefined, base);
  if (model === 'llama') {
    return {
      kind: 'sentencepiece', ...base,
      scores: scores as Float32Array | undefined,
      types: types as Int32Array | undefined,
      addSpacePrefix: typeof addPrefix === 'boolean' ? addPrefix : true,
      addBos: typeof addBos === 'boolean' ? addBos : true,
    };
  }
  if (model === 'gpt2') {
    const merges = ggufMeta(file, 'tokenizer.ggml.merges');
    if (!Array.isArray(merges)) throw new FormatError(file.name, 'metadata tokenizer.ggml.merges is missing for a gpt2 tokenizer');
    const added = (types as Int32Array | undefined) ?? new Int32Array(n).fill(TokenType.NORMAL);
    const preName = ggufMeta(file, 'tokenizer.ggml.pre');
    const pre = typeof preName === 'string' ? preName : 'default';
    const json = {
      added_tokens: [...added].flatMap((t, id) => (t === TokenType.CONTROL || t === TokenType.USER_DEFINED
        ? [{ id, content: tokens[id], special: t === TokenType.CONTROL }] : [])),
      normalizer: null,
      // Unknown split rules: HfBpeTokenizer refuses the type by name rather than split text wrongly.
      pre_tokenizer: ggufPreTokenizer(pre),
      decoder: { type: 'ByteLevel' },
      model: {
        type: 'BPE', vocab: Object.fromEntries((tokens as string[]).map((t, i) => [t, i])), merges,
        ignore_merges: IGNORE_MERGES.has(GGUF_PRE_TOKENIZERS[pre] ?? ''),
      },
    };
    return { kind: 'hf-json', ...base, json, types: types as Int32Array | undefined, addSpacePrefix: false, addBos: addBos === true };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Export

export interface CheckpointToGgufOptions {
  /**
   * Storage type of matrices (1-D tensors are always F32). Default: each tensor's own type (float32 as
   * F32, a compact weight as its GGUF type, bit for bit). Q8_0/Q4_0 matrices whose rows do not split
   * into 32-element blocks are written as F16.
   */
  type?: GgufWriteType;
  /** `general.name`. */
  modelName?: string;
  /** Extra metadata, written after the standard keys (and overriding them). */
  metadata?: Record<string, GgufValue>;
}

// llama.cpp's llama_ftype: the type most weights have.
const FILE_TYPE: Record<GgufWriteType, number> = { F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q8_0: 7, BF16: 32 };

/**
 * Serialise a checkpoint as a GGUF file under the architecture llama.cpp's converter would name: qwen2,
 * granite, qwen3 (a checkpoint with per-head q/k norms), and llama for the rest (Mistral too: the converter's
 * LlamaModel takes MistralForCausalLM, and llama.cpp has no plain "mistral" architecture). Q/K rows go in the
 * rotary layout llama.cpp runs that architecture with (`ggufRopeLayout`): adjacent pairs for llama and
 * granite, as Hugging Face stores them (rotate-half) for qwen2 and qwen3.
 */
export function checkpointToGguf(ckpt: LlamaCheckpoint, options: CheckpointToGgufOptions = {}): Uint8Array {
  validateCheckpoint(ckpt);
  const family = familyOf(ckpt.config).name;
  if (family === 'phi3' || family === 'gpt2') return familyToGguf(ckpt, family, options);
  if (family !== 'llama') throw new FormatError(ckpt.source, `GGUF export of ${ckpt.config.architecture} models is not supported (the ${family} family; GGUF is written for Llama-shaped decoders, phi3 and gpt2); write the Hugging Face layout instead`);
  // GGUF's attention.sliding_window applies to every layer; a per-layer choice has no key to go in.
  if (ckpt.config.slidingWindow !== undefined && ckpt.config.layerTypes?.some((t) => t === 'full_attention')) {
    throw new FormatError(ckpt.source, 'GGUF export of a sliding window on some layers only (layerTypes) is not supported: attention.sliding_window would apply it to every layer');
  }
  const named = ckpt.config.architecture;
  const arch = ckpt.config.qkNorm ? 'qwen3' : named === 'qwen2' || named === 'granite' ? named : 'llama';
  const c = withRopeLayout(ckpt, ggufRopeLayout(arch));
  const cfg = c.config;
  const meta = new Map<string, GgufValue>([
    ['general.architecture', gguf.str(arch)],
    ['general.name', gguf.str(options.modelName ?? 'model')],
    // Set below, once the tensors' types are known.
    ['general.file_type', gguf.u32(0)],
    [`${arch}.context_length`, gguf.u32(cfg.maxSeqLen)],
    [`${arch}.embedding_length`, gguf.u32(cfg.dim)],
    [`${arch}.block_count`, gguf.u32(cfg.nLayers)],
    [`${arch}.feed_forward_length`, gguf.u32(cfg.hiddenDim)],
    [`${arch}.rope.dimension_count`, gguf.u32(configHeadDim(cfg))],
    ...(cfg.headDim !== undefined ? [[`${arch}.attention.key_length`, gguf.u32(cfg.headDim)], [`${arch}.attention.value_length`, gguf.u32(cfg.headDim)]] as [string, GgufValue][] : []),
    [`${arch}.attention.head_count`, gguf.u32(cfg.nHeads)],
    ...(cfg.slidingWindow !== undefined ? [[`${arch}.attention.sliding_window`, gguf.u32(cfg.slidingWindow)]] as [string, GgufValue][] : []),
    [`${arch}.attention.head_count_kv`, gguf.u32(cfg.nKvHeads)],
    [`${arch}.attention.layer_norm_rms_epsilon`, gguf.f32(cfg.normEps)],
    [`${arch}.rope.freq_base`, gguf.f32(cfg.ropeTheta)],
  ]);
  if (arch === 'granite') {
    // llama.cpp's Granite keys (LLM_KV_EMBEDDING_SCALE, …); attention.scale 0 would mean 1/√headDim there.
    meta.set(`${arch}.embedding_scale`, gguf.f32(cfg.embeddingMultiplier ?? 1));
    meta.set(`${arch}.residual_scale`, gguf.f32(cfg.residualMultiplier ?? 1));
    meta.set(`${arch}.logit_scale`, gguf.f32(cfg.logitsScaling ?? 1));
    meta.set(`${arch}.attention.scale`, gguf.f32(cfg.attentionScale ?? 1 / Math.sqrt(configHeadDim(cfg))));
  } else if (cfg.embeddingMultiplier !== undefined || cfg.residualMultiplier !== undefined || cfg.logitsScaling !== undefined || cfg.attentionScale !== undefined) {
    throw new FormatError(ckpt.source, `GGUF architecture ${arch} has no keys for Granite's multipliers or an attention scale`);
  }
  // RoPE scaling: linear and YaRN as llama.cpp's keys, Llama 3 as per-pair divisors (rope_freqs.weight);
  // dynamic NTK has no GGUF form.
  const extra: GgufWriteTensor[] = [];
  const scaling = cfg.ropeScaling, kind = scaling ? validateRopeScaling(scaling, cfg.maxSeqLen) : 'default';
  if (kind === 'linear' || kind === 'yarn') {
    const factor = scaling!.factor as number;
    meta.set(`${arch}.rope.scaling.type`, gguf.str(kind));
    meta.set(`${arch}.rope.scaling.factor`, gguf.f32(factor));
    if (kind === 'yarn') {
      const orig = scaling!.original_max_position_embeddings as number | undefined;
      if (orig !== undefined) meta.set(`${arch}.rope.scaling.original_context_length`, gguf.u32(orig));
      if (scaling!.beta_fast !== undefined) meta.set(`${arch}.rope.scaling.yarn_beta_fast`, gguf.f32(scaling!.beta_fast as number));
      if (scaling!.beta_slow !== undefined) meta.set(`${arch}.rope.scaling.yarn_beta_slow`, gguf.f32(scaling!.beta_slow as number));
      const att = scaling!.attention_factor as number | undefined;
      if (att !== undefined) meta.set(`${arch}.rope.scaling.attn_factor`, gguf.f32(att / (factor <= 1 ? 1 : 0.1 * Math.log(factor) + 1)));
    }
  } else if (kind === 'llama3') {
    if (c.tensors.has('rope_freqs.weight')) throw new Error('the checkpoint has both rope_scaling "llama3" and a rope_freqs.weight tensor');
    const hd = cfg.dim / cfg.nHeads, table = ropeTable({ ...cfg, ropeFreqFactors: undefined }, hd, 0)!;
    const divisors = table.freqs.map((f, i) => Math.pow(cfg.ropeTheta, (-2 * i) / hd) / f);
    extra.push({ name: 'rope_freqs.weight', shape: [hd / 2], data: Float32Array.from(divisors), type: 'F32' });
  } else if (kind !== 'default') {
    throw new Error(`rope_scaling "${kind}" has no GGUF form (llama.cpp reads linear, yarn and Llama 3's rope_freqs.weight)`);
  }
  for (const [k, v] of tokenizerMetadata(c.tokenizer, cfg.vocabSize)) meta.set(k, v);
  return finishGguf(c, meta, extra, (name) => hfToGgufName(name) ?? name, options);
}

/**
 * A phi3 or gpt2 file (see gguf-families.ts): general.*, the architecture's keys, the tokenizer, then the tensors
 * under llama.cpp's names (Phi-3's q/k rows as held, rotate-half, which is llama.cpp's NEOX layout for phi3).
 */
function familyToGguf(ckpt: LlamaCheckpoint, arch: 'phi3' | 'gpt2', options: CheckpointToGgufOptions): Uint8Array {
  const c = arch === 'phi3' ? withRopeLayout(ckpt, ggufRopeLayout(arch)) : ckpt;
  const { meta: archMeta, extra } = familyGgufMetadata(c, arch);
  const meta = new Map<string, GgufValue>([
    ['general.architecture', gguf.str(arch)],
    ['general.name', gguf.str(options.modelName ?? 'model')],
    ['general.file_type', gguf.u32(0)],
    ...archMeta,
  ]);
  for (const [k, v] of tokenizerMetadata(c.tokenizer, c.config.vocabSize)) meta.set(k, v);
  return finishGguf(c, meta, extra, (name) => familyHfToGguf(name, arch) ?? name, options);
}

/** The `tokenizer.*` keys of a checkpoint's tokenizer (SentencePiece as llama.cpp's `llama` model, byte-level BPE as `gpt2`). */
function tokenizerMetadata(tok: TokenizerData | undefined, vocabSize: number): Map<string, GgufValue> {
  const meta = new Map<string, GgufValue>();
  if (tok && tok.kind === 'sentencepiece') {
    // llama.cpp expects SentencePiece's U+2581 for spaces; llama2.c vocabularies use ' '.
    const usesSpace = tok.tokens.filter((t) => t.startsWith(' ')).length > tok.tokens.filter((t) => t.startsWith('\u2581')).length;
    const types = tok.types ?? (() => {
      const t = new Int32Array(tok.tokens.length);
      tok.tokens.forEach((p, id) => {
        t[id] = id === tok.unkId ? TokenType.UNKNOWN : id === tok.bosId || id === tok.eosId ? TokenType.CONTROL
          : /^<0x[0-9A-Fa-f]{2}>$/.test(p) ? TokenType.BYTE : TokenType.NORMAL;
      });
      return t;
    })();
    const tokens = tok.tokens.map((p, id) => {
      // llama2.c writes BOS/EOS as "\n<s>\n"; GGUF stores the plain control piece.
      if (types[id] === TokenType.CONTROL) return p.trim();
      return usesSpace ? p.replaceAll(' ', '\u2581') : p;
    });
    meta.set('tokenizer.ggml.model', gguf.str('llama'));
    meta.set('tokenizer.ggml.tokens', gguf.strings(tokens));
    meta.set('tokenizer.ggml.scores', gguf.f32s(tok.scores ?? new Float32Array(tokens.length)));
    meta.set('tokenizer.ggml.token_type', gguf.i32s(types));
    if (tok.bosId !== undefined) meta.set('tokenizer.ggml.bos_token_id', gguf.u32(tok.bosId));
    if (tok.eosId !== undefined) meta.set('tokenizer.ggml.eos_token_id', gguf.u32(tok.eosId));
    if (tok.unkId !== undefined) meta.set('tokenizer.ggml.unknown_token_id', gguf.u32(tok.unkId));
    if (tok.padId !== undefined) meta.set('tokenizer.ggml.padding_token_id', gguf.u32(tok.padId));
    if (tok.addBos !== undefined) meta.set('tokenizer.ggml.add_bos_token', gguf.bool(tok.addBos));
    if (tok.addSpacePrefix !== undefined) meta.set('tokenizer.ggml.add_space_prefix', gguf.bool(tok.addSpacePrefix));
    if (tok.chatTemplate !== undefined) meta.set('tokenizer.chat_template', gguf.str(tok.chatTemplate));
  } else if (tok) {
    for (const [k, v] of byteLevelTokenizerMetadata(tok, vocabSize) ?? []) meta.set(k, v);
  }
  return meta;
}

/** The tensors (named by `ggufName`) after `extra`, the file type, the caller's metadata; the file's bytes. */
function finishGguf(c: LlamaCheckpoint, meta: Map<string, GgufValue>, extra: GgufWriteTensor[], ggufName: (hf: string) => string, options: CheckpointToGgufOptions): Uint8Array {
  const cfg = c.config;
  const tensors: GgufWriteTensor[] = [...extra];
  const counts = new Map<GgufWriteType, number>();
  for (const [name, t] of c.tensors) {
    const g = ggufName(name);
    if (cfg.tiedEmbeddings && g === 'output.weight') continue;
    const own: GgufWriteType = isCompactTensor(t) ? GGML_TYPE_OF[t.dtype] : 'F32';
    // q4_1 converted from Q4_K has float32 scales that GGUF Q4_1 cannot hold: it is re-quantised to Q4_1.
    const asStored = isCompactTensor(t) && !(t.dtype === 'q4_1' && !q4_1FitsGgml(t.bytes, numel(t.shape)));
    let type = t.shape.length < 2 ? 'F32' : options.type ?? own;
    // Q8_0/Q4_0 blocks run along rows; a row that does not split into 32s is stored as F16 instead.
    if ((type === 'Q8_0' || type === 'Q4_0' || type === 'Q4_1') && t.shape[t.shape.length - 1]! % 32 !== 0) type = 'F16';
    if (t.shape.length >= 2) counts.set(type, (counts.get(type) ?? 0) + numel(t.shape));
    tensors.push(asStored && type === own
      ? { name: g, shape: t.shape, dtype: t.dtype, bytes: t.bytes }
      : { name: g, shape: t.shape, data: tensorF32(t), type });
  }
  const main = [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'F32';
  meta.set('general.file_type', gguf.u32(FILE_TYPE[main]));
  for (const [k, v] of Object.entries(options.metadata ?? {})) meta.set(k, v);
  return writeGguf({ metadata: meta, tensors, name: options.modelName ?? c.source });
}
