/**
 * llama2.c checkpoints and tokenizers (Karpathy's llama2.c, run.c and export.py).
 *
 * Legacy model file (version 0): 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
 * seq_len; a negative vocab_size means a separate classifier), then float32 weights in this order:
 * token embedding [vocab, dim], attention norms [L, dim], wq [L, dim, dim], wk [L, kv_dim, dim],
 * wv [L, kv_dim, dim], wo [L, dim, dim], ffn norms [L, dim], w1 [L, hidden, dim], w2 [L, dim, hidden],
 * w3 [L, hidden, dim], final norm [dim], RoPE tables freq_cis_real and freq_cis_imag
 * [seq_len, head_size / 2] each (unused), and the classifier [vocab, dim] when not shared.
 * Matrices are PyTorch Linear weights, [out, in] row-major; w1 = gate, w2 = down, w3 = up.
 *
 * Version 1 (export.py `version1_export`): magic "ak42", int32 version 1, the same 7 int32, u8
 * shared_classifier, zero padding to 256 bytes, then float32: attention norms, ffn norms, final norm,
 * embedding, wq, wk, wv, wo, w1, w2, w3 (each stacked over layers), classifier when not shared.
 *
 * tokenizer.bin: int32 max_token_length, then per token float32 score, int32 byte length, bytes.
 */
import { ByteReader, FormatError, f32View, numel } from './binary.js';
import type { LlamaCheckpoint, LlamaConfig, NamedTensor } from './checkpoint.js';
import type { ByteSource } from './source.js';
import { type BaseDType, LoadNotes, type StoredTensor, readStoredTensor, targetStorage } from './storage.js';
import type { TokenizerData } from '../tokenizer/types.js';

const LLAMA2C_MAGIC = 0x616b3432; // "ak42" read as a little-endian int32

export interface Llama2cHeader {
  version: number;
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
  sharedClassifier: boolean;
  /** Byte offset of the first weight. */
  weightsOffset: number;
}

export function parseLlama2cHeader(bytes: Uint8Array, name = 'model.bin'): Llama2cHeader {
  const r: ByteReader = new ByteReader(bytes, name);
  r.need(28, 'llama2.c header');
  let version = 0;
  let weightsOffset = 28;
  const first = r.view.getUint32(0, true);
  if (first === LLAMA2C_MAGIC) {
    r.pos = 4;
    version = r.i32('llama2.c version');
    if (version !== 1) {
      r.fail(`unsupported llama2.c version ${version} (supported: the legacy format and version 1 float32; version 2 is Q8_0)`);
    }
    weightsOffset = 256;
  }
  const fields = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'] as const;
  const h: number[] = fields.map((f) => r.i32(`header field ${f}`));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, rawVocab, seqLen] = h as [number, number, number, number, number, number, number];
  let sharedClassifier = rawVocab > 0;
  if (version === 1) {
    sharedClassifier = r.u8('shared_classifier flag') !== 0;
    if (rawVocab <= 0) r.fail(`header vocab_size is ${rawVocab}, must be positive in version 1`);
  }
  const vocabSize = Math.abs(rawVocab);
  const limits: [string, number, number][] = [
    ['dim', dim, 1 << 20], ['hidden_dim', hiddenDim, 1 << 22], ['n_layers', nLayers, 4096], ['n_heads', nHeads, 4096],
    ['n_kv_heads', nKvHeads, 4096], ['vocab_size', vocabSize, 1 << 24], ['seq_len', seqLen, 1 << 24],
  ];
  for (const [f, v, max] of limits) {
    if (!(v > 0 && v <= max)) r.fail(`header field ${f} is ${v}, not a plausible value (not a llama2.c file?)`);
  }
  if (dim % nHeads !== 0) r.fail(`header dim ${dim} is not a multiple of n_heads ${nHeads}`);
  if (nHeads % nKvHeads !== 0) r.fail(`header n_heads ${nHeads} is not a multiple of n_kv_heads ${nKvHeads}`);
  if ((dim / nHeads) % 2 !== 0) r.fail(`head size ${dim / nHeads} is odd; rotary embedding needs pairs`);
  return { version, dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen, sharedClassifier, weightsOffset };
}

function expectedFloats(h: Llama2cHeader): number {
  const headSize = h.dim / h.nHeads;
  const kvDim = headSize * h.nKvHeads;
  const perLayer = 2 * h.dim + h.dim * h.dim * 2 + kvDim * h.dim * 2 + 3 * h.hiddenDim * h.dim;
  const rope = h.version === 0 ? h.seqLen * headSize : 0;
  return h.vocabSize * h.dim + h.nLayers * perLayer + h.dim + rope + (h.sharedClassifier ? 0 : h.vocabSize * h.dim);
}

export interface Llama2cReadOptions {
  /** Tokenizer to attach (from `parseLlama2cTokenizer`). */
  tokenizer?: TokenizerData;
  /** Return fresh arrays instead of views of `bytes` where alignment allows. */
  copy?: boolean;
}

export interface Llama2cSourceOptions extends Llama2cReadOptions {
  /** In-memory type of 2-D weights (see storage.ts); default 'auto' keeps float32. */
  baseDtype?: BaseDType;
  /** Bytes read per step when converting a tensor (default 4 MiB). */
  chunkBytes?: number;
}

interface Llama2cTensor { name: string; shape: number[]; offset: number }

/** Throw unless a file of `size` bytes is exactly what the header describes. */
function checkLlama2cSize(h: Llama2cHeader, size: number, name: string): void {
  const need = h.weightsOffset + 4 * expectedFloats(h);
  const desc = `dim ${h.dim}, hidden_dim ${h.hiddenDim}, n_layers ${h.nLayers}, n_heads ${h.nHeads}, n_kv_heads ${h.nKvHeads}, vocab ${h.vocabSize}${h.sharedClassifier ? '' : ' (separate classifier)'}, seq_len ${h.seqLen}`;
  if (size < need) {
    throw new FormatError(name, `header (${desc}) needs ${need} bytes of weights and header but the file has ${size} bytes (truncated?)`);
  }
  if (size > need) {
    throw new FormatError(name, `header (${desc}) accounts for ${need} bytes but the file has ${size} (wrong header or not a llama2.c file?)`);
  }
}

/** Where each Hugging Face-named tensor lies in the file (tensors stacked over layers split per layer). */
function llama2cLayout(h: Llama2cHeader): Llama2cTensor[] {
  const headSize = h.dim / h.nHeads;
  const kvDim = headSize * h.nKvHeads;
  const L = h.nLayers;
  let pos = h.weightsOffset;
  const out: Llama2cTensor[] = [];
  const one = (name: string, shape: number[]) => {
    out.push({ name, shape, offset: pos });
    pos += 4 * numel(shape);
  };
  const layers = (suffix: string, inner: number[]) => {
    for (let l = 0; l < L; l++) one(`model.layers.${l}.${suffix}.weight`, inner);
  };
  if (h.version === 0) {
    one('model.embed_tokens.weight', [h.vocabSize, h.dim]);
    layers('input_layernorm', [h.dim]);
    layers('self_attn.q_proj', [h.dim, h.dim]);
    layers('self_attn.k_proj', [kvDim, h.dim]);
    layers('self_attn.v_proj', [kvDim, h.dim]);
    layers('self_attn.o_proj', [h.dim, h.dim]);
    layers('post_attention_layernorm', [h.dim]);
    layers('mlp.gate_proj', [h.hiddenDim, h.dim]);
    layers('mlp.down_proj', [h.dim, h.hiddenDim]);
    layers('mlp.up_proj', [h.hiddenDim, h.dim]);
    one('model.norm.weight', [h.dim]);
    // The RoPE tables (unused) follow.
    pos += 4 * h.seqLen * headSize;
  } else {
    layers('input_layernorm', [h.dim]);
    layers('post_attention_layernorm', [h.dim]);
    one('model.norm.weight', [h.dim]);
    one('model.embed_tokens.weight', [h.vocabSize, h.dim]);
    layers('self_attn.q_proj', [h.dim, h.dim]);
    layers('self_attn.k_proj', [kvDim, h.dim]);
    layers('self_attn.v_proj', [kvDim, h.dim]);
    layers('self_attn.o_proj', [h.dim, h.dim]);
    layers('mlp.gate_proj', [h.hiddenDim, h.dim]);
    layers('mlp.down_proj', [h.dim, h.hiddenDim]);
    layers('mlp.up_proj', [h.hiddenDim, h.dim]);
  }
  if (!h.sharedClassifier) one('lm_head.weight', [h.vocabSize, h.dim]);
  return out;
}

function llama2cCheckpoint(h: Llama2cHeader, tensors: Map<string, NamedTensor>, name: string, tokenizer?: TokenizerData): LlamaCheckpoint {
  const config: LlamaConfig = {
    dim: h.dim, hiddenDim: h.hiddenDim, nLayers: h.nLayers, nHeads: h.nHeads, nKvHeads: h.nKvHeads,
    vocabSize: h.vocabSize, maxSeqLen: h.seqLen,
    // run.c hard-codes both; the header does not store them.
    normEps: 1e-5, ropeTheta: 10000,
    tiedEmbeddings: h.sharedClassifier, qkvBias: false, ropeLayout: 'pairs', architecture: 'llama',
  };
  const ckpt: LlamaCheckpoint = { config, tensors, source: name };
  if (tokenizer) ckpt.tokenizer = tokenizer;
  return ckpt;
}

function checkTokenizer(h: Llama2cHeader, name: string, tokenizer?: TokenizerData): void {
  if (tokenizer && tokenizer.tokens.length !== h.vocabSize) {
    throw new FormatError(name, `the tokenizer (${tokenizer.source ?? 'tokenizer'}) has ${tokenizer.tokens.length} tokens but the model's vocab_size is ${h.vocabSize}`);
  }
}

/** Read a llama2.c model file into Hugging Face-named tensors (rows as stored: rotary on adjacent pairs). */
export function readLlama2c(bytes: Uint8Array, name = 'model.bin', options: Llama2cReadOptions = {}): LlamaCheckpoint {
  const h = parseLlama2cHeader(bytes, name);
  checkLlama2cSize(h, bytes.length, name);
  checkTokenizer(h, name, options.tokenizer);
  const tensors = new Map<string, NamedTensor>();
  for (const t of llama2cLayout(h)) tensors.set(t.name, { shape: t.shape, data: f32View(bytes, t.offset, numel(t.shape), options.copy ?? false) });
  return llama2cCheckpoint(h, tensors, name, options.tokenizer);
}

/** `readLlama2c` from a source, a tensor at a time (2-D weights converted to `baseDtype` as they are read). */
export async function readLlama2cFrom(src: ByteSource, options: Llama2cSourceOptions = {}): Promise<LlamaCheckpoint> {
  const h = parseLlama2cHeader(await src.read(0, Math.min(src.size, 256)), src.name);
  checkLlama2cSize(h, src.size, src.name);
  checkTokenizer(h, src.name, options.tokenizer);
  const notes = new LoadNotes();
  const tensors = new Map<string, NamedTensor>();
  for (const t of llama2cLayout(h)) {
    const stored: StoredTensor = {
      name: t.name, shape: t.shape, offset: t.offset, byteLength: 4 * numel(t.shape), typeName: 'F32', kind: 'f32',
      decode: (raw, count) => f32View(raw, 0, count, false),
    };
    tensors.set(t.name, await readStoredTensor(src, stored, targetStorage(stored, options.baseDtype ?? 'auto', notes), options));
  }
  const ckpt = llama2cCheckpoint(h, tensors, src.name, options.tokenizer);
  if (notes.list().length) ckpt.notes = notes.list();
  return ckpt;
}

export interface Llama2cTokenizerOptions {
  /** Expected number of tokens (the model's vocab_size); the file does not store it. */
  vocabSize?: number;
}

/** Read a llama2.c tokenizer.bin. Ids 0, 1, 2 are unk, BOS, EOS as in run.c. */
export function parseLlama2cTokenizer(bytes: Uint8Array, name = 'tokenizer.bin', options: Llama2cTokenizerOptions = {}): TokenizerData {
  const r: ByteReader = new ByteReader(bytes, name);
  const maxLen = r.i32('max_token_length');
  if (!(maxLen > 0 && maxLen < 1 << 16)) r.fail(`max_token_length is ${maxLen}, not a plausible value (not a llama2.c tokenizer?)`);
  const tokens: string[] = [];
  const scores: number[] = [];
  while (r.remaining > 0 && (options.vocabSize === undefined || tokens.length < options.vocabSize)) {
    const id = tokens.length;
    const score = r.f32(`score of token ${id}`);
    const at = r.pos;
    const len = r.i32(`length of token ${id}`);
    if (len < 0 || len > maxLen) r.fail(`token ${id} at byte ${at} has length ${len}, outside 0..max_token_length ${maxLen}`);
    tokens.push(r.utf8(len, `bytes of token ${id}`));
    scores.push(score);
  }
  if (options.vocabSize !== undefined && tokens.length !== options.vocabSize) {
    r.fail(`has ${tokens.length} tokens but the model's vocab_size is ${options.vocabSize} (truncated?)`);
  }
  if (r.remaining > 0) r.fail(`${r.remaining} bytes left after ${tokens.length} tokens`);
  if (tokens.length < 3) r.fail(`has ${tokens.length} tokens; llama2.c needs at least unk, BOS and EOS`);
  return {
    kind: 'sentencepiece', tokens, scores: Float32Array.from(scores),
    unkId: 0, bosId: 1, eosId: 2, addSpacePrefix: true, addBos: true, source: name,
  };
}
