/**
 * Next-token choice from logits: greedy, temperature, top-k, top-p (nucleus), repetition penalty, and
 * Mirostat 2.0 (Basu et al., "Mirostat: A Neural Text Decoding Algorithm that Directly Controls
 * Perplexity", ICLR 2021, Algorithm 2: truncate tokens whose surprise exceeds μ, sample, then
 * μ ← μ − η·(surprise − τ)).
 */
import type { Range } from '../util/ranges.js';
import { seededRandom } from '../util/random.js';

export interface SamplingOptions {
  /** 0 (default) is greedy. */
  temperature?: number;
  /** Keep the k most likely tokens (0: all). */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p (1: all). */
  topP?: number;
  /** Divide positive logits (multiply negative ones) of tokens already seen by this (1: off), as in CTRL. */
  repetitionPenalty?: number;
  /** Mirostat 2.0 target surprise τ in bits; enables Mirostat (top-k/top-p are then ignored). */
  mirostatTau?: number;
  /** Mirostat learning rate η (default 0.1). */
  mirostatEta?: number;
  seed?: number;
}

/** The range of each sampling option (the command line's flags use the same ranges). */
export const SAMPLING_RANGES = {
  temperature: { min: 0 },
  topK: { integer: true, min: 0 },
  topP: { above: 0, max: 1 },
  repetitionPenalty: { above: 0 },
  mirostatTau: { above: 0 },
  mirostatEta: { above: 0 },
  seed: { integer: true },
} satisfies Record<string, Range>;

export class Sampler {
  private mu: number;
  private readonly random: () => number;
  constructor(private readonly o: SamplingOptions = {}) {
    this.mu = 2 * (o.mirostatTau ?? 0);
    this.random = seededRandom(o.seed ?? 0x5eed);
  }

  /** Pick a token from one row of logits; `history` is the tokens so far (for the repetition penalty). */
  next(logitsRow: ArrayLike<number>, history: readonly number[] = []): number {
    const V = logitsRow.length;
    const logits = Float64Array.from(logitsRow);
    const pen = this.o.repetitionPenalty ?? 1;
    if (pen !== 1) for (const t of new Set(history)) if (t >= 0 && t < V) logits[t] = logits[t]! > 0 ? logits[t]! / pen : logits[t]! * pen;
    const temp = this.o.temperature ?? 0;
    if (temp <= 0 && this.o.mirostatTau === undefined) return argmax(logits);
    const probs = softmax(logits, temp > 0 ? temp : 1);
    const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => probs[b]! - probs[a]!);
    let keep = V;
    if (this.o.mirostatTau !== undefined) {
      // Keep tokens whose surprise −log2 p is below μ (always at least one).
      keep = 0;
      while (keep < V && -Math.log2(probs[order[keep]!]!) <= this.mu) keep++;
      keep = Math.max(1, keep);
    } else {
      if (this.o.topK && this.o.topK > 0) keep = Math.min(keep, this.o.topK);
      const topP = this.o.topP ?? 1;
      if (topP < 1) {
        let acc = 0, n = 0;
        while (n < keep) { acc += probs[order[n]!]!; n++; if (acc >= topP) break; }
        keep = n;
      }
    }
    let total = 0;
    for (let i = 0; i < keep; i++) total += probs[order[i]!]!;
    let r = this.random() * total, pick = order[keep - 1]!;
    for (let i = 0; i < keep; i++) {
      r -= probs[order[i]!]!;
      if (r <= 0) { pick = order[i]!; break; }
    }
    if (this.o.mirostatTau !== undefined) {
      // Surprise under the model's own distribution (not the truncated one): that is the quantity whose
      // average, the log-perplexity of the text, Mirostat controls.
      const surprise = -Math.log2(probs[pick]!);
      this.mu -= (this.o.mirostatEta ?? 0.1) * (surprise - this.o.mirostatTau);
    }
    return pick;
  }

  /** Current Mirostat threshold μ (bits). */
  get mirostatMu(): number { return this.mu; }
}

export function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}

export function softmax(logits: ArrayLike<number>, temperature = 1): Float64Array {
  let mx = -Infinity;
  for (let i = 0; i < logits.length; i++) mx = Math.max(mx, logits[i]!);
  const out = new Float64Array(logits.length);
  let z = 0;
  for (let i = 0; i < logits.length; i++) { out[i] = Math.exp((logits[i]! - mx) / temperature); z += out[i]!; }
  for (let i = 0; i < out.length; i++) out[i]! /= z;
  return out;
}
