/**
 * The tri-gram table ADED drafts from (Liu et al. 2024, "Adaptive Draft-Verification for Efficient Large
 * Language Model Decoding"): for each context (a, b) of two tokens, the continuations c seen after it with
 * their counts, P̂(c | a, b) = n(a, b, c) / Σ_c' n(a, b, c'), over only the `keep` most frequent c. A bigram
 * table (context b) is kept the same way and answers contexts the tri-gram table has never seen.
 * Built from a corpus, then updated from the tokens the model accepts while decoding (adaptive).
 */

export interface Continuation {
  token: number;
  count: number;
}

export interface TrigramOptions {
  /** Continuations kept per context (default 8). */
  keep?: number;
}

/** Sorted by count (most first), ties by token id, so drafts do not depend on insertion order. */
const byCount = (x: Continuation, y: Continuation): number => y.count - x.count || x.token - y.token;

export class TrigramTable {
  readonly keep: number;
  private readonly tri = new Map<number, Map<number, Continuation[]>>();
  private readonly bi = new Map<number, Continuation[]>();

  constructor(o: TrigramOptions = {}) {
    const keep = o.keep ?? 8;
    if (!(Number.isInteger(keep) && keep >= 1)) throw new RangeError(`draft table: keep must be a positive integer (got ${keep})`);
    this.keep = keep;
  }

  /**
   * Count every tri-gram and bigram of each token sequence exactly, then keep the `keep` most frequent
   * continuations per context (the exact top, unlike the online updates below).
   */
  static fromSequences(seqs: Iterable<readonly number[]>, o: TrigramOptions = {}): TrigramTable {
    const t = new TrigramTable(o);
    const tri = new Map<number, Map<number, Map<number, number>>>(), bi = new Map<number, Map<number, number>>();
    const bump = (m: Map<number, number>, c: number) => m.set(c, (m.get(c) ?? 0) + 1);
    const sub = <K, V>(m: Map<K, V>, k: K, make: () => V): V => { let v = m.get(k); if (!v) m.set(k, (v = make())); return v; };
    for (const s of seqs) {
      for (let i = 1; i < s.length; i++) {
        bump(sub(bi, s[i - 1]!, () => new Map()), s[i]!);
        if (i >= 2) bump(sub(sub(tri, s[i - 2]!, () => new Map()), s[i - 1]!, () => new Map()), s[i]!);
      }
    }
    const top = (m: Map<number, number>): Continuation[] => [...m].map(([token, count]) => ({ token, count })).sort(byCount).slice(0, t.keep);
    for (const [a, mb] of tri) {
      const row = new Map<number, Continuation[]>();
      for (const [b, mc] of mb) row.set(b, top(mc));
      t.tri.set(a, row);
    }
    for (const [b, mc] of bi) t.bi.set(b, top(mc));
    return t;
  }

  /** The kept continuations of (a, b), most frequent first; empty when the context was never seen. */
  trigram(a: number, b: number): readonly Continuation[] {
    return this.tri.get(a)?.get(b) ?? [];
  }

  /** The kept continuations of b alone. */
  bigram(b: number): readonly Continuation[] {
    return this.bi.get(b) ?? [];
  }

  /**
   * Draft candidates after (a, b) with their estimated probabilities: the tri-gram's when (a, b) was
   * seen, else the bigram's (a = −1: no first token), at most `k`.
   */
  candidates(a: number, b: number, k: number): { token: number; p: number }[] {
    const row = a >= 0 && this.trigram(a, b).length ? this.trigram(a, b) : this.bigram(b);
    let total = 0;
    for (const c of row) total += c.count;
    return row.slice(0, k).map((c) => ({ token: c.token, p: c.count / total }));
  }

  /**
   * Learn from accepted output: each new token c after its two predecessors counts once in (a, b) → c and
   * b → c. A context already holding `keep` continuations makes room as Space-Saving does (Metwally et al.
   * 2005): an unseen c replaces the least frequent entry and takes its count + 1, so a continuation that
   * keeps recurring climbs into the top while the table stays bounded.
   */
  update(history: readonly number[], from: number): void {
    for (let i = Math.max(1, from); i < history.length; i++) {
      const b = history[i - 1]!, c = history[i]!;
      let bl = this.bi.get(b);
      if (!bl) this.bi.set(b, (bl = []));
      this.count(bl, c);
      if (i >= 2) {
        const a = history[i - 2]!;
        let row = this.tri.get(a);
        if (!row) this.tri.set(a, (row = new Map()));
        let l = row.get(b);
        if (!l) row.set(b, (l = []));
        this.count(l, c);
      }
    }
  }

  private count(list: Continuation[], token: number): void {
    const hit = list.find((x) => x.token === token);
    if (hit) hit.count++;
    else if (list.length < this.keep) list.push({ token, count: 1 });
    else {
      const last = list[list.length - 1]!;
      list[list.length - 1] = { token, count: last.count + 1 };
    }
    list.sort(byCount);
  }

  /** Number of (a, b) contexts held. */
  get contexts(): number {
    let n = 0;
    for (const row of this.tri.values()) n += row.size;
    return n;
  }
}

/**
 * A table from a text corpus: each blank-line paragraph (or the whole text when it has none) tokenised
 * with the model's tokenizer, BOS first as the model sees a prompt.
 */
export function trigramFromText(text: string, tok: { encode(text: string, o?: { bos?: boolean }): number[] }, o: TrigramOptions = {}): TrigramTable {
  const paragraphs = text.split(/\r?\n\s*\r?\n/).map((p) => p.trim()).filter((p) => p.length > 0);
  if (paragraphs.length === 0) throw new Error('the draft corpus has no text');
  return TrigramTable.fromSequences(paragraphs.map((p) => tok.encode(p, { bos: true })), o);
}
