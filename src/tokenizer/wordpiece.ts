/**
 * WordPiece (BERT, DistilBERT) from a tokenizer.json: the BertNormalizer (clean text, spaces around CJK
 * ideographs, accents stripped when lowercasing, lowercase), the BertPreTokenizer (split on whitespace, each
 * punctuation character a word of its own) and greedy longest-match-first WordPiece with the `##` prefix on
 * continuations; a word longer than `max_input_chars_per_word`, or one with a part no vocabulary entry
 * covers, becomes the unknown token, as the `tokenizers` crate does.
 */
import type { DecodeOptions, EncodeOptions, StreamDecoder, Tokenizer, TokenizerData } from './types.js';

type Json = Record<string, any>;

/** CJK ideograph blocks the BERT normalizer pads with spaces (the tokenizers crate's list). */
function isChinese(cp: number): boolean {
  return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0x20000 && cp <= 0x2a6df) || (cp >= 0x2a700 && cp <= 0x2b73f)
    || (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b920 && cp <= 0x2ceaf) || (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f);
}

/** BERT's punctuation: ASCII symbol ranges plus Unicode P* categories. */
function isPunctuation(ch: string): boolean {
  const cp = ch.codePointAt(0)!;
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) return true;
  return /\p{P}/u.test(ch);
}

export class WordPieceTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  private readonly idOf = new Map<string, number>();
  private readonly prefix: string;
  private readonly maxChars: number;
  private readonly unkId: number;
  private readonly lowercase: boolean;
  private readonly stripAccents: boolean;
  private readonly chinese: boolean;
  private readonly clean: boolean;
  private readonly special = new Set<number>();

  constructor(private readonly data: TokenizerData) {
    const json = data.json as Json;
    const model = json.model as Json, norm = (json.normalizer ?? {}) as Json;
    this.vocabSize = data.tokens.length;
    data.tokens.forEach((t, id) => { if (!this.idOf.has(t)) this.idOf.set(t, id); });
    this.prefix = typeof model.continuing_subword_prefix === 'string' ? model.continuing_subword_prefix : '##';
    this.maxChars = typeof model.max_input_chars_per_word === 'number' ? model.max_input_chars_per_word : 100;
    const unk = this.idOf.get(typeof model.unk_token === 'string' ? model.unk_token : '[UNK]');
    if (unk === undefined) throw new Error(`${data.source ?? 'tokenizer.json'}: WordPiece unk_token ${JSON.stringify(model.unk_token)} is not in the vocabulary`);
    this.unkId = unk;
    this.lowercase = norm.type !== 'BertNormalizer' || norm.lowercase !== false;
    this.stripAccents = norm.strip_accents === true || (norm.strip_accents == null && this.lowercase);
    this.chinese = norm.handle_chinese_chars !== false;
    this.clean = norm.clean_text !== false;
    this.bosId = data.bosId;
    this.eosId = data.eosId;
    for (const a of (json.added_tokens ?? []) as Json[]) if (a.special) this.special.add(a.id as number);
  }

  private normalize(text: string): string {
    let out = '';
    for (const ch of text) {
      const cp = ch.codePointAt(0)!;
      if (this.clean && (cp === 0 || cp === 0xfffd || (/\p{Cc}/u.test(ch) && !/\s/.test(ch)))) continue;
      if (this.clean && /\s/.test(ch)) { out += ' '; continue; }
      out += this.chinese && isChinese(cp) ? ` ${ch} ` : ch;
    }
    if (this.stripAccents) out = out.normalize('NFD').replace(/\p{Mn}/gu, '');
    return this.lowercase ? out.toLowerCase() : out;
  }

  private words(text: string): string[] {
    const out: string[] = [];
    for (const chunk of text.split(/\s+/)) {
      let word = '';
      for (const ch of chunk) {
        if (isPunctuation(ch)) { if (word) out.push(word); out.push(ch); word = ''; } else word += ch;
      }
      if (word) out.push(word);
    }
    return out;
  }

  private piecesOf(word: string, out: number[]): void {
    const chars = [...word];
    if (chars.length > this.maxChars) { out.push(this.unkId); return; }
    const ids: number[] = [];
    for (let start = 0; start < chars.length;) {
      let end = chars.length, found: number | undefined;
      while (end > start) {
        const sub = (start > 0 ? this.prefix : '') + chars.slice(start, end).join('');
        found = this.idOf.get(sub);
        if (found !== undefined) break;
        end--;
      }
      if (found === undefined) { out.push(this.unkId); return; }
      ids.push(found);
      start = end;
    }
    out.push(...ids);
  }

  encode(text: string, o: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if ((o.bos ?? this.data.addBos ?? false) && this.bosId !== undefined) out.push(this.bosId);
    for (const w of this.words(this.normalize(text))) this.piecesOf(w, out);
    if (o.eos && this.eosId !== undefined) out.push(this.eosId);
    return out;
  }

  decode(ids: ArrayLike<number>, o: DecodeOptions = {}): string {
    let s = '';
    for (const id of Array.from(ids)) {
      if (this.special.has(id) && !o.special) continue;
      const t = this.data.tokens[id] ?? '';
      s += t.startsWith(this.prefix) ? t.slice(this.prefix.length) : s ? ` ${t}` : t;
    }
    // The tokenizers crate's cleanup: no space before punctuation and contractions.
    return s.replace(/ ([.,!?'])/g, '$1').replace(/ n't/g, "n't");
  }

  tokenBytes(id: number): Uint8Array {
    const t = this.data.tokens[id] ?? '';
    return new TextEncoder().encode(this.special.has(id) ? '' : t.startsWith(this.prefix) ? t.slice(this.prefix.length) : ` ${t}`);
  }

  piece(id: number): string { return this.data.tokens[id] ?? ''; }

  streamDecoder(o: DecodeOptions = {}): StreamDecoder {
    const ids: number[] = [];
    let shown = '';
    return {
      push: (id) => { ids.push(id); const all = this.decode(ids, o); const add = all.slice(shown.length); shown = all; return add; },
      flush: () => '',
    };
  }
}
