/**
 * Generation for a mixed batch: every prompt continued with its own adapter (or the base), all rows in one
 * forward pass per new token. The pass reads the whole padded sequence (no KV cache: the decoder graph is
 * one row), so each step costs a forward over `prompt + maxTokens` positions; right padding never reaches a
 * real position, because attention is causal. For long generations with one adapter, `generate` with the
 * KV cache is faster.
 */
import { type GenerateOptions, GENERATE_RANGES, type LlamaRuntime } from '../../model/runtime.js';
import { Sampler } from '../../model/sampling.js';
import { checkOptions } from '../../util/ranges.js';

export interface MixedGenerateOptions extends Omit<GenerateOptions, 'task' | 'onToken'> {
  /** Called with each row's new token as it is produced. */
  onToken?: (row: number, id: number) => void;
}

/** Continue each prompt; `rowIds[r]` is row r's id from AdaptedModel.rowIds. Returns the new tokens per row (stop tokens excluded). */
export async function generateMixed(rt: LlamaRuntime, prompts: readonly (readonly number[])[], rowIds: readonly number[], o: MixedGenerateOptions = {}): Promise<number[][]> {
  checkOptions('generateMixed', o as Record<string, unknown>, GENERATE_RANGES);
  if (prompts.length === 0) throw new Error('generateMixed: no prompts');
  if (rowIds.length !== prompts.length) throw new RangeError(`generateMixed: ${rowIds.length} row ids for ${prompts.length} prompts`);
  const empty = prompts.findIndex((p) => p.length === 0);
  if (empty >= 0) throw new Error(`generateMixed: prompt ${empty} is empty (give at least BOS)`);
  const maxTokens = o.maxTokens ?? 256, B = prompts.length;
  const longest = Math.max(...prompts.map((p) => p.length));
  const context = rt.config.maxSeqLen;
  if (longest >= context) throw new Error(`generateMixed: a prompt has ${longest} tokens; the model's context is ${context}`);
  const T = Math.min(context, longest + maxTokens);
  const stops = new Set(o.stopTokens ?? [rt.checkpoint.tokenizer?.eosId ?? 2, rt.checkpoint.tokenizer?.bosId ?? 1]);
  const seqs = prompts.map((p) => [...p]), out = prompts.map(() => [] as number[]);
  const samplers = prompts.map(() => new Sampler(o)), done = prompts.map(() => false);
  const V = rt.config.vocabSize, ids = new Int32Array(B * T);
  while (done.some((d) => !d)) {
    ids.fill(0);
    seqs.forEach((s, r) => ids.set(s, r * T));
    const logits = await rt.logits(ids, B, T, rowIds);
    for (let r = 0; r < B; r++) {
      if (done[r]) continue;
      const at = seqs[r]!.length - 1;
      const next = samplers[r]!.next(logits.subarray((r * T + at) * V, (r * T + at + 1) * V), seqs[r]!);
      if (stops.has(next)) { done[r] = true; continue; }
      seqs[r]!.push(next);
      out[r]!.push(next);
      o.onToken?.(r, next);
      if (out[r]!.length >= maxTokens) done[r] = true;
      else if (seqs[r]!.length >= T) { done[r] = true; o.onContextFull?.(context); }
    }
  }
  return out;
}
