/**
 * Vocabulary pruning in the manner of MAFT (Alabi et al., 2022, "Adapting Pre-trained Language Models to
 * African Languages via Multilingual Adaptive Fine-Tuning", which removed the embedding rows of scripts the
 * target languages do not use): keep the tokens a corpus uses, every token a kept token is built from, the
 * special tokens and the byte tokens, and rewrite the embedding, the output head and the tokenizer with the
 * kept ids renumbered in their original order.
 *
 * Why the corpus tokenises the same afterwards: BPE (SentencePiece's score order or tokenizer.json's merge
 * ranks) only ever joins adjacent symbols, so every piece formed while encoding a word is a substring of one
 * of the word's final tokens; keeping every vocabulary piece that is a substring of a kept token keeps every
 * piece the encoding formed, and a removed piece was never formed, so it never won a merge: each merge
 * happens as before.
 */
import { familyOf } from '../model/families.js';
import { isCompactTensor, type LlamaCheckpoint, type NamedTensor, tensorF32 } from '../formats/checkpoint.js';
import { createTokenizer, TokenType, type TokenizerData } from '../tokenizer/index.js';
import { resolveTokenTypes } from '../tokenizer/sentencepiece.js';

export interface PruneResult {
  readonly checkpoint: LlamaCheckpoint;
  /** Old id → new id, −1 for a removed token. */
  readonly map: Int32Array;
  /** The old ids kept, in order (new id = index). */
  readonly kept: readonly number[];
  /** Bytes of the embedding and output head as stored before, and as float32 after. */
  readonly bytesBefore: number;
  readonly bytesAfter: number;
}

/** The ids a corpus uses, with the tokenizer's own rules (no BOS). */
export function usedTokenIds(data: TokenizerData, texts: Iterable<string>): Set<number> {
  const tok = createTokenizer(data), used = new Set<number>();
  for (const t of texts) for (const id of tok.encode(t, { bos: false })) used.add(id);
  return used;
}

/** `used` plus what encoding and decoding need (see the file comment): the ids to keep, ascending. */
export function keptIds(data: TokenizerData, used: ReadonlySet<number>): number[] {
  const tokens = data.tokens, keep = new Set<number>(used);
  for (const id of [data.bosId, data.eosId, data.unkId, data.padId]) if (id !== undefined && id >= 0 && id < tokens.length) keep.add(id);
  if (data.kind === 'sentencepiece') {
    const types = resolveTokenTypes(data);
    types.forEach((t, id) => { if (t !== TokenType.NORMAL && t !== TokenType.UNUSED && t !== TokenType.UNDEFINED) keep.add(id); });
  } else {
    // Byte-level BPE: the single-symbol tokens are its alphabet (every byte); byte-fallback pieces and added
    // tokens (the special ones) stay too.
    tokens.forEach((t, id) => { if ([...t].length === 1 || /^<0x[0-9A-Fa-f]{2}>$/.test(t)) keep.add(id); });
    const added = ((data.json as { added_tokens?: { id: number }[] } | undefined)?.added_tokens ?? []);
    for (const a of added) keep.add(a.id);
  }
  const idOf = new Map<string, number>();
  tokens.forEach((t, id) => { if (!idOf.has(t)) idOf.set(t, id); });
  for (const id of [...keep]) {
    const chars = [...tokens[id]!];
    for (let i = 0; i < chars.length; i++) {
      let s = '';
      for (let j = i; j < chars.length; j++) {
        s += chars[j];
        const sub = idOf.get(s);
        if (sub !== undefined) keep.add(sub);
      }
    }
  }
  return [...keep].sort((a, b) => a - b);
}

function pruneTokenizer(data: TokenizerData, kept: readonly number[], map: Int32Array): TokenizerData {
  const remap = (id: number | undefined) => (id === undefined ? undefined : map[id]! >= 0 ? map[id]! : undefined);
  const base: TokenizerData = {
    ...data,
    tokens: kept.map((id) => data.tokens[id]!),
    ...(data.scores ? { scores: Float32Array.from(kept, (id) => data.scores![id]!) } : {}),
    ...(data.types ? { types: Int32Array.from(kept, (id) => data.types![id]!) } : {}),
  };
  for (const k of ['bosId', 'eosId', 'unkId', 'padId'] as const) {
    const v = remap(data[k]);
    if (v === undefined) delete base[k];
    else base[k] = v;
  }
  if (data.kind !== 'hf-json') return base;
  // tokenizer.json: the vocabulary, merges whose parts and result are kept, added tokens and the
  // post-processor's special ids, all renumbered.
  const json = structuredClone(data.json) as Record<string, any>;
  const keptSet = new Set(kept.map((id) => data.tokens[id]!));
  const vocab: Record<string, number> = {};
  kept.forEach((id, i) => { vocab[data.tokens[id]!] = i; });
  json.model.vocab = vocab;
  json.model.merges = (json.model.merges as (string | [string, string])[]).filter((m) => {
    const [a, b] = typeof m === 'string' ? (m.split(' ') as [string, string]) : m;
    return keptSet.has(a) && keptSet.has(b) && keptSet.has(a + b);
  });
  json.added_tokens = (json.added_tokens ?? []).filter((a: { id: number }) => map[a.id]! >= 0).map((a: { id: number }) => ({ ...a, id: map[a.id]! }));
  const special = json.post_processor?.special_tokens as Record<string, { ids: number[] }> | undefined;
  if (special) for (const s of Object.values(special)) s.ids = s.ids.map((id) => map[id]!);
  return { ...base, json };
}

/** Keep rows `kept` of a [vocab, dim] tensor, as float32. */
function rows(t: NamedTensor, kept: readonly number[]): NamedTensor {
  const [, dim] = t.shape as [number, number], src = tensorF32(t), data = new Float32Array(kept.length * dim);
  kept.forEach((id, i) => data.set(src.subarray(id * dim, (id + 1) * dim), i * dim));
  return { shape: [kept.length, dim], data };
}

function storedBytes(t: NamedTensor): number {
  return isCompactTensor(t) ? t.bytes.byteLength : t.data.byteLength;
}

/** The model with only `keptOld` tokens: embedding, head and tokenizer rewritten consistently. */
export function pruneVocabulary(ckpt: LlamaCheckpoint, keptOld: readonly number[]): PruneResult {
  const data = ckpt.tokenizer;
  if (!data) throw new Error(`${ckpt.source}: the model has no tokenizer to prune`);
  const V = ckpt.config.vocabSize;
  if (data.tokens.length !== V) throw new Error(`${ckpt.source}: the tokenizer has ${data.tokens.length} tokens and the model ${V} rows; pruning needs them to agree`);
  const map = new Int32Array(V).fill(-1);
  keptOld.forEach((id, i) => { map[id] = i; });
  const tensors = new Map(ckpt.tensors);
  let bytesBefore = 0, bytesAfter = 0;
  // The token embedding under the family's name (`model.embed_tokens`, GPT-2's `transformer.wte`), and an untied head.
  const embedding = familyOf(ckpt.config).modules(ckpt.config).find((m) => m.kind === 'embedding')!.name;
  for (const name of [`${embedding}.weight`, 'lm_head.weight']) {
    const t = ckpt.tensors.get(name);
    if (!t) continue;
    const r = rows(t, keptOld);
    bytesBefore += storedBytes(t);
    bytesAfter += (r as { data: Float32Array }).data.byteLength;
    tensors.set(name, r);
  }
  const checkpoint: LlamaCheckpoint = {
    ...ckpt, tensors, config: { ...ckpt.config, vocabSize: keptOld.length }, tokenizer: pruneTokenizer(data, keptOld, map),
  };
  return { checkpoint, map, kept: keptOld, bytesBefore, bytesAfter };
}
