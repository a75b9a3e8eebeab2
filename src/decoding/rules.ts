/**
 * Rule-based product-of-experts decoding after Hewitt, Liu, Manning, Liang, "Instruction Following without
 * Instruction Tuning" (2024), §6: a hand-written "rule model" whose next-token distribution is combined with
 * the base model's as a product of experts, log p ∝ log_softmax(s_base) + log_softmax(s_rules). Its rules,
 * with the values of the authors' rule model:
 * 1. end of sequence: from `eosStart` to `eosEnd` generated tokens, EOS gets 3·scale·(n − start)/(end − start)
 *    (scale 5, range 0–250 tokens), so responses come to an end;
 * 2. token biases on every step, by token text (leading word-boundary markers stripped): "I" −5, "What" −5,
 *    "should" −6, "We" −3, "<" and "|" −4 (format markers copied from the prompt), "-", "*", "#", "##",
 *    newline and "!" +1;
 * 3. the first generated token: every token scored by its first character (a letter +1, punctuation −1,
 *    "I" −3) times 5, so a response starts with a word.
 * Token biases are matched by text, so the rules apply to any vocabulary.
 */
import type { GenerateOptions, LlamaRuntime } from '../model/runtime.js';
import { Sampler } from '../model/sampling.js';
import type { TokenizerData } from '../tokenizer/types.js';

export interface RuleOptions {
  /** Generated tokens at which the EOS ramp starts and reaches its top (default 0 and 250). */
  eosStart?: number;
  eosEnd?: number;
  /** Height of the EOS ramp (default 5; EOS gets 3 × this at the top). */
  scale?: number;
  /** Weight of the first-token scores (default 5). */
  firstWeight?: number;
  /** Biases by token text on every step (default: the authors' list above). */
  tokenBiases?: Readonly<Record<string, number>>;
}

const TOKEN_BIAS: Readonly<Record<string, number>> = { I: -5, What: -5, should: -6, We: -3, '<': -4, '|': -4, '-': 1, '*': 1, '#': 1, '##': 1, '\n': 1, '<0x0A>': 1, '!': 1 };

/** A token's text without the leading word-boundary marker (SentencePiece ▁, byte-level Ġ). */
function bare(t: string): string {
  return t.replace(/^[▁Ġ]/, '');
}

function firstScore(t: string): number {
  const s = bare(t);
  if (s === '') return 0;
  if (s === 'I') return -3;
  const c = s[0]!;
  if (/\p{L}/u.test(c)) return 1;
  if (/[.,:;!?<>[\]{}()"'`~@#$%^&*\-=+\\|/]/.test(c)) return -1;
  return 0;
}

export class RuleModel {
  private readonly always: Float32Array;
  private readonly first: Float32Array;
  private readonly eosId: number;
  private readonly o: Required<Omit<RuleOptions, 'tokenBiases'>>;

  constructor(tokenizer: TokenizerData, o: RuleOptions = {}) {
    this.o = { eosStart: o.eosStart ?? 0, eosEnd: o.eosEnd ?? 250, scale: o.scale ?? 5, firstWeight: o.firstWeight ?? 5 };
    if (!(this.o.eosEnd > this.o.eosStart && this.o.eosStart >= 0)) throw new RangeError(`rules: the EOS ramp needs 0 ≤ start < end (got ${this.o.eosStart}–${this.o.eosEnd})`);
    if (tokenizer.eosId === undefined) throw new Error('rules: the tokenizer has no end-of-sequence token');
    this.eosId = tokenizer.eosId;
    const V = tokenizer.tokens.length, biases = o.tokenBiases ?? TOKEN_BIAS;
    this.always = new Float32Array(V);
    this.first = new Float32Array(V);
    tokenizer.tokens.forEach((t, id) => {
      this.always[id] = biases[bare(t)] ?? biases[t] ?? 0;
      this.first[id] = this.o.firstWeight * firstScore(t);
    });
  }

  get size(): number { return this.always.length; }

  /** The rule model's logits before generated token number `n` (0-based). */
  logits(n: number): Float32Array {
    const out = Float32Array.from(n === 0 ? this.first : this.always);
    const { eosStart: a, eosEnd: b, scale } = this.o;
    if (n > a && n < b) out[this.eosId]! += 3 * scale * ((n - a) / (b - a));
    else if (n >= b) out[this.eosId]! += 3 * scale;
    return out;
  }
}

function logSoftmax(x: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) m = Math.max(m, x[i]!);
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.exp(x[i]! - m);
  const l = m + Math.log(s), out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i]! - l;
  return out;
}

/** Generate from the product of `base` and the rule model; returns the new tokens (the stop token excluded). */
export async function rulesGenerate(base: LlamaRuntime, rules: RuleModel, prompt: readonly number[], o: GenerateOptions = {}): Promise<number[]> {
  if (prompt.length === 0) throw new Error('generate needs at least one prompt token (e.g. BOS)');
  const maxTokens = o.maxTokens ?? 256, context = base.config.maxSeqLen;
  const cacheLen = Math.min(context, prompt.length + maxTokens);
  if (prompt.length >= cacheLen) throw new Error(`the prompt has ${prompt.length} tokens; the model's context is ${context}`);
  if (rules.size !== base.config.vocabSize) throw new Error(`rules: made for a vocabulary of ${rules.size} tokens, the model has ${base.config.vocabSize}`);
  const dec = await base.decoding(cacheLen, o.task !== undefined ? { task: o.task } : {});
  const stops = new Set(o.stopTokens ?? [base.checkpoint.tokenizer?.eosId ?? 2, base.checkpoint.tokenizer?.bosId ?? 1]);
  const sampler = new Sampler(o);
  const history = [...prompt], out: number[] = [];
  let feed: readonly number[] = prompt;
  while (out.length < maxTokens) {
    const lb = logSoftmax(await dec.feed(feed)), lr = logSoftmax(rules.logits(out.length));
    const s = new Float32Array(lb.length);
    for (let v = 0; v < s.length; v++) s[v] = lb[v]! + lr[v]!;
    const next = sampler.next(s, history);
    if (stops.has(next)) break;
    out.push(next);
    history.push(next);
    o.onToken?.(next);
    if (dec.position >= cacheLen) { if (out.length < maxTokens) o.onContextFull?.(context); break; }
    feed = [next];
  }
  return out;
}
