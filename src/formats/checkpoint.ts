/**
 * The common output of every model loader (GGUF, llama2.c, Hugging Face safetensors): a Llama-family
 * config and float32 tensors under Hugging Face names, rows as the file stores them.
 *
 * Browser-safe: a path is only accepted where a Node-compatible `node:fs/promises` exists, loaded on
 * demand; browsers pass bytes or a `FileSource`.
 */
import { FormatError, numel } from './binary.js';
import { type CompactDType, compactBytes, isBlockQuant } from '../quant/types.js';
import { dequantize, gatherRows } from '../quant/codec.js';
import { GGUF_MAGIC, parseGguf } from './gguf.js';
import { readGgufCheckpoint } from './gguf-llama.js';
import { readHfCheckpoint, type FileSource } from './hf.js';
import { parseLlama2cHeader, parseLlama2cTokenizer, readLlama2c } from './llama2c.js';
import { isSafetensors } from './safetensors.js';
import type { TokenizerData } from '../tokenizer/types.js';

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
  /** Hugging Face `rope_scaling` as given in config.json (e.g. Llama 3.1's `rope_type: "llama3"`), when set. */
  ropeScaling?: Record<string, unknown>;
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
  const headDim = c.dim / c.nHeads;
  const tensors = new Map(ckpt.tensors);
  for (let l = 0; l < c.nLayers; l++) {
    for (const [proj, heads] of [['q_proj', c.nHeads], ['k_proj', c.nKvHeads]] as const) {
      for (const kind of ['weight', 'bias'] as const) {
        const key = `model.layers.${l}.self_attn.${proj}.${kind}`;
        const t = tensors.get(key);
        if (t) tensors.set(key, permuteTensorRows(t, heads, headDim, layout === 'half'));
      }
    }
  }
  return { ...ckpt, config: { ...c, ropeLayout: layout }, tensors };
}

// ---------------------------------------------------------------------------------------------
// Validation

/** The tensors a checkpoint must have, with their shapes, under Hugging Face names. */
export function expectedTensorShapes(c: LlamaConfig): Map<string, number[]> {
  const headDim = c.dim / c.nHeads;
  const kvDim = headDim * c.nKvHeads;
  const m = new Map<string, number[]>();
  m.set('model.embed_tokens.weight', [c.vocabSize, c.dim]);
  for (let l = 0; l < c.nLayers; l++) {
    const p = `model.layers.${l}.`;
    m.set(`${p}input_layernorm.weight`, [c.dim]);
    m.set(`${p}self_attn.q_proj.weight`, [c.dim, c.dim]);
    m.set(`${p}self_attn.k_proj.weight`, [kvDim, c.dim]);
    m.set(`${p}self_attn.v_proj.weight`, [kvDim, c.dim]);
    m.set(`${p}self_attn.o_proj.weight`, [c.dim, c.dim]);
    if (c.qkvBias) {
      m.set(`${p}self_attn.q_proj.bias`, [c.dim]);
      m.set(`${p}self_attn.k_proj.bias`, [kvDim]);
      m.set(`${p}self_attn.v_proj.bias`, [kvDim]);
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
  if (c.dim % c.nHeads !== 0) fail(`config dim ${c.dim} is not a multiple of nHeads ${c.nHeads}`);
  if (c.nHeads % c.nKvHeads !== 0) fail(`config nHeads ${c.nHeads} is not a multiple of nKvHeads ${c.nKvHeads}`);
  if ((c.dim / c.nHeads) % 2 !== 0) fail(`head size ${c.dim / c.nHeads} is odd; rotary embedding needs pairs`);
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
export function checkTensorStorage(name: string, t: NamedTensor, fail: (problem: string) => never): void {
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
  /** For a single safetensors file given as bytes: its config.json (text or parsed). */
  config?: string | Record<string, unknown>;
  /** Return copies instead of views of the file bytes where alignment allows. */
  copy?: boolean;
}

/** Guess the format of bytes from magic numbers (and the file name as a hint). */
export function detectFormat(bytes: Uint8Array, name = ''): CheckpointFormat {
  if (bytes.length >= 4 && String.fromCharCode(bytes[0]!, bytes[1]!, bytes[2]!, bytes[3]!) === GGUF_MAGIC) return 'gguf';
  if (isSafetensors(bytes)) return 'safetensors';
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
    throw new Error('loadCheckpoint: paths need a runtime with node:fs (Node, Deno, Bun); in a browser pass bytes or a FileSource');
  }
}

function dirname(p: string): string {
  const i = Math.max(p.lastIndexOf('/'), p.lastIndexOf('\\'));
  return i < 0 ? '.' : p.slice(0, i) || '/';
}

function basename(p: string): string {
  return p.slice(Math.max(p.lastIndexOf('/'), p.lastIndexOf('\\')) + 1);
}

/** A FileSource over a directory on disk (Node-compatible runtimes). */
export function directorySource(dir: string): FileSource {
  return {
    name: dir,
    async read(rel: string) {
      const fs = await nodeFs();
      try {
        return await fs.readFile(`${dir.replace(/[/\\]$/, '')}/${rel}`);
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

/**
 * Load a Llama-family checkpoint from bytes, a path (file or Hugging Face directory), or a FileSource
 * (Hugging Face layout: config.json + model.safetensors or model.safetensors.index.json).
 */
export async function loadCheckpoint(input: Uint8Array | string | FileSource, options: LoadCheckpointOptions = {}): Promise<LlamaCheckpoint> {
  if (typeof input === 'string') return loadPath(input, options);
  if (!(input instanceof Uint8Array)) return readHfCheckpoint(input, { copy: options.copy });
  const name = options.name ?? 'model';
  const format = options.format ?? detectFormat(input, name);
  switch (format) {
    case 'gguf': return readGgufCheckpoint(parseGguf(input, name), { copy: options.copy });
    case 'llama2c': {
      const tok = options.tokenizer;
      if (typeof tok === 'string') throw new Error('loadCheckpoint: pass tokenizer bytes along with model bytes');
      return readLlama2c(input, name, {
        copy: options.copy,
        tokenizer: tok ? parseLlama2cTokenizer(tok, 'tokenizer.bin') : undefined,
      });
    }
    case 'safetensors':
    case 'hf': {
      if (options.config === undefined) {
        throw new FormatError(name, 'a safetensors file needs its config.json (options.config) to be read as a model');
      }
      const cfg = typeof options.config === 'string' ? options.config : JSON.stringify(options.config);
      return readHfCheckpoint(memorySource({ 'config.json': new TextEncoder().encode(cfg), 'model.safetensors': input }, name), { copy: options.copy });
    }
  }
}

async function loadPath(path: string, options: LoadCheckpointOptions): Promise<LlamaCheckpoint> {
  const fs = await nodeFs();
  if ((await fs.stat(path)).isDirectory()) return readHfCheckpoint(directorySource(path), { copy: options.copy });
  const bytes = await fs.readFile(path);
  const format = options.format ?? detectFormat(bytes, path);
  if (format === 'safetensors' || format === 'hf') {
    const dir = dirname(path);
    // One shard of a sharded checkpoint stands for the whole directory.
    if (/-of-\d+\.safetensors$/.test(path)) return readHfCheckpoint(directorySource(dir), { copy: options.copy });
    const src = directorySource(dir);
    const file = basename(path);
    return readHfCheckpoint({
      name: path,
      read: async (rel) => (rel === 'model.safetensors' || rel === file ? bytes : rel === 'model.safetensors.index.json' ? undefined : src.read(rel)),
    }, { copy: options.copy });
  }
  if (format === 'llama2c') {
    let tok = options.tokenizer;
    let tokName = 'tokenizer.bin';
    if (typeof tok === 'string') {
      tokName = tok;
      tok = await fs.readFile(tok);
    } else if (tok === undefined) {
      // llama2.c's convention: tokenizer.bin beside the model, or tok{vocab}.bin for a custom vocabulary.
      const vocab = parseLlama2cHeader(bytes, path).vocabSize;
      for (const cand of [`tok${vocab}.bin`, 'tokenizer.bin']) {
        const p = `${dirname(path)}/${cand}`;
        try {
          tok = await fs.readFile(p);
          tokName = p;
          break;
        } catch { /* try the next name */ }
      }
    }
    return readLlama2c(bytes, path, {
      copy: options.copy,
      tokenizer: tok ? parseLlama2cTokenizer(tok, tokName) : undefined,
    });
  }
  return loadCheckpoint(bytes, { ...options, name: path, format });
}
