/**
 * Preference data for DPO: JSONL lines {"prompt", "chosen", "rejected"}. Each pair becomes two rows of
 * `seq` tokens, the prompt followed by one response; only the response's tokens are targets (the
 * prompt/completion rule of src/data/dataset.ts, so a response continues its prompt's text).
 */
import { DataError, jsonlExample } from '../../data/dataset.js';
import { forEachJsonlObject } from '../../data/jsonl.js';
import type { Tokenizer } from '../../tokenizer/types.js';

export interface PreferenceRows {
  /** Rows of one side, [pairs, seq]: input ids (padding 0), next-token targets (−100: not scored), and scored tokens per row. */
  readonly ids: Int32Array;
  readonly targets: Int32Array;
  readonly counts: Float32Array;
}

export interface PreferenceData {
  readonly pairs: number;
  readonly seq: number;
  readonly chosen: PreferenceRows;
  readonly rejected: PreferenceRows;
  /** Responses cut at `seq` tokens (counted per response). */
  readonly truncated: number;
}

/** Parse preference pairs; an error names file:line (bad JSON, missing field, a response with no token left). */
export function preferencePairs(text: string, file: string, tok: Tokenizer, seq: number): PreferenceData {
  const rows: { chosen: { ids: number[]; target: Uint8Array }; rejected: { ids: number[]; target: Uint8Array } }[] = [];
  let truncated = 0;
  forEachJsonlObject(text, file, (r, where) => {
    if (typeof r.prompt !== 'string' || typeof r.chosen !== 'string' || typeof r.rejected !== 'string') {
      throw new DataError(`${where}: expected {"prompt": string, "chosen": string, "rejected": string}`);
    }
    const side = (response: string, name: string) => {
      const full = tok.encode(r.prompt as string + response, { bos: true });
      if (full.length > seq + 1) truncated++;
      const e = jsonlExample(JSON.stringify({ prompt: r.prompt, completion: response }), where, tok, seq)!;
      if (!e.target.some((x) => x === 1)) throw new DataError(`${where}: the ${name} response has no token within ${seq} tokens (empty, or the prompt fills the row)`);
      return e;
    };
    rows.push({ chosen: side(r.chosen, 'chosen'), rejected: side(r.rejected, 'rejected') });
  });
  if (rows.length === 0) throw new DataError(`${file}: no preference pairs`);
  const build = (pick: 'chosen' | 'rejected'): PreferenceRows => {
    const ids = new Int32Array(rows.length * seq), targets = new Int32Array(rows.length * seq).fill(-100), counts = new Float32Array(rows.length);
    rows.forEach((p, n) => {
      const e = p[pick];
      for (let t = 0; t < seq && t < e.ids.length; t++) ids[n * seq + t] = e.ids[t]!;
      // Position t predicts token t + 1.
      for (let t = 0; t + 1 < e.ids.length && t < seq; t++) {
        if (e.target[t + 1]) { targets[n * seq + t] = e.ids[t + 1]!; counts[n]!++; }
      }
    });
    return { ids, targets, counts };
  };
  return { pairs: rows.length, seq, chosen: build('chosen'), rejected: build('rejected'), truncated };
}

/** Rows of `batch` pairs starting at pair `start` (wrapping): chosen rows first, then rejected, as the DPO graph reads them. */
export function preferenceBatch(d: PreferenceData, start: number, batch: number): { ids: Int32Array; targets: Int32Array; counts: Float32Array } {
  const T = d.seq, ids = new Int32Array(2 * batch * T), targets = new Int32Array(2 * batch * T), counts = new Float32Array(2 * batch);
  [d.chosen, d.rejected].forEach((side, s) => {
    for (let b = 0; b < batch; b++) {
      const p = (start + b) % d.pairs, row = s * batch + b;
      ids.set(side.ids.subarray(p * T, p * T + T), row * T);
      targets.set(side.targets.subarray(p * T, p * T + T), row * T);
      counts[row] = side.counts[p]!;
    }
  });
  return { ids, targets, counts };
}
