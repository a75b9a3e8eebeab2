/**
 * Proxy-tuning (Liu, Han, Wang, Tsvetkov, Choi, Smith, "Tuning Language Models by Proxy", COLM 2024, eq. 1):
 * decode a base model with its logits shifted by the difference a tuned small model (the expert) makes to
 * its untuned version (the anti-expert): s = s_base + α·(s_expert − s_anti), then sample from softmax(s).
 * The three models keep their own KV caches and must share one tokenizer.
 */
import type { LlamaCheckpoint } from '../formats/checkpoint.js';
import type { GenerateOptions, LlamaRuntime } from '../model/runtime.js';
import { Sampler } from '../model/sampling.js';

/** Refuses models that do not share a tokenizer (vocabulary size, and token strings where both carry them). */
export function checkSameTokenizer(a: LlamaCheckpoint, b: LlamaCheckpoint, what: string): void {
  if (a.config.vocabSize !== b.config.vocabSize) throw new Error(`${what} has ${b.config.vocabSize} tokens in its vocabulary, the base ${a.config.vocabSize}: proxy-tuning needs one tokenizer`);
  const [ta, tb] = [a.tokenizer?.tokens, b.tokenizer?.tokens];
  if (ta && tb) {
    const i = ta.findIndex((t, k) => t !== tb[k]);
    if (i >= 0) throw new Error(`${what}'s token ${i} is ${JSON.stringify(tb[i])}, the base's ${JSON.stringify(ta[i])}: proxy-tuning needs one tokenizer`);
  }
}

export interface ProxyOptions extends GenerateOptions {
  /** α, how much of the expert's change is applied (default 1). */
  alpha?: number;
}

/** Generate from `base` steered by expert − anti-expert; returns the new tokens (the stop token excluded). */
export async function proxyGenerate(base: LlamaRuntime, expert: LlamaRuntime, anti: LlamaRuntime, prompt: readonly number[], o: ProxyOptions = {}): Promise<number[]> {
  const alpha = o.alpha ?? 1;
  if (!Number.isFinite(alpha)) throw new RangeError(`proxy alpha must be a finite number (got ${alpha})`);
  checkSameTokenizer(base.checkpoint, expert.checkpoint, 'the proxy expert');
  checkSameTokenizer(base.checkpoint, anti.checkpoint, 'the proxy anti-expert');
  if (prompt.length === 0) throw new Error('generate needs at least one prompt token (e.g. BOS)');
  const maxTokens = o.maxTokens ?? 256;
  const context = Math.min(base.config.maxSeqLen, expert.config.maxSeqLen, anti.config.maxSeqLen);
  const cacheLen = Math.min(context, prompt.length + maxTokens);
  if (prompt.length >= cacheLen) throw new Error(`the prompt has ${prompt.length} tokens; the models' shortest context is ${context}`);
  // `task` goes to the models whose adapters route by task (a Poly expert).
  const routed = (rt: LlamaRuntime) => (o.task !== undefined && rt.hooks?.tasks !== undefined ? { task: o.task } : {});
  const [db, de, da] = await Promise.all([base.decoding(cacheLen, routed(base)), expert.decoding(cacheLen, routed(expert)), anti.decoding(cacheLen, routed(anti))]);
  const stops = new Set(o.stopTokens ?? [base.checkpoint.tokenizer?.eosId ?? 2, base.checkpoint.tokenizer?.bosId ?? 1]);
  const sampler = new Sampler(o);
  const history = [...prompt], out: number[] = [];
  let feed: readonly number[] = prompt;
  while (out.length < maxTokens) {
    const [lb, le, la] = [await db.feed(feed), await de.feed(feed), await da.feed(feed)];
    const s = new Float32Array(lb.length);
    for (let v = 0; v < s.length; v++) s[v] = lb[v]! + alpha * (le[v]! - la[v]!);
    const next = sampler.next(s, history);
    if (stops.has(next)) break;
    out.push(next);
    history.push(next);
    o.onToken?.(next);
    if (db.position >= cacheLen) { if (out.length < maxTokens) o.onContextFull?.(context); break; }
    feed = [next];
  }
  return out;
}
