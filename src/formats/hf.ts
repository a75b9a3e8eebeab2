/**
 * Hugging Face checkpoints: `config.json` + `model.safetensors`, or shards listed in
 * `model.safetensors.index.json` (`{ "weight_map": { tensor: shard file } }`), plus `tokenizer.json`
 * when present. Browser-safe: files come through a `FileSource`.
 */
import { FormatError, decodeUtf8 } from './binary.js';
import type { F32Tensor, LlamaCheckpoint, LlamaConfig, NamedTensor } from './checkpoint.js';
import { quantize } from '../quant/codec.js';
import { configHeadDim, validateCheckpoint } from './checkpoint.js';
import {
  decodeSafetensorsData, parseSafetensorsHeader, type SafetensorsHeader, type SafetensorsTensorInfo,
} from './safetensors.js';
import { type ByteSource, bytesSource, readHeader } from './source.js';
import { type BaseDType, LoadNotes, type StoredTensor, readStoredTensor, targetStorage } from './storage.js';
import { tokenizerDataFromHfJson } from '../tokenizer/hf-json.js';
import { validateRopeScaling } from '../model/rope-scaling.js';
import { familyForModelType, familyOf, supportedModelTypes } from '../model/families.js';
import { LLAMA_MODEL_TYPES } from '../model/names.js';
import { ENCODER_MODEL_TYPES } from '../model/encoders/config.js';

/** Reads files of a checkpoint by path relative to its root; undefined when a file does not exist. */
export interface FileSource {
  /** Display name of the root, used in error messages. */
  readonly name: string;
  read(path: string): Promise<Uint8Array | undefined>;
  /** Open a (large) file for reading by offset instead of whole; weights shards use it when present. */
  open?(path: string): Promise<ByteSource | undefined>;
}

/** Read a safetensors header from a source (its 8-byte length, then exactly the JSON). */
export function readSafetensorsHeader(src: ByteSource): Promise<SafetensorsHeader> {
  return readHeader(src, (prefix) => parseSafetensorsHeader(prefix, src.name, src.size), Math.min(src.size, 8));
}

/** A safetensors tensor as `readStoredTensor` sees it. */
export function safetensorsStoredTensor(t: SafetensorsTensorInfo): StoredTensor {
  const kind = t.dtype === 'F32' ? 'f32' : t.dtype === 'F16' ? 'f16' : t.dtype === 'BF16' ? 'bf16' : 'plain';
  return {
    name: t.name, shape: t.shape, offset: t.offset, byteLength: t.byteLength, typeName: t.dtype, kind,
    decode: (raw, count) => decodeSafetensorsData(raw, 0, count, t.dtype, false),
  };
}

/**
 * A model config from a Hugging Face config.json object: the family that reads its `model_type` parses it
 * (src/model/families.ts); an unknown type is refused, naming the ones supported.
 */
export function hfModelConfig(cfg: Record<string, unknown>, name = 'config.json'): LlamaConfig {
  const modelType = typeof cfg.model_type === 'string' ? cfg.model_type : undefined;
  if (modelType === undefined) return hfLlamaConfig(cfg, name);
  const family = familyForModelType(modelType);
  if (!family) {
    // Encoders are built by src/model/encoders/ for classification, not as decoders.
    const encoder = (ENCODER_MODEL_TYPES as readonly string[]).includes(modelType) ? '; a BERT-family encoder is used for classification: train/eval --task seq-cls|token-cls and predict (loadEncoderFolder in the library)' : '';
    throw new FormatError(name, `model_type ${modelType} is not supported (supported: ${supportedModelTypes().join(', ')})${encoder}`);
  }
  return family.hfConfig(cfg, name);
}

/** Llama config from a Hugging Face config.json object (rows in rotate-half layout). */
export function hfLlamaConfig(cfg: Record<string, unknown>, name = 'config.json'): LlamaConfig {
  const fail: (p: string) => never = (p) => { throw new FormatError(name, p); };
  const num = (k: string, fallback?: number): number => {
    const v = cfg[k];
    if (v === undefined || v === null) return fallback ?? fail(`${k} is missing`);
    if (typeof v !== 'number' || !Number.isFinite(v)) return fail(`${k} is ${JSON.stringify(v)}, expected a number`);
    return v;
  };
  const archs = Array.isArray(cfg.architectures) ? (cfg.architectures as unknown[]) : [];
  const modelType = typeof cfg.model_type === 'string' ? cfg.model_type : undefined;
  const architecture = modelType ?? (typeof archs[0] === 'string' ? (archs[0] as string) : 'llama');
  if (modelType !== undefined && !LLAMA_MODEL_TYPES.includes(modelType)) {
    fail(`model_type ${modelType} is not supported (supported: ${LLAMA_MODEL_TYPES.join(', ')})`);
  }
  const dim = num('hidden_size');
  const nHeads = num('num_attention_heads');
  const headDim = cfg.head_dim === undefined || cfg.head_dim === null ? undefined : num('head_dim');
  if (headDim !== undefined && !(Number.isSafeInteger(headDim) && headDim > 0 && headDim % 2 === 0)) {
    fail(`head_dim is ${headDim}, expected a positive even integer`);
  }
  if (headDim === undefined && dim % nHeads !== 0) {
    fail(`hidden_size ${dim} is not a multiple of num_attention_heads ${nHeads} and head_dim is not given`);
  }
  if (cfg.hidden_act !== undefined && cfg.hidden_act !== 'silu') fail(`hidden_act ${String(cfg.hidden_act)} is not supported (only silu)`);
  const config: LlamaConfig = {
    dim,
    hiddenDim: num('intermediate_size'),
    nLayers: num('num_hidden_layers'),
    nHeads,
    nKvHeads: num('num_key_value_heads', nHeads),
    vocabSize: num('vocab_size'),
    maxSeqLen: num('max_position_embeddings', 2048),
    normEps: num('rms_norm_eps', 1e-6),
    ropeTheta: num('rope_theta', 10000),
    tiedEmbeddings: cfg.tie_word_embeddings === true,
    qkvBias: cfg.attention_bias === true || modelType === 'qwen2',
    ropeLayout: 'half',
    architecture,
  };
  if (headDim !== undefined && headDim !== dim / nHeads) config.headDim = headDim;
  if (modelType === 'qwen3') config.qkNorm = true;
  if (modelType === 'granite') {
    // Granite scales the embeddings, each block's output and the logits, and sets its own attention factor.
    for (const [k, field] of [['embedding_multiplier', 'embeddingMultiplier'], ['residual_multiplier', 'residualMultiplier'], ['attention_multiplier', 'attentionScale'], ['logits_scaling', 'logitsScaling']] as const) {
      const v = num(k, 1);
      if (!(v > 0)) fail(`${k} is ${v}, expected a positive number`);
      if (field === 'attentionScale' ? v !== 1 / Math.sqrt(configHeadDim(config)) : v !== 1) config[field] = v;
    }
  }
  // Qwen2 declares a window but uses it only when use_sliding_window is true; Mistral and the others use
  // sliding_window whenever it is a number. Which layers slide: `layer_types` when given; for Qwen2
  // without it, layers from max_window_layers on (transformers' default, max_window_layers 28); else all.
  const window = modelType === 'qwen2' && cfg.use_sliding_window !== true ? undefined : cfg.sliding_window;
  if (window !== undefined && window !== null) {
    const wnd = num('sliding_window');
    if (!(Number.isSafeInteger(wnd) && wnd > 0)) fail(`sliding_window is ${wnd}, expected a positive integer`);
    const nLayers = config.nLayers;
    let types: ('full_attention' | 'sliding_attention')[] | undefined;
    if (cfg.layer_types !== undefined && cfg.layer_types !== null) {
      const given = cfg.layer_types;
      if (!Array.isArray(given) || given.length !== nLayers) fail(`layer_types must list one type per layer (${nLayers}), got ${JSON.stringify(given)}`);
      given.forEach((t: unknown, i: number) => {
        if (t !== 'full_attention' && t !== 'sliding_attention') fail(`layer_types[${i}] is ${JSON.stringify(t)}; supported: full_attention, sliding_attention`);
      });
      types = given as ('full_attention' | 'sliding_attention')[];
    } else if (modelType === 'qwen2') {
      const first = num('max_window_layers', 28);
      if (!(Number.isSafeInteger(first) && first >= 0)) fail(`max_window_layers is ${first}, expected a non-negative integer`);
      types = Array.from({ length: nLayers }, (_, i) => (i >= first ? 'sliding_attention' : 'full_attention'));
    }
    // A window at least the context, or on no layer, changes nothing: it is left out.
    if (wnd < config.maxSeqLen && !(types && types.every((t) => t === 'full_attention'))) {
      config.slidingWindow = wnd;
      if (types && types.some((t) => t === 'full_attention')) config.layerTypes = types;
    }
  }
  for (const [k, v] of [['num_hidden_layers', config.nLayers], ['hidden_size', dim], ['intermediate_size', config.hiddenDim], ['num_attention_heads', nHeads], ['num_key_value_heads', config.nKvHeads], ['vocab_size', config.vocabSize], ['max_position_embeddings', config.maxSeqLen]] as const) {
    if (!(Number.isSafeInteger(v) && v > 0)) fail(`${k} is ${v}, expected a positive integer`);
  }
  for (const [k, v] of [['rms_norm_eps', config.normEps], ['rope_theta', config.ropeTheta]] as const) {
    if (!(v > 0)) fail(`${k} is ${v}, expected a positive number`);
  }
  if (cfg.rope_scaling && typeof cfg.rope_scaling === 'object') {
    config.ropeScaling = cfg.rope_scaling as Record<string, unknown>;
    // Checked now, before any weight is read: unknown types and bad factors are refused by name.
    try { validateRopeScaling(config.ropeScaling, config.maxSeqLen); } catch (e) { fail((e as Error).message); }
  }
  return config;
}

function parseJson(bytes: Uint8Array, name: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(decodeUtf8(bytes));
  } catch (e) {
    throw new FormatError(name, `not valid JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new FormatError(name, 'is not a JSON object');
  return v as Record<string, unknown>;
}

export interface HfReadOptions {
  /** Return copies instead of views of the file bytes where alignment allows. */
  copy?: boolean;
  /** In-memory type of 2-D weights (see storage.ts); default 'auto' keeps the stored type. */
  baseDtype?: BaseDType;
  /** Bytes read per step when converting a tensor (default 4 MiB). */
  chunkBytes?: number;
}

/** Read a Hugging Face llama-family checkpoint. Tensors keep their stored (rotate-half) rows. */
export async function readHfCheckpoint(src: FileSource, options: HfReadOptions = {}): Promise<LlamaCheckpoint> {
  const at = (f: string) => `${src.name.replace(/[/\\]$/, '')}/${f}`;
  const cfgBytes = await src.read('config.json');
  if (!cfgBytes) throw new FormatError(src.name, 'config.json is missing');
  const config = hfModelConfig(parseJson(cfgBytes, at('config.json')), at('config.json'));
  const family = familyOf(config);

  // shard file → the tensors it holds ([] = all of them)
  let plan: Map<string, string[]>;
  const open = async (file: string): Promise<ByteSource | undefined> => {
    if (src.open) return src.open(file);
    const bytes = await src.read(file);
    return bytes && bytesSource(bytes, at(file));
  };
  const shards = new Map<string, ByteSource>();
  const single = await open('model.safetensors');
  if (single) {
    shards.set('model.safetensors', single);
    plan = new Map([['model.safetensors', []]]);
  } else {
    const idxBytes = await src.read('model.safetensors.index.json');
    if (!idxBytes) throw new FormatError(src.name, 'neither model.safetensors nor model.safetensors.index.json is present');
    const idxName = at('model.safetensors.index.json');
    const idx = parseJson(idxBytes, idxName);
    const wm = idx.weight_map;
    if (typeof wm !== 'object' || wm === null) throw new FormatError(idxName, 'weight_map is missing');
    plan = new Map();
    for (const [tensor, file] of Object.entries(wm as Record<string, unknown>)) {
      if (typeof file !== 'string' || file.includes('..')) throw new FormatError(idxName, `weight_map entry for ${tensor} is not a file name`);
      if (!plan.has(file)) plan.set(file, []);
      plan.get(file)!.push(tensor);
    }
  }

  const notes = new LoadNotes();
  const base = options.baseDtype ?? 'auto';
  const tensors = new Map<string, NamedTensor>();
  for (const [file, wanted] of plan) {
    const shard = shards.get(file) ?? await open(file);
    if (!shard) throw new FormatError(src.name, `shard ${file} named in model.safetensors.index.json is missing`);
    try {
      const st = await readSafetensorsHeader(shard);
      for (const w of wanted) {
        if (!st.tensorsByName.has(w)) throw new FormatError(at(file), `tensor ${w} is listed in model.safetensors.index.json but not in this shard`);
      }
      const names = wanted.length ? wanted : st.tensors.map((t) => t.name);
      for (const n of names) {
        // Older checkpoints store the rotary frequencies as a buffer; they are recomputed from ropeTheta.
        if (n.endsWith('.rotary_emb.inv_freq')) continue;
        if (n === 'lm_head.weight' && config.tiedEmbeddings) continue;
        // The family's name for it (GPT-2: `transformer.` on bare names), or none for a buffer that is not a weight.
        const held = family.hfTensorName ? family.hfTensorName(n) : n;
        if (held === undefined) continue;
        if (tensors.has(held)) throw new FormatError(at(file), `tensor ${n} is stored twice (also as ${held === n ? 'a bare name' : held})`);
        const stored = safetensorsStoredTensor(st.tensorsByName.get(n)!);
        if (!family.fromHf) {
          tensors.set(held, await readStoredTensor(shard, stored, targetStorage(stored, base, notes), options));
          continue;
        }
        // Reoriented (GPT-2's Conv1D weights): read as float32, turned, then stored compact once, by the turned rows.
        const turned = family.fromHf(held, await readStoredTensor(shard, stored, 'f32', options)) as F32Tensor;
        const want = targetStorage({ ...stored, name: held, shape: turned.shape }, base, notes);
        tensors.set(held, want === 'f32' ? turned : { shape: turned.shape, dtype: want, bytes: quantize(want, turned.data) });
      }
    } finally {
      await shard.close?.();
    }
  }
  if (!tensors.has('lm_head.weight')) config.tiedEmbeddings = true;
  else if (config.tiedEmbeddings) tensors.delete('lm_head.weight');
  if (tensors.has('model.layers.0.self_attn.q_proj.bias')) config.qkvBias = true;

  const ckpt: LlamaCheckpoint = { config, tensors, source: src.name };
  const said = notes.list();
  if (said.length) ckpt.notes = said;
  const tokBytes = await src.read('tokenizer.json');
  if (tokBytes) {
    const tcBytes = await src.read('tokenizer_config.json');
    ckpt.tokenizer = tokenizerDataFromHfJson(
      parseJson(tokBytes, at('tokenizer.json')), at('tokenizer.json'),
      tcBytes ? parseJson(tcBytes, at('tokenizer_config.json')) : undefined,
    );
  }
  validateCheckpoint(ckpt);
  return ckpt;
}
