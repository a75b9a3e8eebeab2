/**
 * Hugging Face `tokenizer.json` with a BPE model: the byte-level family (GPT-2, Llama 3, Qwen2: ByteLevel
 * or regex Split pre-tokenizers) and the SentencePiece-converted family (Llama 2, TinyLlama, Mistral:
 * Prepend/Replace normalizers or Metaspace, byte fallback). Merges apply lowest rank first, leftmost on
 * ties, within each pre-tokenized word, as the `tokenizers` crate's BPE does.
 *
 * Not covered (construction throws naming the component): WordPiece, Unigram and WordLevel models, and
 * normalizers/pre-tokenizers outside the list in `normalize` / `preTokenize`.
 */
import { chatTemplateSource } from './chat-template.js';
import { FormatError } from '../formats/binary.js';
import { decodeIds, streamDecoder, tokenEntry, utf8Bytes, type DecodeTable } from './decode.js';
import { appendIds, WordCache } from './word-cache.js';
import {
  TokenType, type DecodeOptions, type EncodeOptions, type StreamDecoder, type Tokenizer, type TokenizerData,
} from './types.js';

type Json = Record<string, unknown>;

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;

/** GPT-2's reversible map from bytes to printable code points (bytes_to_unicode in its encoder.py). */
function byteLevelTables(): { toChar: string[]; toByte: Map<string, number> } {
  const toChar: string[] = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    toChar[b] = String.fromCodePoint(printable ? b : 256 + n++);
  }
  return { toChar, toByte: new Map(toChar.map((c, b) => [c, b])) };
}
const BYTE_LEVEL = byteLevelTables();

/** GPT-2's pre-tokenisation pattern, used by ByteLevel with use_regex. */
const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/**
 * Oniguruma patterns as JS regexes: `(?i:...)` groups (not in older V8) become explicit case classes.
 */
export function toJsRegex(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    if (pattern.startsWith('(?i:', i)) {
      let depth = 1, j = i + 4, inner = '';
      for (; j < pattern.length && depth > 0; j++) {
        const c = pattern[j]!;
        if (c === '\\') { inner += c + pattern[++j]!; continue; }
        if (c === '(') depth++;
        if (c === ')' && --depth === 0) break;
        inner += c;
      }
      out += '(?:' + inner.replace(/\\.|\[(?:\\.|[^\]])*\]|[A-Za-z]/g, (m) => {
        if (m.length === 1) return `[${m.toLowerCase()}${m.toUpperCase()}]`;
        if (m.startsWith('[')) return m.replace(/(?<!\\)[A-Za-z]/g, (c) => c.toLowerCase() + c.toUpperCase());
        return m;
      }) + ')';
      i = j;
      continue;
    }
    out += pattern[i]!;
  }
  return new RegExp(out, 'gu');
}

interface AddedToken { id: number; content: string; special: boolean; lstrip: boolean; rstrip: boolean; normalized: boolean }

function str(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return undefined;
}

/**
 * Refuse a tokenizer.json whose fields have the wrong JSON types, ids that would size the vocabulary past
 * its own entries, or regexes that do not compile, naming the field; runs before anything is allocated.
 */
export function checkHfTokenizerJson(json: unknown, name = 'tokenizer.json'): void {
  const fail: (p: string) => never = (p) => { throw new FormatError(name, p); };
  const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObj(json)) fail('is not a JSON object');
  const model = json.model;
  if (!isObj(model)) fail('has no model object');
  const vocab = model.vocab;
  if (!isObj(vocab)) fail('model.vocab is missing or not an object');
  const added = json.added_tokens ?? [];
  if (!Array.isArray(added)) fail(`added_tokens is ${typeof added}, expected an array`);
  // The vocabulary is sized by its largest id: ids may leave gaps (reserved ids), but not gaps out of all
  // proportion to the entries the file holds.
  const entries = Object.keys(vocab).length + added.length, limit = 4 * entries + 65536;
  const checkId = (id: unknown, field: string): void => {
    if (!(Number.isSafeInteger(id) && (id as number) >= 0 && (id as number) < limit)) {
      fail(`${field} has id ${JSON.stringify(id)}; ids must be whole numbers below ${limit} (4 × the ${entries} entries of model.vocab and added_tokens + 65536)`);
    }
  };
  for (const [t, id] of Object.entries(vocab)) checkId(id, `model.vocab entry ${JSON.stringify(t)}`);
  added.forEach((a: unknown, i) => {
    if (!isObj(a)) fail(`added_tokens[${i}] is ${JSON.stringify(a)}, expected an object`);
    checkId(a.id, `added_tokens[${i}]`);
    if (typeof a.content !== 'string') fail(`added_tokens[${i}].content is ${JSON.stringify(a.content)}, expected a string`);
  });
  const merges = model.merges ?? [];
  if (!Array.isArray(merges)) fail(`model.merges is ${typeof merges}, expected an array`);
  merges.forEach((m: unknown, i) => {
    if (!(typeof m === 'string' || (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string'))) {
      fail(`model.merges[${i}] is ${JSON.stringify(m)}, expected "a b" or ["a", "b"]`);
    }
  });
  for (const [field, key] of [['normalizer', 'normalizers'], ['pre_tokenizer', 'pretokenizers'], ['decoder', 'decoders'], ['post_processor', 'processors']] as const) {
    const walk = (n: unknown, at: string, depth: number): void => {
      if (n === null || n === undefined) return;
      if (!isObj(n)) fail(`${at} is ${JSON.stringify(n)}, expected an object`);
      if (typeof n.type !== 'string') fail(`${at}.type is ${JSON.stringify(n.type)}, expected a string`);
      if (n.type === 'Sequence') {
        const kids = n[key] ?? [];
        if (!Array.isArray(kids)) fail(`${at}.${key} is ${typeof kids}, expected an array`);
        if (depth > 32) fail(`${at} nests Sequences more than 32 deep`);
        kids.forEach((k: unknown, i) => walk(k, `${at}.${key}[${i}]`, depth + 1));
        return;
      }
      if (n.pattern !== undefined) {
        const pat = n.pattern;
        if (!isObj(pat) || !(typeof pat.Regex === 'string' || typeof pat.String === 'string')) fail(`${at}.pattern is ${JSON.stringify(pat)}, expected {"Regex": string} or {"String": string}`);
        if (typeof pat.Regex === 'string') {
          try { toJsRegex(pat.Regex); } catch (e) { fail(`${at}.pattern.Regex ${JSON.stringify(pat.Regex)} is not a valid regular expression (${(e as Error).message})`); }
        }
      }
      if (n.type === 'Replace' && typeof n.content !== 'string') fail(`${at}.content is ${JSON.stringify(n.content)}, expected a string`);
    };
    walk(json[field], field, 0);
  }
}

/** Build TokenizerData from a parsed tokenizer.json (and, optionally, tokenizer_config.json). */
export function tokenizerDataFromHfJson(json: Json, name = 'tokenizer.json', tokenizerConfig?: Json): TokenizerData {
  checkHfTokenizerJson(json, name);
  const model = json.model as Json | undefined;
  if (!model || typeof model !== 'object') throw new FormatError(name, 'has no model');
  if (model.type !== 'BPE' && model.type !== 'WordPiece' && !(model.type === undefined && model.merges)) {
    throw new FormatError(name, `model type ${String(model.type)} is not supported (BPE and WordPiece are)`);
  }
  const vocab = model.vocab as Record<string, number> | undefined;
  if (!vocab || typeof vocab !== 'object') throw new FormatError(name, 'model.vocab is missing');
  const added = ((json.added_tokens ?? []) as Json[]).map((a) => ({ id: a.id as number, content: a.content as string, special: a.special === true }));
  let size = 0;
  for (const id of Object.values(vocab)) size = Math.max(size, id + 1);
  for (const a of added) size = Math.max(size, a.id + 1);
  const tokens: string[] = new Array(size).fill('');
  for (const [t, id] of Object.entries(vocab)) {
    if (!Number.isSafeInteger(id) || id < 0) throw new FormatError(name, `vocab entry ${JSON.stringify(t)} has id ${id}`);
    tokens[id] = t;
  }
  const types = new Int32Array(size).fill(TokenType.NORMAL);
  if (model.byte_fallback) tokens.forEach((t, id) => { if (BYTE_PIECE.test(t)) types[id] = TokenType.BYTE; });
  for (const a of added) {
    tokens[a.id] = a.content;
    types[a.id] = a.special ? TokenType.CONTROL : TokenType.USER_DEFINED;
  }
  const idOf = (t: string | undefined) => (t === undefined ? undefined : added.find((a) => a.content === t)?.id ?? vocab[t]);
  // BOS/EOS: tokenizer_config.json when given, else the post-processor template.
  let bosId = idOf(str(tokenizerConfig?.bos_token));
  const eosId = idOf(str(tokenizerConfig?.eos_token)) ?? (model.type === 'WordPiece' ? idOf(bertSep(json)) : undefined);
  let addBos: boolean | undefined = typeof tokenizerConfig?.add_bos_token === 'boolean' ? tokenizerConfig.add_bos_token as boolean : undefined;
  // BERT's post-processor puts [CLS] first and [SEP] last.
  const bert = (json.post_processor as Json | undefined)?.type === 'BertProcessing' ? json.post_processor as Json : undefined;
  const first = bert ? str((bert.cls as unknown[] | undefined)?.[0]) : templateFirstSpecial(json.post_processor as Json | undefined);
  if (first !== undefined) {
    const id = idOf(first);
    if (bosId === undefined) bosId = id;
    if (addBos === undefined) addBos = id !== undefined && id === bosId;
  }
  const unkId = idOf(str(model.unk_token) ?? undefined);
  const data: TokenizerData = {
    kind: 'hf-json', tokens, types, json, addBos: addBos ?? false, source: name,
    addSpacePrefix: prependsSpace(json),
  };
  if (bosId !== undefined) data.bosId = bosId;
  if (eosId !== undefined) data.eosId = eosId;
  if (unkId !== undefined) data.unkId = unkId;
  const chat = chatTemplateSource(tokenizerConfig?.chat_template, `${name} tokenizer_config.json`);
  if (chat !== undefined) data.chatTemplate = chat;
  return data;
}

/** The separator a BERT post-processor appends ([SEP]), from BertProcessing or a template ending in a special token. */
function bertSep(json: Json): string | undefined {
  const pp = json.post_processor as Json | undefined;
  if (pp?.type === 'BertProcessing') return str((pp.sep as unknown[] | undefined)?.[0]);
  const single = pp?.type === 'TemplateProcessing' ? pp.single as Json[] | undefined : undefined;
  const last = single?.[single.length - 1]?.SpecialToken as Json | undefined;
  return last && typeof last.id === 'string' ? last.id : undefined;
}

function templateFirstSpecial(pp: Json | undefined): string | undefined {
  if (!pp) return undefined;
  if (pp.type === 'Sequence') {
    for (const p of (pp.processors ?? []) as Json[]) {
      const f = templateFirstSpecial(p);
      if (f !== undefined) return f;
    }
    return undefined;
  }
  if (pp.type !== 'TemplateProcessing') return undefined;
  const single = pp.single as Json[] | undefined;
  const head = single?.[0] as Json | undefined;
  const sp = head?.SpecialToken as Json | undefined;
  return sp && typeof sp.id === 'string' ? sp.id : undefined;
}

/** Whether the pipeline prepends a space-like dummy prefix that decoding strips again. */
function prependsSpace(json: Json): boolean {
  const walk = (n: Json | null | undefined, key: string): Json[] => {
    if (!n) return [];
    const kids = (n[key] ?? []) as Json[];
    return n.type === 'Sequence' ? kids.flatMap((k) => walk(k, key)) : [n];
  };
  const norms = walk(json.normalizer as Json, 'normalizers');
  const pres = walk(json.pre_tokenizer as Json, 'pretokenizers');
  return norms.some((n) => n.type === 'Prepend')
    || pres.some((p) => p.type === 'Metaspace' && p.prepend_scheme !== 'never' && p.add_prefix_space !== false);
}

interface Piece { text: string; addedId?: number }

export class HfBpeTokenizer implements Tokenizer {
  readonly data: TokenizerData;
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  private readonly vocab: Map<string, number>;
  private readonly ranks = new Map<string, number>();
  private readonly added: AddedToken[];
  private readonly addedRe: RegExp | null;
  private readonly byteFallback: boolean;
  private readonly ignoreMerges: boolean;
  private readonly unkId: number | undefined;
  private readonly byteIds = new Int32Array(256).fill(-1);
  private readonly normalizers: Json[];
  private readonly preTokenizers: Json[];
  private readonly byteLevel: boolean;
  private readonly table: DecodeTable;
  private readonly cache = new WordCache();

  constructor(data: TokenizerData) {
    if (data.kind !== 'hf-json' || !data.json) throw new Error('HfBpeTokenizer needs tokenizer.json data');
    const json = data.json as Json;
    const name = data.source ?? 'tokenizer.json';
    const fail: (p: string) => never = (p) => { throw new FormatError(name, p); };
    checkHfTokenizerJson(json, name);
    this.data = data;
    this.vocabSize = data.tokens.length;
    this.bosId = data.bosId;
    this.eosId = data.eosId;
    this.unkId = data.unkId;
    const model = json.model as Json;
    if (model.continuing_subword_prefix || model.end_of_word_suffix) fail('BPE with subword prefixes or suffixes is not supported');
    this.vocab = new Map(Object.entries(model.vocab as Record<string, number>));
    this.byteFallback = model.byte_fallback === true;
    this.ignoreMerges = model.ignore_merges === true;
    ((model.merges ?? []) as (string | [string, string])[]).forEach((m, rank) => {
      const key = typeof m === 'string' ? m : `${m[0]} ${m[1]}`;
      if (!this.ranks.has(key)) this.ranks.set(key, rank);
    });
    if (this.byteFallback) {
      for (const [t, id] of this.vocab) {
        const m = BYTE_PIECE.exec(t);
        if (m) this.byteIds[parseInt(m[1]!, 16)] = id;
      }
    }
    this.added = ((json.added_tokens ?? []) as Json[]).map((a) => ({
      id: a.id as number, content: a.content as string, special: a.special === true,
      lstrip: a.lstrip === true, rstrip: a.rstrip === true, normalized: a.normalized === true,
    }));
    const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const contents = [...new Set(this.added.map((a) => a.content).filter((c) => c.length > 0))].sort((a, b) => b.length - a.length);
    this.addedRe = contents.length ? new RegExp(contents.map(esc).join('|'), 'gu') : null;

    const flat = (n: Json | null | undefined, key: string): Json[] => {
      if (!n) return [];
      return n.type === 'Sequence' ? ((n[key] ?? []) as Json[]).flatMap((k) => flat(k, key)) : [n];
    };
    this.normalizers = flat(json.normalizer as Json, 'normalizers');
    this.preTokenizers = flat(json.pre_tokenizer as Json, 'pretokenizers');
    for (const n of this.normalizers) {
      if (!['Prepend', 'Replace', 'NFC', 'NFD', 'NFKC', 'NFKD', 'Lowercase', 'Strip'].includes(n.type as string)) fail(`normalizer ${String(n.type)} is not supported`);
    }
    for (const p of this.preTokenizers) {
      if (!['ByteLevel', 'Split', 'Metaspace', 'Digits', 'WhitespaceSplit', 'Whitespace'].includes(p.type as string)) fail(`pre-tokenizer ${String(p.type)} is not supported`);
    }
    const decoders = flat(json.decoder as Json, 'decoders');
    this.byteLevel = decoders.some((d) => d.type === 'ByteLevel') || this.preTokenizers.some((p) => p.type === 'ByteLevel');
    let space = '';
    for (const d of decoders) {
      if (d.type === 'Replace' && (d.content === ' ') && typeof (d.pattern as Json)?.String === 'string') space = (d.pattern as Json).String as string;
      if (d.type === 'Metaspace') space = (d.replacement as string) ?? '\u2581';
    }

    const types = data.types ?? new Int32Array(this.vocabSize).fill(TokenType.NORMAL);
    const bytes: Uint8Array[] = new Array(this.vocabSize);
    const specialBytes = new Map<number, Uint8Array>();
    for (let id = 0; id < this.vocabSize; id++) {
      const t = data.tokens[id]!;
      if (types[id] === TokenType.CONTROL) {
        bytes[id] = new Uint8Array(0);
        specialBytes.set(id, utf8Bytes(t));
      } else if (types[id] === TokenType.USER_DEFINED) {
        // Non-special added tokens go through the decoder too (Gemma's whitespace runs "▁▁" are added tokens).
        bytes[id] = utf8Bytes(!this.byteLevel && space ? t.replaceAll(space, ' ') : t);
      } else if (types[id] === TokenType.BYTE) {
        bytes[id] = Uint8Array.of(parseInt(BYTE_PIECE.exec(t)![1]!, 16));
      } else if (this.byteLevel) {
        const out: number[] = [];
        for (const ch of t) {
          const b = BYTE_LEVEL.toByte.get(ch);
          if (b !== undefined) out.push(b);
          else out.push(...utf8Bytes(ch));
        }
        bytes[id] = Uint8Array.from(out);
      } else {
        bytes[id] = utf8Bytes(space ? t.replaceAll(space, ' ') : t);
      }
    }
    this.table = {
      bytes, specialBytes, bosId: data.bosId, dummyPrefix: data.addSpacePrefix ?? false,
      isByte: (id) => types[id] === TokenType.BYTE,
    };
  }

  piece(id: number): string { return tokenEntry(this.data.tokens, id); }

  tokenBytes(id: number): Uint8Array { return tokenEntry(this.table.bytes, id); }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (options.bos ?? this.data.addBos ?? false) {
      if (this.bosId === undefined) throw new Error('encode: this tokenizer has no BOS token');
      out.push(this.bosId);
    }
    this.splitAdded(text).forEach((piece, i) => {
      if (piece.addedId !== undefined) { out.push(piece.addedId); return; }
      const normalized = this.normalize(piece.text);
      for (const word of this.preTokenize(normalized, i === 0)) this.bpeWord(word, out);
    });
    if (options.eos) {
      if (this.eosId === undefined) throw new Error('encode: this tokenizer has no EOS token');
      out.push(this.eosId);
    }
    return out;
  }

  /** Split text on added tokens (always matched, longest first); lstrip/rstrip swallow adjacent spaces. */
  private splitAdded(text: string): Piece[] {
    if (!this.addedRe) return text ? [{ text }] : [];
    const out: Piece[] = [];
    let last = 0;
    for (const m of text.matchAll(this.addedRe)) {
      const a = this.added.find((x) => x.content === m[0])!;
      let before = text.slice(last, m.index);
      if (a.lstrip) before = before.trimEnd();
      if (before) out.push({ text: before });
      out.push({ text: m[0], addedId: a.id });
      last = m.index! + m[0].length;
      if (a.rstrip) while (last < text.length && /\s/u.test(text[last]!)) last++;
    }
    if (last < text.length) out.push({ text: text.slice(last) });
    return out;
  }

  private normalize(s: string): string {
    for (const n of this.normalizers) {
      switch (n.type) {
        case 'Prepend': s = (n.prepend as string) + s; break;
        case 'Replace': {
          const p = n.pattern as Json;
          const content = n.content as string;
          if (typeof p.String === 'string') s = s.replaceAll(p.String, content);
          else if (typeof p.Regex === 'string') s = s.replace(toJsRegex(p.Regex), content);
          break;
        }
        case 'NFC': case 'NFD': case 'NFKC': case 'NFKD': s = s.normalize(n.type); break;
        case 'Lowercase': s = s.toLowerCase(); break;
        case 'Strip':
          if (n.left !== false) s = s.trimStart();
          if (n.right !== false) s = s.trimEnd();
          break;
      }
    }
    return s;
  }

  /** `atStart`: this text begins the input (Metaspace's prepend_scheme "first" prepends only there). */
  private preTokenize(s: string, atStart: boolean): string[] {
    let words = [s];
    for (const p of this.preTokenizers) {
      switch (p.type) {
        case 'ByteLevel': {
          if (p.add_prefix_space === true) words = words.map((w, i) => (i === 0 && !w.startsWith(' ') ? ' ' + w : w));
          if (p.use_regex !== false) words = words.flatMap((w) => splitRegex(w, toJsRegex(GPT2_PATTERN), 'Isolated', false));
          words = words.map((w) => Array.from(utf8Bytes(w), (b) => BYTE_LEVEL.toChar[b]!).join(''));
          break;
        }
        case 'Split': {
          const pat = p.pattern as Json;
          const re = typeof pat.Regex === 'string'
            ? toJsRegex(pat.Regex)
            : new RegExp((pat.String as string).replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'gu');
          words = words.flatMap((w) => splitRegex(w, re, (p.behavior as string) ?? 'Isolated', p.invert === true));
          break;
        }
        case 'Metaspace': {
          const rep = (p.replacement as string) ?? '\u2581';
          const scheme = (p.prepend_scheme as string) ?? (p.add_prefix_space === false ? 'never' : 'always');
          words = words.map((w, i) => {
            w = w.replaceAll(' ', rep);
            const prepend = scheme === 'always' || (scheme === 'first' && i === 0 && atStart);
            return prepend && !w.startsWith(rep) ? rep + w : w;
          });
          if (p.split !== false) {
            words = words.flatMap((w) => w.split(new RegExp(`(?=${rep.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')})`, 'u')).filter((x) => x));
          }
          break;
        }
        case 'Digits':
          words = words.flatMap((w) => splitRegex(w, p.individual_digits ? /\p{N}/gu : /\p{N}+/gu, 'Isolated', false));
          break;
        case 'WhitespaceSplit':
          words = words.flatMap((w) => w.split(/\s+/u).filter((x) => x));
          break;
        case 'Whitespace':
          words = words.flatMap((w) => w.match(/\w+|[^\w\s]+/gu) ?? []);
          break;
      }
    }
    return words.filter((w) => w.length > 0);
  }

  private bpeWord(word: string, out: number[]): void {
    const hit = this.cache.get(word);
    if (hit) { appendIds(out, hit); return; }
    const ids: number[] = [];
    const whole = this.vocab.get(word);
    if (this.ignoreMerges && whole !== undefined) {
      ids.push(whole);
    } else {
      const sym = Array.from(word);
      const n = sym.length;
      const next = Int32Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
      const prev = Int32Array.from({ length: n }, (_, i) => i - 1);
      // (rank, left) min-heap as a sorted insertion list is enough for word-sized inputs.
      const heap: [number, number, number, number][] = [];
      const push = (l: number, r: number) => {
        if (l < 0 || r < 0) return;
        const rank = this.ranks.get(`${sym[l]} ${sym[r]}`);
        if (rank === undefined) return;
        const e: [number, number, number, number] = [rank, l, r, sym[l]!.length + sym[r]!.length];
        let i = heap.length;
        heap.push(e);
        while (i > 0 && (heap[i - 1]![0] < rank || (heap[i - 1]![0] === rank && heap[i - 1]![1] < l))) { heap[i] = heap[i - 1]!; i--; }
        heap[i] = e;
      };
      for (let i = 0; i + 1 < n; i++) push(i, i + 1);
      while (heap.length) {
        const [, l, r, len] = heap.pop()!;
        if (sym[l] === '' || sym[r] === '' || next[l] !== r || sym[l]!.length + sym[r]!.length !== len) continue;
        sym[l] = sym[l]! + sym[r]!;
        sym[r] = '';
        next[l] = next[r]!;
        if (next[r]! >= 0) prev[next[r]!] = l;
        push(prev[l]!, l);
        push(l, next[l]!);
      }
      let lastUnk = false;
      for (let i = 0; i >= 0 && i < n; i = next[i]!) {
        const id = this.vocab.get(sym[i]!);
        if (id !== undefined) { ids.push(id); lastUnk = false; continue; }
        if (this.byteFallback && [...utf8Bytes(sym[i]!)].every((b) => this.byteIds[b]! >= 0)) {
          for (const b of utf8Bytes(sym[i]!)) ids.push(this.byteIds[b]!);
          lastUnk = false;
          continue;
        }
        if (this.unkId === undefined) throw new Error(`encode: ${JSON.stringify(sym[i])} is not in the vocabulary and there is no unknown token`);
        const fuse = (this.data.json as Json & { model: Json }).model.fuse_unk === true;
        if (!(fuse && lastUnk)) ids.push(this.unkId);
        lastUnk = true;
      }
    }
    this.cache.set(word, ids);
    appendIds(out, ids);
  }

  decode(ids: ArrayLike<number>, options?: DecodeOptions): string {
    return decodeIds(this.table, ids, options);
  }

  streamDecoder(options?: DecodeOptions): StreamDecoder {
    return streamDecoder(this.table, options);
  }
}

/** Split by regex matches per the `tokenizers` SplitDelimiterBehavior. */
function splitRegex(s: string, re: RegExp, behavior: string, invert: boolean): string[] {
  const spans: [number, number, boolean][] = [];
  let last = 0;
  for (const m of s.matchAll(re)) {
    if (m[0].length === 0) continue;
    if (m.index! > last) spans.push([last, m.index!, false]);
    spans.push([m.index!, m.index! + m[0].length, true]);
    last = m.index! + m[0].length;
  }
  if (last < s.length) spans.push([last, s.length, false]);
  if (invert) for (const sp of spans) sp[2] = !sp[2];
  const out: string[] = [];
  const text = (sp: [number, number, boolean]) => s.slice(sp[0], sp[1]);
  switch (behavior) {
    case 'Removed':
      for (const sp of spans) if (!sp[2]) out.push(text(sp));
      break;
    case 'MergedWithPrevious':
      for (const sp of spans) {
        if (sp[2] && out.length) out[out.length - 1] += text(sp);
        else out.push(text(sp));
      }
      break;
    case 'MergedWithNext': {
      let pending = '';
      for (const sp of spans) {
        if (sp[2]) pending += text(sp);
        else { out.push(pending + text(sp)); pending = ''; }
      }
      if (pending) out.push(pending);
      break;
    }
    case 'Contiguous':
      for (const sp of spans) {
        const prev = out.length ? spans[spans.indexOf(sp) - 1] : undefined;
        if (prev && prev[2] === sp[2] && sp[2]) out[out.length - 1] += text(sp);
        else out.push(text(sp));
      }
      break;
    default: // Isolated
      for (const sp of spans) out.push(text(sp));
  }
  return out.filter((x) => x.length > 0);
}
