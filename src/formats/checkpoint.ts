/**
 * The common output of every model loader (GGUF, llama2.c, Hugging Face safetensors): a Llama-family
 * config and tensors (float32, or compact 2-D weights) under Hugging Face names, rows as the file stores them.
 *
 * Browser-safe: a path is only accepted where a Node-compatible `node:fs/promises` exists, loaded on
 * demand; browsers pass bytes, a `File`, a URL or a `FileSource`.
 */
import { FormatError, numel } from './binary.js';
import { type CompactDType, compactBytes, isBlockQuant } from '../quant/types.js';
import { dequantize, gatherRows, quantize } from '../quant/codec.js';
import { GGUF_MAGIC } from './gguf.js';
import { readGgufCheckpoint } from './gguf-llama.js';
import { readHfCheckpoint, type FileSource } from './hf.js';
import { type ByteSource, blobSource, bytesSource, fileSource, httpSource } from './source.js';
import { type BaseDType, LoadNotes, parseBaseDType, targetStorage } from './storage.js';
import { parseLlama2cHeader, parseLlama2cTokenizer, readLlama2cFrom } from './llama2c.js';
import { isSafetensors } from './safetensors.js';
import type { TokenizerData } from '../tokenizer/types.js';
import { familyOf } from '../model/families.js';

export interface LlamaConfig {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  maxSeqLen: number;
  normEps: number;
  ropeTheta: number;
  tiedEmbeddings: boolean;
  qkvBias: boolean;
  /** how Q/K rows are laid out for rotary: GGUF and llama2.c store adjacent pairs, HF checkpoints rotate-half */
  ropeLayout: 'pairs' | 'half';
  architecture: string;
  /**
   * Size of one attention head (Hugging Face `head_dim`); when absent, dim / nHeads. Queries are
   * nHeads·headDim wide, keys and values nKvHeads·headDim, and o_proj maps nHeads·headDim back to dim.
   */
  headDim?: number;
  /**
   * Qwen3: RMSNorm over each head of the queries and keys before rotary (`self_attn.q_norm.weight`,
   * `self_attn.k_norm.weight`, each [headDim], rows in the checkpoint's rotary layout).
   */
  qkNorm?: boolean;
  /**
   * Sliding-window attention (Mistral `sliding_window`; Qwen2 only with `use_sliding_window`): the query
   * at position i attends keys j with i − window < j ≤ i (computed as such by the attention op's window,
   * in training, evaluation and KV-cache decoding alike). Absent when the checkpoint has none or its
   * window is at least the context (then plain causal attention is the same).
   */
  slidingWindow?: number;
  /**
   * Which layers use the window (Hugging Face `layer_types`, one per layer: 'sliding_attention' or
   * 'full_attention'; Qwen2 derives it from `max_window_layers`). Absent: every layer slides when
   * slidingWindow is set. Ignored without slidingWindow.
   */
  layerTypes?: ('full_attention' | 'sliding_attention')[];
  /** Hugging Face `rope_scaling` as given in config.json (e.g. Llama 3.1's `rope_type: "llama3"`), when set. */
  ropeScaling?: Record<string, unknown>;
  /** Per-pair divisors of the rotary frequencies (GGUF `rope_freqs.weight`, as Llama 3.1 files carry), when set. */
  ropeFreqFactors?: number[];
  /**
   * Factor on q·k in attention when not 1/√headDim (Gemma 2/3: `query_pre_attn_scalar`^−½; Granite:
   * `attention_multiplier`, GGUF `granite.attention.scale`).
   */
  attentionScale?: number;
  // Granite's multipliers (Hugging Face `embedding_multiplier`, `residual_multiplier`, `logits_scaling`; GGUF
  // `granite.embedding_scale`, `residual_scale`, `logit_scale`); absent = 1.
  /** Factor on the token embeddings. */
  embeddingMultiplier?: number;
  /** Factor on each block's output before it is added to the residual stream. */
  residualMultiplier?: number;
  /** Divisor of the output logits. */
  logitsScaling?: number;
  // The three fields below are read by the Gemma family (src/model/gemma.ts); Llama-shaped graphs do not have them.
  /** Attention logit soft-capping (Gemma 2 `attn_logit_softcapping`): a score s becomes c·tanh(s/c). */
  attnSoftcap?: number;
  /** Output logit soft-capping (Gemma 2 `final_logit_softcapping`): a logit z becomes c·tanh(z/c). */
  finalSoftcap?: number;
  /**
   * Rotary base of the sliding-window layers when it differs from ropeTheta (Gemma 3 `rope_local_base_freq`);
   * those layers then use it without ropeScaling, which applies to the full-attention layers only.
   */
  localRopeTheta?: number;
}

/** Size of one attention head: the config's headDim, or dim / nHeads. */
export function configHeadDim(c: LlamaConfig): number { return c.headDim ?? c.dim / c.nHeads; }

/** The attention window of layer l (see slidingWindow and layerTypes), or undefined for full causal attention. */
export function layerWindow(c: LlamaConfig, l: number): number | undefined {
  if (c.slidingWindow === undefined) return undefined;
  return (c.layerTypes?.[l] ?? 'sliding_attention') === 'sliding_attention' ? c.slidingWindow : undefined;
}

/** A float32 tensor, row-major. */
export interface F32Tensor {
  shape: number[];
  data: Float32Array;
  dtype?: 'f32';
}

/** A frozen 2-D weight kept in a compact layout (src/quant/codec.ts), row-major [rows, cols]. */
export interface CompactTensor {
  shape: number[];
  dtype: CompactDType;
  bytes: Uint8Array;
}

/** A checkpoint tensor: float32 data, or a compact weight (`dtype` tells which; `tensorF32` decodes either). */
export type NamedTensor = F32Tensor | CompactTensor;

export function isCompactTensor(t: NamedTensor): t is CompactTensor {
  return t.dtype !== undefined && t.dtype !== 'f32';
}

/** Storage type of a checkpoint tensor. */
export function tensorDType(t: NamedTensor): 'f32' | CompactDType {
  return t.dtype ?? 'f32';
}

/**
 * A tensor's values as float32: the data itself for f32 (not a copy), else a fresh dequantised array
 * (never cached, so a compact model stays compact).
 */
export function tensorF32(t: NamedTensor): Float32Array {
  return isCompactTensor(t) ? dequantize(t.dtype, t.bytes, numel(t.shape)) : t.data;
}

export interface LlamaCheckpoint {
  config: LlamaConfig;
  tensors: Map<string, NamedTensor>;
  tokenizer?: TokenizerData;
  source: string;
  /** What loading changed about the stored weights (requantised or widened types), for the user to see. */
  notes?: string[];
}

// ---------------------------------------------------------------------------------------------
// Rotary layouts

/**
 * Reorder the rows of a Q or K projection weight ([nHeads * headDim, inFeatures], row-major) from the
 * adjacent-pair rotary layout (GGUF, llama2.c: rotates (x[2i], x[2i+1])) to rotate-half (Hugging Face:
 * rotates (x[i], x[i + headDim/2])). Within each head, half-layout row i < headDim/2 is pair-layout row
 * 2i and half-layout row headDim/2 + i is pair-layout row 2i + 1. Also works for a bias (inFeatures 1).
 */
export function permuteQKPairsToHalf(data: Float32Array, nHeads: number, headDim: number, inFeatures: number): Float32Array {
  return permuteRows(data, nHeads, headDim, inFeatures, true);
}

/** Inverse of `permuteQKPairsToHalf`: rotate-half (Hugging Face) rows to adjacent pairs (GGUF). */
export function permuteQKHalfToPairs(data: Float32Array, nHeads: number, headDim: number, inFeatures: number): Float32Array {
  return permuteRows(data, nHeads, headDim, inFeatures, false);
}

/** For each output row, the input row it comes from when converting between the rotary layouts. */
function qkRowSources(nHeads: number, headDim: number, toHalf: boolean): Int32Array {
  if (headDim % 2 !== 0) throw new RangeError(`rotary head size ${headDim} is odd`);
  const from = new Int32Array(nHeads * headDim);
  const half = headDim / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < headDim; i++) {
      // Row i of the half layout comes from this row of the pair layout.
      const pairRow = i < half ? 2 * i : 2 * (i - half) + 1;
      if (toHalf) from[h * headDim + i] = h * headDim + pairRow;
      else from[h * headDim + pairRow] = h * headDim + i;
    }
  }
  return from;
}

function permuteRows(data: Float32Array, nHeads: number, headDim: number, inFeatures: number, toHalf: boolean): Float32Array {
  const from = qkRowSources(nHeads, headDim, toHalf);
  if (data.length !== nHeads * headDim * inFeatures) {
    throw new RangeError(`Q/K permutation: ${data.length} values is not ${nHeads} heads × ${headDim} rows × ${inFeatures} columns`);
  }
  const out = new Float32Array(data.length);
  for (let r = 0; r < from.length; r++) out.set(data.subarray(from[r]! * inFeatures, (from[r]! + 1) * inFeatures), r * inFeatures);
  return out;
}

/** The Q/K row permutation of a checkpoint tensor of either storage type (a compact row moves whole). */
function permuteTensorRows(t: NamedTensor, nHeads: number, headDim: number, toHalf: boolean): NamedTensor {
  const inF = t.shape.length === 2 ? t.shape[1]! : 1;
  if (!isCompactTensor(t)) return { shape: t.shape, data: permuteRows(t.data, nHeads, headDim, inF, toHalf) };
  return { shape: t.shape, dtype: t.dtype, bytes: gatherRows(t.dtype, t.bytes, nHeads * headDim, inF, qkRowSources(nHeads, headDim, toHalf)) };
}

/**
 * Return a checkpoint whose Q/K weights (and biases) use the requested rotary layout; tensors that do
 * not change are shared with the input.
 */
export function withRopeLayout(ckpt: LlamaCheckpoint, layout: 'pairs' | 'half'): LlamaCheckpoint {
  const c = ckpt.config;
  if (c.ropeLayout === layout) return ckpt;
  const headDim = configHeadDim(c);
  const tensors = new Map(ckpt.tensors);
  for (let l = 0; l < c.nLayers; l++) {
    for (const [proj, heads] of [['q_proj', c.nHeads], ['k_proj', c.nKvHeads]] as const) {
      for (const kind of ['weight', 'bias'] as const) {
        const key = `model.layers.${l}.self_attn.${proj}.${kind}`;
        const t = tensors.get(key);
        if (t) tensors.set(key, permuteTensorRows(t, heads, headDim, layout === 'half'));
      }
    }
    // The per-head norms scale the head's rows, so they follow the same order (one head, one column).
    for (const norm of ['q_norm', 'k_norm']) {
      const key = `model.layers.${l}.self_attn.${norm}.weight`;
      const t = tensors.get(key);
      if (t) tensors.set(key, permuteTensorRows(t, 1, headDim, layout === 'half'));
    }
  }
  return { ...ckpt, config: { ...c, ropeLayout: layout }, tensors };
}

// ---------------------------------------------------------------------------------------------
// Validation

/** The tensors a checkpoint must have, with their shapes, under Hugging Face names (as the model's family lists them). */
export function expectedTensorShapes(c: LlamaConfig): Map<string, number[]> {
  return familyOf(c).tensorShapes(c);
}

/** The tensors of a Llama-shaped decoder (Llama, Mistral, Qwen2/3, Granite), with their shapes. */
export function llamaTensorShapes(c: LlamaConfig): Map<string, number[]> {
  const headDim = configHeadDim(c);
  const kvDim = headDim * c.nKvHeads, qDim = headDim * c.nHeads;
  const m = new Map<string, number[]>();
  m.set('model.embed_tokens.weight', [c.vocabSize, c.dim]);
  for (let l = 0; l < c.nLayers; l++) {
    const p = `model.layers.${l}.`;
    m.set(`${p}input_layernorm.weight`, [c.dim]);
    m.set(`${p}self_attn.q_proj.weight`, [qDim, c.dim]);
    m.set(`${p}self_attn.k_proj.weight`, [kvDim, c.dim]);
    m.set(`${p}self_attn.v_proj.weight`, [kvDim, c.dim]);
    m.set(`${p}self_attn.o_proj.weight`, [c.dim, qDim]);
    if (c.qkvBias) {
      m.set(`${p}self_attn.q_proj.bias`, [qDim]);
      m.set(`${p}self_attn.k_proj.bias`, [kvDim]);
      m.set(`${p}self_attn.v_proj.bias`, [kvDim]);
    }
    if (c.qkNorm) {
      m.set(`${p}self_attn.q_norm.weight`, [headDim]);
      m.set(`${p}self_attn.k_norm.weight`, [headDim]);
    }
    m.set(`${p}post_attention_layernorm.weight`, [c.dim]);
    m.set(`${p}mlp.gate_proj.weight`, [c.hiddenDim, c.dim]);
    m.set(`${p}mlp.up_proj.weight`, [c.hiddenDim, c.dim]);
    m.set(`${p}mlp.down_proj.weight`, [c.dim, c.hiddenDim]);
  }
  m.set('model.norm.weight', [c.dim]);
  if (!c.tiedEmbeddings) m.set('lm_head.weight', [c.vocabSize, c.dim]);
  return m;
}

/** Throw (naming the source) when a tensor is missing or has the wrong shape or the config is inconsistent. */
export function validateCheckpoint(ckpt: LlamaCheckpoint): void {
  const c = ckpt.config;
  const fail: (p: string) => never = (p) => { throw new FormatError(ckpt.source, p); };
  for (const k of ['dim', 'hiddenDim', 'nLayers', 'nHeads', 'nKvHeads', 'vocabSize', 'maxSeqLen'] as const) {
    if (!(Number.isSafeInteger(c[k]) && c[k] > 0)) fail(`config ${k} is ${c[k]}, expected a positive integer`);
  }
  for (const k of ['normEps', 'ropeTheta'] as const) {
    if (!(Number.isFinite(c[k]) && c[k] > 0)) fail(`config ${k} is ${c[k]}, expected a positive finite number`);
  }
  // Every layer has at least nine tensors: a corrupt layer count is refused before a name is listed for each.
  if (c.nLayers * 9 > ckpt.tensors.size) fail(`config nLayers ${c.nLayers} needs at least ${c.nLayers * 9} tensors but the checkpoint has ${ckpt.tensors.size}`);
  if (c.headDim === undefined) {
    if (c.dim % c.nHeads !== 0) fail(`config dim ${c.dim} is not a multiple of nHeads ${c.nHeads}`);
  } else if (!(Number.isSafeInteger(c.headDim) && c.headDim > 0)) {
    fail(`config headDim ${c.headDim} is not a positive integer`);
  }
  if (c.nHeads % c.nKvHeads !== 0) fail(`config nHeads ${c.nHeads} is not a multiple of nKvHeads ${c.nKvHeads}`);
  if (c.slidingWindow !== undefined && !(Number.isSafeInteger(c.slidingWindow) && c.slidingWindow > 0)) fail(`config slidingWindow ${c.slidingWindow} is not a positive integer`);
  if (c.layerTypes !== undefined && (c.layerTypes.length !== c.nLayers || c.layerTypes.some((t) => t !== 'full_attention' && t !== 'sliding_attention'))) {
    fail(`config layerTypes must give 'full_attention' or 'sliding_attention' for each of the ${c.nLayers} layers`);
  }
  if (configHeadDim(c) % 2 !== 0) fail(`head size ${configHeadDim(c)} is odd; rotary embedding needs pairs`);
  for (const [name, shape] of expectedTensorShapes(c)) {
    const t = ckpt.tensors.get(name);
    if (!t) fail(`tensor ${name} is missing`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      fail(`tensor ${name} has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
    }
    checkTensorStorage(name, t, fail);
  }
  if (ckpt.tokenizer && ckpt.tokenizer.tokens.length > c.vocabSize) {
    fail(`the tokenizer has ${ckpt.tokenizer.tokens.length} tokens but the embedding has ${c.vocabSize} rows`);
  }
}

/** Throw through `fail` when a tensor's data does not match its shape and storage type. */
function checkTensorStorage(name: string, t: NamedTensor, fail: (problem: string) => never): void {
  const n = numel(t.shape);
  if (!isCompactTensor(t)) {
    if (t.data.length !== n) fail(`tensor ${name} has ${t.data.length} values for shape [${t.shape.join(', ')}]`);
    return;
  }
  if (t.shape.length !== 2) fail(`tensor ${name} of shape [${t.shape.join(', ')}] is ${t.dtype}; only 2-D weights are stored compact`);
  if (isBlockQuant(t.dtype) && t.shape[1]! % 32 !== 0) fail(`tensor ${name} is ${t.dtype} but its rows of ${t.shape[1]} are not whole 32-element blocks`);
  if (t.bytes.length !== compactBytes(t.dtype, n)) fail(`tensor ${name} has ${t.bytes.length} bytes for ${t.dtype} of shape [${t.shape.join(', ')}], expected ${compactBytes(t.dtype, n)}`);
}

// ---------------------------------------------------------------------------------------------
// Loading with format detection

export type CheckpointFormat = 'gguf' | 'llama2c' | 'safetensors' | 'hf';

export interface LoadCheckpointOptions {
  /** Display name for bytes (default: 'model'). */
  name?: string;
  /** Force a format instead of detecting it. */
  format?: CheckpointFormat;
  /** llama2.c: the tokenizer.bin bytes or path; a path's siblings tok{vocab}.bin and tokenizer.bin are tried when omitted. */
  tokenizer?: Uint8Array | string;
  /** For a single safetensors file given as bytes, a Blob or a URL: its config.json (text or parsed). */
  config?: string | Record<string, unknown>;
  /** Return copies instead of views of the file bytes where alignment allows. */
  copy?: boolean;
  /**
   * In-memory type of the 2-D weights (projections, embedding, output head): 'auto' (default) keeps the
   * stored type (F16, BF16, Q8_0, Q4_0 stay compact; other GGUF block types become q8_0), 'f32' decodes,
   * 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q4_1' converts on load. Norms and biases are always float32.
   */
  baseDtype?: BaseDType;
  /** Bytes read per step when a tensor is converted on load (default 4 MiB). */
  chunkBytes?: number;
}

/** Guess the format of a file from its first bytes (magic numbers), its size and its name as a hint. */
export function detectFormat(bytes: Uint8Array, name = '', size = bytes.length): CheckpointFormat {
  if (bytes.length >= 4 && String.fromCharCode(bytes[0]!, bytes[1]!, bytes[2]!, bytes[3]!) === GGUF_MAGIC) return 'gguf';
  if (isSafetensors(bytes, size)) return 'safetensors';
  if (/\.gguf$/i.test(name)) return 'gguf';
  if (/\.safetensors$/i.test(name)) return 'safetensors';
  return 'llama2c';
}

interface NodeFs {
  readFile(path: string): Promise<Uint8Array>;
  stat(path: string): Promise<{ isDirectory(): boolean }>;
}

/** node:fs/promises, loaded only when a path is given (Node, Deno, Bun). */
async function nodeFs(): Promise<NodeFs> {
  // A computed specifier keeps browser bundlers from trying to resolve a Node built-in.
  const spec = ['node', 'fs/promises'].join(':');
  try {
    return (await import(/* @vite-ignore */ spec)) as NodeFs;
  } catch {
    throw new Error('loadCheckpoint: paths need a runtime with node:fs (Node, Deno, Bun); in a browser pass bytes, a File or a URL');
  }
}

function dirname(p: string): string {
  const i = Math.max(p.lastIndexOf('/'), p.lastIndexOf('\\'));
  return i < 0 ? '.' : p.slice(0, i) || '/';
}

function basename(p: string): string {
  return p.slice(Math.max(p.lastIndexOf('/'), p.lastIndexOf('\\')) + 1);
}

async function readIfExists(path: string): Promise<Uint8Array | undefined> {
  const fs = await nodeFs();
  try {
    return await fs.readFile(path);
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** A FileSource over a directory on disk (Node-compatible runtimes); weight shards are read by offset. */
export function directorySource(dir: string): FileSource {
  const at = (rel: string) => `${dir.replace(/[/\\]$/, '')}/${rel}`;
  return {
    name: dir,
    read: (rel) => readIfExists(at(rel)),
    async open(rel) {
      try {
        return await fileSource(at(rel));
      } catch (e) {
        if ((e as { code?: string }).code === 'ENOENT') return undefined;
        throw e;
      }
    },
  };
}

/** A FileSource over files already in memory (e.g. from a browser file picker). */
export function memorySource(files: Record<string, Uint8Array> | Map<string, Uint8Array>, name = 'checkpoint'): FileSource {
  const m = files instanceof Map ? files : new Map(Object.entries(files));
  return { name, read: async (rel: string) => m.get(rel) };
}

/** What `loadCheckpoint` reads: bytes, a path or URL, a browser File/Blob, a ByteSource or a Hugging Face FileSource. */
export type CheckpointInput = Uint8Array | string | URL | Blob | ByteSource | FileSource;

function isByteSource(x: ByteSource | FileSource): x is ByteSource {
  return typeof (x as ByteSource).size === 'number';
}

/**
 * Load a Llama-family checkpoint from bytes, a path (file or Hugging Face directory), an http(s) URL
 * (read with range requests), a browser `File`/`Blob`, a `ByteSource`, or a FileSource (Hugging Face
 * layout: config.json + model.safetensors or model.safetensors.index.json). Files are read a tensor at
 * a time, never whole.
 */
export async function loadCheckpoint(input: CheckpointInput, options: LoadCheckpointOptions = {}): Promise<LlamaCheckpoint> {
  if (options.baseDtype !== undefined) parseBaseDType(options.baseDtype, 'loadCheckpoint: options.baseDtype');
  if (input instanceof URL) input = input.href;
  if (typeof input === 'string') {
    if (!/^https?:\/\//i.test(input)) return loadPath(input, options);
    return loadSource(await httpSource(input), { ...options, name: options.name ?? input });
  }
  const name = options.name ?? 'model';
  if (input instanceof Uint8Array) return loadSource(bytesSource(input, name), options);
  if (typeof Blob !== 'undefined' && input instanceof Blob) return loadSource(blobSource(input, options.name), options);
  const src = input as ByteSource | FileSource;
  return isByteSource(src) ? loadSource(src, options) : readHfCheckpoint(src, options);
}

/**
 * One model file read by offset. A safetensors file takes its config.json from `siblings` (its
 * directory) or `options.config`.
 */
async function loadSource(src: ByteSource, options: LoadCheckpointOptions, siblings?: FileSource): Promise<LlamaCheckpoint> {
  const head = await src.read(0, Math.min(src.size, 16));
  const format = options.format ?? detectFormat(head, src.name, src.size);
  switch (format) {
    case 'gguf': return readGgufCheckpoint(src, options);
    case 'llama2c': {
      const tok = options.tokenizer;
      if (typeof tok === 'string') throw new Error('loadCheckpoint: pass tokenizer bytes along with model bytes');
      return readLlama2cFrom(src, { ...options, tokenizer: tok ? parseLlama2cTokenizer(tok, 'tokenizer.bin') : undefined });
    }
    case 'safetensors':
    case 'hf': {
      let config: Uint8Array | undefined;
      if (options.config !== undefined) {
        config = new TextEncoder().encode(typeof options.config === 'string' ? options.config : JSON.stringify(options.config));
      } else if (!siblings) {
        throw new FormatError(src.name, 'a safetensors file needs its config.json (options.config) to be read as a model');
      }
      const file = basename(src.name);
      return readHfCheckpoint({
        name: siblings?.name ?? src.name,
        read: async (rel) => (rel === 'config.json' && config ? config
          : rel === 'model.safetensors.index.json' || rel === 'model.safetensors' || rel === file ? undefined : siblings?.read(rel)),
        open: async (rel) => (rel === 'model.safetensors' || rel === file ? src : undefined),
      }, options);
    }
  }
}

async function loadPath(path: string, options: LoadCheckpointOptions): Promise<LlamaCheckpoint> {
  const fs = await nodeFs();
  if ((await fs.stat(path)).isDirectory()) return readHfCheckpoint(directorySource(path), options);
  const src = await fileSource(path);
  try {
    const head = await src.read(0, Math.min(src.size, 256));
    const format = options.format ?? detectFormat(head, path, src.size);
    if (format === 'safetensors' || format === 'hf') {
      // One shard of a sharded checkpoint stands for the whole directory.
      if (/-of-\d+\.safetensors$/.test(path)) return await readHfCheckpoint(directorySource(dirname(path)), options);
      return await loadSource(src, { ...options, format }, directorySource(dirname(path)));
    }
    if (format === 'gguf') return await readGgufCheckpoint(src, options);
    let tok = options.tokenizer;
    let tokName = 'tokenizer.bin';
    if (typeof tok === 'string') {
      tokName = tok;
      tok = await fs.readFile(tok);
    } else if (tok === undefined) {
      // llama2.c's convention: tokenizer.bin beside the model, or tok{vocab}.bin for a custom vocabulary.
      const vocab = parseLlama2cHeader(head, path).vocabSize;
      for (const cand of [`tok${vocab}.bin`, 'tokenizer.bin']) {
        const p = `${dirname(path)}/${cand}`;
        try {
          tok = await fs.readFile(p);
          tokName = p;
          break;
        } catch { /* try the next name */ }
      }
    }
    return await readLlama2cFrom(src, { ...options, tokenizer: tok ? parseLlama2cTokenizer(tok, tokName) : undefined });
  } finally {
    await src.close?.();
  }
}

/**
 * The checkpoint with its 2-D weights converted to `base` (see storage.ts; 'auto' returns it as it is).
 * Tensors already of the target type are shared.
 */
export function withBaseDType(ckpt: LlamaCheckpoint, base: BaseDType): LlamaCheckpoint {
  if (base === 'auto') return ckpt;
  const notes = new LoadNotes();
  const tensors = new Map<string, NamedTensor>();
  for (const [name, t] of ckpt.tensors) {
    const from = tensorDType(t);
    const to = targetStorage({ name, shape: t.shape, kind: from }, base, notes);
    tensors.set(name, to === from ? t : to === 'f32' ? { shape: t.shape, data: tensorF32(t) } : { shape: t.shape, dtype: to, bytes: quantize(to, tensorF32(t)) });
  }
  const all = [...(ckpt.notes ?? []), ...notes.list()];
  return { ...ckpt, tensors, ...(all.length ? { notes: all } : {}) };
}
