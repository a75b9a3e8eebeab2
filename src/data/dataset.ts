/**
 * Training examples from plain text (blank-line paragraphs) or JSONL ({"text"} or {"prompt","completion"},
 * loss on the completion only), and packing into fixed [rows, T+1] token blocks.
 *
 * Packing follows the dynamic pack idea of CodeACT (Lv et al., 2024, "Dynamic Pack padding"): order
 * examples by length and fill each row with as many as fit (first-fit decreasing), so few positions are
 * padding. Packed examples share a row the way pretraining documents do: each starts with BOS and later
 * ones may attend to earlier ones in the row; only padding is masked out of the loss.
 */
import type { Tokenizer } from '../tokenizer/types.js';

export interface Example {
  /** Token ids, BOS first. */
  ids: number[];
  /** 1 where the token is a prediction target (the loss counts it), per position of `ids`. */
  target: Uint8Array;
}

export class DataError extends Error {
  constructor(message: string) { super(message); this.name = 'DataError'; }
}

/** One example per paragraph; every token after BOS is a target. */
export function textExamples(paras: readonly string[], tok: Tokenizer, maxLen: number): Example[] {
  return paras.map((p) => {
    const ids = tok.encode(p, { bos: true }).slice(0, maxLen + 1);
    return { ids, target: Uint8Array.from(ids, (_, i) => (i === 0 ? 0 : 1)) };
  });
}

/** JSONL lines: {"text": …} or {"prompt": …, "completion": …}. A malformed line is an error naming file:line. */
export function jsonlExamples(text: string, file: string, tok: Tokenizer, maxLen: number): Example[] {
  const out: Example[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim()) return;
    const where = `${file}:${i + 1}`;
    let row: unknown;
    try { row = JSON.parse(line); } catch (e) { throw new DataError(`${where}: not valid JSON (${(e as Error).message})`); }
    if (typeof row !== 'object' || row === null || Array.isArray(row)) throw new DataError(`${where}: each line must be a JSON object`);
    const r = row as Record<string, unknown>;
    if (typeof r.text === 'string') {
      out.push(...textExamples([r.text], tok, maxLen));
    } else if (typeof r.prompt === 'string' && typeof r.completion === 'string') {
      const p = tok.encode(r.prompt, { bos: true });
      // The completion continues the prompt's text, so it is encoded without a second dummy-prefix space.
      const full = tok.encode(r.prompt + r.completion, { bos: true });
      const ids = full.slice(0, maxLen + 1);
      const start = commonPrefix(p, full);
      out.push({ ids, target: Uint8Array.from(ids, (_, k) => (k >= Math.max(1, start) ? 1 : 0)) });
    } else {
      throw new DataError(`${where}: expected {"text": string} or {"prompt": string, "completion": string}, got keys ${Object.keys(r).join(', ') || 'none'}`);
    }
  });
  if (out.length === 0) throw new DataError(`${file}: no examples`);
  return out;
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

export interface PackedBlocks {
  /** rows × (T + 1) ids; inputs are [:, :T], next-token targets [:, 1:]. */
  ids: Int32Array;
  /** rows × T targets for the next-token loss, −100 where nothing is predicted. */
  targets: Int32Array;
  rows: number;
  seq: number;
  /** Fraction of target positions that are padding, packed. */
  paddingRatio: number;
  /** The same with one example per row (naive padding to T), for comparison. */
  naivePaddingRatio: number;
}

/** Pack examples into rows of T+1 tokens (first-fit decreasing by length). */
export function pack(examples: readonly Example[], seq: number, padId = 0): PackedBlocks {
  const cap = seq + 1;
  const order = examples.map((e, i) => [e.ids.length, i] as const).filter(([n]) => n >= 2).sort((a, b) => b[0] - a[0]);
  const rows: { used: number; items: number[] }[] = [];
  for (const [n, i] of order) {
    const len = Math.min(n, cap);
    const row = rows.find((r) => r.used + len <= cap);
    if (row) { row.used += len; row.items.push(i); } else rows.push({ used: len, items: [i] });
  }
  const ids = new Int32Array(rows.length * cap).fill(padId), targets = new Int32Array(rows.length * seq).fill(-100);
  let real = 0;
  rows.forEach((r, ri) => {
    let at = 0;
    for (const i of r.items) {
      const e = examples[i]!, len = Math.min(e.ids.length, cap);
      for (let k = 0; k < len; k++) {
        ids[ri * cap + at + k] = e.ids[k]!;
        // Position at+k−1 predicts token at+k when that token is a target of the same example.
        if (k >= 1 && e.target[k]) { targets[ri * seq + at + k - 1] = e.ids[k]!; real++; }
      }
      at += len;
    }
  });
  const naiveSlots = order.length * seq;
  const naiveReal = order.reduce((acc, [, i]) => acc + countTargets(examples[i]!, cap), 0);
  return {
    ids, targets, rows: rows.length, seq,
    paddingRatio: rows.length ? 1 - real / (rows.length * seq) : 0,
    naivePaddingRatio: naiveSlots ? 1 - naiveReal / naiveSlots : 0,
  };
}

function countTargets(e: Example, cap: number): number {
  let n = 0;
  for (let k = 1; k < Math.min(e.ids.length, cap); k++) n += e.target[k]!;
  return n;
}

/** Inputs for rows [start, start+batch) of packed blocks, wrapping around: ids [B, T] and targets [B·T]. */
export function batchAt(p: PackedBlocks, start: number, batch: number): { ids: Int32Array; targets: Int32Array } {
  const T = p.seq, cap = T + 1;
  const ids = new Int32Array(batch * T), targets = new Int32Array(batch * T);
  for (let b = 0; b < batch; b++) {
    const r = (start + b) % p.rows;
    ids.set(p.ids.subarray(r * cap, r * cap + T), b * T);
    targets.set(p.targets.subarray(r * T, r * T + T), b * T);
  }
  return { ids, targets };
}
