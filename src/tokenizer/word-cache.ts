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

/** Appends `ids` to `out` (a loop: spreading a long array into push can overflow the call stack). */
export function appendIds(out: number[], ids: readonly number[]): void {
  for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
}
