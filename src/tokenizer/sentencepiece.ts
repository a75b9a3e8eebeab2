/**
 * SentencePiece-style BPE (the llama / llama2.c tokenizer): the text, with a dummy-prefix space and
 * spaces written as the vocabulary writes them, is split into code points; the adjacent pair whose
 * concatenation is a piece with the highest score is merged, leftmost first on ties, until no pair
 * merges; a symbol that is not a piece falls back to its UTF-8 bytes as `<0xXX>` tokens.
 */
import { decodeIds, streamDecoder, tokenEntry, utf8Bytes, type DecodeTable } from './decode.js';
import { appendIds, HASH_START, hashStep, WordTable } from './word-cache.js';
import {
  TokenType, type DecodeOptions, type EncodeOptions, type StreamDecoder, type Tokenizer, type TokenizerData,
} from './types.js';

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;
const SPM_SPACE = '\u2581';

/** Token types of a vocabulary, inferred where the source does not store them (llama2.c). */
export function resolveTokenTypes(data: TokenizerData): Int32Array {
  if (data.types && data.types.length === data.tokens.length) return data.types;
  const types = new Int32Array(data.tokens.length);
  data.tokens.forEach((t, id) => {
    if (id === data.unkId) types[id] = TokenType.UNKNOWN;
    else if (id === data.bosId || id === data.eosId || id === data.padId) types[id] = TokenType.CONTROL;
    else if (BYTE_PIECE.test(t)) types[id] = TokenType.BYTE;
    else types[id] = TokenType.NORMAL;
  });
  return types;
}

/** Max-heap of candidate merges ordered by score, then leftmost position. */
class MergeHeap {
  private score: number[] = [];
  private left: number[] = [];
  private right: number[] = [];
  private len: number[] = [];
  private size = 0;

  get length(): number { return this.size; }

  private before(i: number, j: number): boolean {
    const a = this.score[i]!, b = this.score[j]!;
    return a > b || (a === b && this.left[i]! < this.left[j]!);
  }

  private swap(i: number, j: number): void {
    for (const arr of [this.score, this.left, this.right, this.len]) {
      const t = arr[i]!; arr[i] = arr[j]!; arr[j] = t;
    }
  }

  push(score: number, left: number, right: number, len: number): void {
    let i = this.size++;
    this.score[i] = score; this.left[i] = left; this.right[i] = right; this.len[i] = len;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  /** Removes the top; returns [left, right, len]. */
  pop(): [number, number, number] {
    const top: [number, number, number] = [this.left[0]!, this.right[0]!, this.len[0]!];
    const last = --this.size;
    if (last > 0) {
      this.score[0] = this.score[last]!; this.left[0] = this.left[last]!;
      this.right[0] = this.right[last]!; this.len[0] = this.len[last]!;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < last && this.before(l, m)) m = l;
        if (r < last && this.before(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
}

export class SentencePieceTokenizer implements Tokenizer {
  readonly data: TokenizerData;
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  readonly unkId: number | undefined;
  readonly types: Int32Array;
  /** ' ' in llama2.c vocabularies, U+2581 in GGUF and Hugging Face ones. */
  readonly spaceSymbol: string;
  private readonly scores: Float32Array;
  /** Pieces that text can turn into (normal and user-defined). */
  private readonly pieceIds = new Map<string, number>();
  private readonly byteIds = new Int32Array(256).fill(-1);
  private readonly table: DecodeTable;
  /**
   * True when no piece joins a symbol to a space after it (pieces carry spaces only in front, as
   * SentencePiece's whitespace splitting makes them). No merge can then cross the start of a word, so BPE
   * over each word — its leading spaces and what follows up to the next space — gives exactly the ids of
   * BPE over the whole text (merges inside one word happen in the same order either way), and words can
   * be cached.
   */
  private readonly wordwise: boolean;
  private readonly words = new WordTable();

  constructor(data: TokenizerData) {
    this.data = data;
    const n = data.tokens.length;
    this.vocabSize = n;
    this.bosId = data.bosId;
    this.eosId = data.eosId;
    this.unkId = data.unkId;
    this.types = resolveTokenTypes(data);
    this.scores = data.scores ?? new Float32Array(n);
    let underscores = 0, spaces = 0;
    for (const t of data.tokens) {
      if (t.startsWith(SPM_SPACE)) underscores++;
      else if (t.startsWith(' ')) spaces++;
    }
    this.spaceSymbol = underscores >= spaces ? SPM_SPACE : ' ';

    const bytes: Uint8Array[] = new Array(n);
    const specialBytes = new Map<number, Uint8Array>();
    for (let id = 0; id < n; id++) {
      const piece = data.tokens[id]!;
      const type = this.types[id]!;
      if (type === TokenType.BYTE) {
        const m = BYTE_PIECE.exec(piece);
        if (m) {
          const b = parseInt(m[1]!, 16);
          if (this.byteIds[b] === -1) this.byteIds[b] = id;
          bytes[id] = Uint8Array.of(b);
          continue;
        }
      }
      const text = this.spaceSymbol === SPM_SPACE ? piece.replaceAll(SPM_SPACE, ' ') : piece;
      if (type === TokenType.CONTROL || type === TokenType.UNUSED) {
        bytes[id] = new Uint8Array(0);
        specialBytes.set(id, utf8Bytes(text));
      } else if (type === TokenType.UNKNOWN) {
        // SentencePiece renders an unknown piece as " ⁇ ".
        bytes[id] = utf8Bytes(' \u2047 ');
      } else {
        bytes[id] = utf8Bytes(text);
        if (!this.pieceIds.has(piece)) this.pieceIds.set(piece, id);
      }
    }
    const sp = this.spaceSymbol;
    this.wordwise = [...this.pieceIds.keys()].every((p) => {
      for (let i = 1; i < p.length; i++) if (p[i] === sp && p[i - 1] !== sp) return false;
      return true;
    });
    this.table = {
      bytes, specialBytes, bosId: data.bosId, dummyPrefix: data.addSpacePrefix ?? true,
      isByte: (id) => this.types[id] === TokenType.BYTE,
    };
  }

  piece(id: number): string { return tokenEntry(this.data.tokens, id); }

  tokenBytes(id: number): Uint8Array { return tokenEntry(this.table.bytes, id); }

  /** Id of a piece that text can produce, if any. */
  pieceId(piece: string): number | undefined {
    return this.pieceIds.get(piece);
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const out: number[] = [];
    const bos = options.bos ?? (this.data.addBos ?? true);
    if (bos) {
      if (this.bosId === undefined) throw new Error('encode: this tokenizer has no BOS token');
      out.push(this.bosId);
    }
    if (text.length > 0) {
      const s = (this.data.addSpacePrefix ?? true) ? ' ' + text : text;
      if (this.wordwise) this.bpeWords(s, out);
      else this.bpe(this.spaceSymbol === ' ' ? s : s.replaceAll(' ', this.spaceSymbol), out);
    }
    if (options.eos) {
      if (this.eosId === undefined) throw new Error('encode: this tokenizer has no EOS token');
      out.push(this.eosId);
    }
    return out;
  }

  /**
   * BPE word by word through the cache (see `wordwise`); a word starts at a space after a non-space. The
   * text keeps its spaces (words are cached as written) and a word becomes the vocabulary's spelling only
   * when it is not in the cache: the text stays one byte per character and is never copied whole.
   */
  private bpeWords(s: string, out: number[]): void {
    const space = 32, sym = this.spaceSymbol;
    let start = 0, h = HASH_START;
    for (let i = 0; i <= s.length; i++) {
      const c = i < s.length ? s.charCodeAt(i) : -1;
      if (i > start && (c === -1 || (c === space && s.charCodeAt(i - 1) !== space))) {
        const hit = this.words.find(s, start, i, h);
        if (hit) appendIds(out, hit);
        else {
          const word = s.slice(start, i), ids: number[] = [];
          this.bpe(sym === ' ' ? word : word.replaceAll(' ', sym), ids);
          this.words.add(word, h, ids);
          appendIds(out, ids);
        }
        start = i;
        h = HASH_START;
      }
      h = hashStep(h, c);
    }
  }

  private bpe(s: string, out: number[]): void {
    const sym = Array.from(s);
    const n = sym.length;
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) { next[i] = i + 1 < n ? i + 1 : -1; prev[i] = i - 1; }
    const heap = new MergeHeap();
    const tryPair = (l: number, r: number) => {
      if (l < 0 || r < 0) return;
      const merged = sym[l]! + sym[r]!;
      const id = this.pieceIds.get(merged);
      if (id !== undefined) heap.push(this.scores[id]!, l, r, merged.length);
    };
    for (let i = 0; i + 1 < n; i++) tryPair(i, i + 1);
    while (heap.length > 0) {
      const [l, r, len] = heap.pop();
      // Stale entries: a side was merged away or grew since the pair was queued.
      if (sym[l] === '' || sym[r] === '' || next[l] !== r || sym[l]!.length + sym[r]!.length !== len) continue;
      sym[l] = sym[l]! + sym[r]!;
      sym[r] = '';
      const nr = next[r]!;
      next[l] = nr;
      if (nr >= 0) prev[nr] = l;
      tryPair(prev[l]!, l);
      tryPair(l, nr);
    }
    for (let i = 0; i >= 0 && i < n; i = next[i]!) {
      const piece = sym[i]!;
      const id = this.pieceIds.get(piece);
      if (id !== undefined) { out.push(id); continue; }
      const text = this.spaceSymbol === ' ' ? piece : piece.replaceAll(this.spaceSymbol, ' ');
      for (const b of utf8Bytes(text)) {
        const bid = this.byteIds[b]!;
        if (bid >= 0) out.push(bid);
        else if (this.unkId !== undefined) { out.push(this.unkId); break; }
        else throw new Error(`encode: no piece or byte token for ${JSON.stringify(piece)} and no unknown token`);
      }
    }
  }

  decode(ids: ArrayLike<number>, options?: DecodeOptions): string {
    return decodeIds(this.table, ids, options);
  }

  streamDecoder(options?: DecodeOptions): StreamDecoder {
    return streamDecoder(this.table, options);
  }
}
