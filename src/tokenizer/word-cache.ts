/**
 * Token ids of recently encoded words. Natural text repeats a small set of words, so BPE runs once per
 * distinct word instead of once per occurrence: this is what makes tokenising a large corpus fast. The
 * cache is bounded (short words only, and emptied when full) so a corpus of endless distinct words —
 * code, hashes, another script — costs no more memory than a cache's worth.
 */
export class WordCache {
  private readonly map = new Map<string, readonly number[]>();

  constructor(private readonly maxEntries = 1 << 17, private readonly maxWordLength = 64) {}

  get(word: string): readonly number[] | undefined {
    return this.map.get(word);
  }

  set(word: string, ids: readonly number[]): void {
    if (word.length > this.maxWordLength) return;
    if (this.map.size >= this.maxEntries) this.map.clear();
    this.map.set(word, ids);
  }

  get size(): number { return this.map.size; }
}

/**
 * A word cache looked up by position in the text: the caller hashes a word's characters as it scans
 * them (`hashStep`), so finding a word already seen allocates nothing — no substring, no string hash.
 * Open addressing over a power-of-two table, emptied when half full; words of more than
 * `maxWordLength` characters are not kept.
 */
export class WordTable {
  private keys: (string | undefined)[];
  private readonly hashes: Int32Array;
  private vals: (readonly number[] | undefined)[];
  private size = 0;
  private readonly mask: number;

  constructor(bits = 17, readonly maxWordLength = 64) {
    const n = 1 << bits;
    this.mask = n - 1;
    this.keys = new Array<string | undefined>(n);
    this.vals = new Array<readonly number[] | undefined>(n);
    this.hashes = new Int32Array(n);
  }

  /** The ids of text[start, end) (whose hash is h), if cached. */
  find(text: string, start: number, end: number, h: number): readonly number[] | undefined {
    const len = end - start;
    for (let i = h & this.mask; ; i = (i + 1) & this.mask) {
      const k = this.keys[i];
      if (k === undefined) return undefined;
      if (this.hashes[i] !== h || k.length !== len) continue;
      let j = 0;
      while (j < len && k.charCodeAt(j) === text.charCodeAt(start + j)) j++;
      if (j === len) return this.vals[i];
    }
  }

  /** Cache `ids` for `word` (whose hash is h). */
  add(word: string, h: number, ids: readonly number[]): void {
    if (word.length > this.maxWordLength) return;
    if (2 * (this.size + 1) > this.keys.length) {
      this.keys = new Array<string | undefined>(this.keys.length);
      this.vals = new Array<readonly number[] | undefined>(this.keys.length);
      this.size = 0;
    }
    let i = h & this.mask;
    while (this.keys[i] !== undefined) i = (i + 1) & this.mask;
    this.keys[i] = word;
    this.hashes[i] = h;
    this.vals[i] = ids;
    this.size++;
  }
}

/** One step of the word hash (FNV-1a over UTF-16 code units); start from HASH_START. */
export const hashStep = (h: number, c: number): number => Math.imul(h ^ c, 16777619);
export const HASH_START = -2128831035;

/** Appends `ids` to `out` (a loop: spreading a long array into push can overflow the call stack). */
export function appendIds(out: number[], ids: readonly number[]): void {
  for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
}
