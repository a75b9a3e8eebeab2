/** Small random BERT / RoBERTa / DistilBERT models in Hugging Face layout, and a WordPiece tokenizer.json, for the encoder tests. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { type EncoderKind, encoderConfig, encoderTensorShapes, headLinears, type EncoderTask } from '../../src/model/encoders/config.js';
import { gaussian, seededRandom } from '../../src/util/random.js';

export const DIMS = { vocab: 40, dim: 16, layers: 2, heads: 4, hidden: 24, positions: 40 };

export function configJson(kind: EncoderKind, labels?: string[]): Record<string, unknown> {
  const { vocab, dim, layers, heads, hidden, positions } = DIMS;
  const lab = labels ? { id2label: Object.fromEntries(labels.map((l, i) => [String(i), l])), label2id: Object.fromEntries(labels.map((l, i) => [l, i])) } : {};
  if (kind === 'distilbert') return { model_type: kind, vocab_size: vocab, dim, n_layers: layers, n_heads: heads, hidden_dim: hidden, max_position_embeddings: positions, activation: 'gelu', initializer_range: 0.02, pad_token_id: 0, ...lab };
  return {
    model_type: kind, vocab_size: vocab, hidden_size: dim, num_hidden_layers: layers, num_attention_heads: heads, intermediate_size: hidden,
    max_position_embeddings: positions, type_vocab_size: kind === 'roberta' ? 1 : 2, hidden_act: 'gelu', layer_norm_eps: kind === 'roberta' ? 1e-5 : 1e-12,
    pad_token_id: kind === 'roberta' ? 1 : 0, initializer_range: 0.02, ...lab,
  };
}

/** A random model folder (with a `task` head when `labels` are given) and its config.json object. */
export function writeEncoder(dir: string, kind: EncoderKind, o: { seed?: number; labels?: string[]; task?: EncoderTask; tokenizer?: boolean } = {}): string {
  const cfg = configJson(kind, o.labels), c = encoderConfig(cfg), random = seededRandom(o.seed ?? 1);
  const shapes = encoderTensorShapes(c);
  if (o.labels) for (const [n, i, out] of headLinears(c, o.task ?? 'seq-cls', o.labels.length)) { shapes.set(`${n}.weight`, [out, i]); shapes.set(`${n}.bias`, [out]); }
  if (kind === 'bert' && !shapes.has('bert.pooler.dense.weight')) { shapes.set('bert.pooler.dense.weight', [c.dim, c.dim]); shapes.set('bert.pooler.dense.bias', [c.dim]); }
  const tensors: [string, { shape: number[]; data: Float32Array }][] = [];
  for (const [n, shape] of shapes) {
    const len = shape.reduce((a, b) => a * b, 1);
    const norm = /LayerNorm|layer_norm/.test(n);
    const data = Float32Array.from({ length: len }, () => (norm && n.endsWith('.weight') ? 1 + 0.2 * gaussian(random) : (n.endsWith('.bias') ? 0.1 : 0.4) * gaussian(random)));
    tensors.push([n, { shape, data }]);
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.safetensors'), writeSafetensors(tensors));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  if (o.tokenizer) writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(wordPieceJson()));
  return dir;
}

/** A WordPiece tokenizer.json over a small English vocabulary (ids fill DIMS.vocab). */
export function wordPieceJson(words: readonly string[] = VOCAB): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  const all = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', ...words];
  all.forEach((w, i) => { vocab[w] = i; });
  return {
    version: '1.0',
    added_tokens: ['[PAD]', '[UNK]', '[CLS]', '[SEP]'].map((t, i) => ({ id: i, content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: { type: 'BertProcessing', sep: ['[SEP]', 3], cls: ['[CLS]', 2] },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
}

export const VOCAB = ['the', 'a', 'good', 'great', 'bad', 'awful', 'film', 'movie', 'plot', 'is', 'was', 'not', 'very', 'and', 'but', 'fun', 'dull', 'love', 'hate',
  '.', ',', '!', '##s', '##ly', 'it', 'i', 'this', 'acting', 'story', 'boring', 'funny', 'best', 'worst', 'ok', 'nice', 'poor'];

/** A vocabulary for `texts`: their most frequent lowercase words, then single letters and digits with ## forms so every word tokenizes. */
export function vocabFor(texts: readonly string[], words = 200): string[] {
  const count = new Map<string, number>();
  for (const t of texts) for (const w of t.toLowerCase().match(/[a-z]+/g) ?? []) count.set(w, (count.get(w) ?? 0) + 1);
  const top = [...count].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, words).map(([w]) => w);
  const chars = 'abcdefghijklmnopqrstuvwxyz0123456789'.split('');
  const punct = [...'.,!?\'"-:;()&$%/*+='];
  return [...new Set([...top, ...chars, ...chars.map((c) => `##${c}`), ...punct])];
}

/** A random model folder of a given size with a tokenizer.json over `vocab` (no head). */
export function writeSizedEncoder(dir: string, kind: EncoderKind, vocab: readonly string[], o: { dim?: number; layers?: number; seed?: number } = {}): string {
  const saved = { ...DIMS };
  Object.assign(DIMS, { vocab: vocab.length + 4, dim: o.dim ?? 32, layers: o.layers ?? 2, heads: 4, hidden: 2 * (o.dim ?? 32), positions: 72 });
  try {
    writeEncoder(dir, kind, { seed: o.seed ?? 1 });
  } finally {
    Object.assign(DIMS, saved);
  }
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(wordPieceJson(vocab)));
  return dir;
}
