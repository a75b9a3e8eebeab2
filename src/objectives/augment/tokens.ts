/**
 * Token-level augmentation in the manner of EDA (Wei & Zou, 2019, "EDA: Easy Data Augmentation Techniques
 * for Boosting Performance on Text Classification Tasks"), on token ids instead of words: random
 * insertion (a token of the same example inserted at a random position), random swap of two positions,
 * and random deletion (each token with probability p). The first token (BOS) stays in place.
 */
import type { Example } from '../../data/dataset.js';
import { seededRandom } from '../../util/random.js';

export interface TokenAugmentOptions {
  /** Insertions per example, as a fraction of its length (EDA's α_ri; default 0). */
  insert?: number;
  /** Swaps per example, as a fraction of its length (α_rs; default 0). */
  swap?: number;
  /** Probability that each token is deleted (p_rd; default 0). */
  delete?: number;
  /** Augmented copies added per example (EDA's n_aug; default 1). */
  copies?: number;
  seed?: number;
}

/** One augmented view of a token sequence (ids and their target flags move together). */
export function augmentTokens(ids: readonly number[], target: Uint8Array, o: TokenAugmentOptions, rand: () => number): { ids: number[]; target: Uint8Array } {
  const head = ids.slice(0, 1), headT = Array.from(target.subarray(0, 1));
  let body = ids.slice(1), bodyT = Array.from(target.subarray(1));
  const n = body.length;
  const count = (frac: number | undefined) => (frac ? Math.max(1, Math.round(frac * n)) : 0);
  for (let k = count(o.swap); k > 0 && body.length >= 2; k--) {
    const i = Math.floor(rand() * body.length), j = Math.floor(rand() * body.length);
    [body[i], body[j]] = [body[j]!, body[i]!];
    [bodyT[i], bodyT[j]] = [bodyT[j]!, bodyT[i]!];
  }
  for (let k = count(o.insert); k > 0 && body.length >= 1; k--) {
    const from = Math.floor(rand() * body.length), at = Math.floor(rand() * (body.length + 1));
    body.splice(at, 0, body[from]!);
    bodyT.splice(at, 0, bodyT[from]!);
  }
  if (o.delete) {
    const keep = body.map(() => rand() >= o.delete!);
    // EDA keeps one word when every word would go.
    if (!keep.some(Boolean) && body.length) keep[Math.floor(rand() * body.length)] = true;
    body = body.filter((_, i) => keep[i]);
    bodyT = bodyT.filter((_, i) => keep[i]);
  }
  return { ids: [...head, ...body], target: Uint8Array.from([...headT, ...bodyT]) };
}

/** The examples followed by `copies` augmented copies of each (EDA's offline augmentation). */
export function augmentExamples(examples: readonly Example[], o: TokenAugmentOptions): Example[] {
  for (const k of ['insert', 'swap', 'delete'] as const) {
    const v = o[k];
    if (v !== undefined && !(v >= 0 && v <= 1)) throw new RangeError(`augmentation ${k} must be in [0, 1] (got ${v})`);
  }
  const copies = o.copies ?? 1;
  if (!(Number.isInteger(copies) && copies >= 0)) throw new RangeError(`augmentation copies must be a whole number ≥ 0 (got ${copies})`);
  const rand = seededRandom(o.seed ?? 1);
  const out: Example[] = [...examples];
  for (let c = 0; c < copies; c++) for (const e of examples) out.push(augmentTokens(e.ids, e.target, o, rand));
  return out;
}
