/**
 * Prompt tuning (Lester, Al-Rfou, Constant, "The Power of Scale for Parameter-Efficient Prompt Tuning",
 * EMNLP 2021, §2): a learned prompt P_e ∈ R^{p×d} is concatenated before the embedded input,
 * [P_e; X_e] ∈ R^{(p+n)×d}, and only P_e trains. Initialisations of §2.1 / §3.2: random uniform
 * [−0.5, 0.5], the embeddings of sampled vocabulary tokens, or of a text (PEFT's TEXT init, repeated to
 * length). In a KV-cache decoding graph (one position per run) the virtual tokens are fed first, one per run,
 * by the runtime through the slot input (ModelHooks.embeddings).
 */
import * as F from '../../graph/api.js';
import type { Tensor } from '../../graph/graph.js';
import { VIRTUAL_SLOT_INPUT } from '../../model/llama.js';
import { createTokenizer } from '../../tokenizer/index.js';
import { TokenType } from '../../tokenizer/types.js';
import type { BuildContext, EmbeddingsContext, InitContext, ParamStore } from '../types.js';
import type { PromptTuningConfig } from './config.js';
import { tensorF32 } from '../../formats/checkpoint.js';
import { modelModules } from '../targets.js';

export const PROMPT_KEY = 'prompt_embeddings';

export function createPromptParams(ctx: InitContext<PromptTuningConfig>): ParamStore {
  const c = ctx.config, P = c.numVirtualTokens, D = ctx.model.dim;
  const data = new Float32Array(P * D);
  if (c.promptInit === 'random') {
    for (let i = 0; i < data.length; i++) data[i] = ctx.random() - 0.5;
  } else {
    // The token embedding under the family's name (`model.embed_tokens`, GPT-2's `transformer.wte`).
    const table = tensorF32(ctx.baseWeight(modelModules(ctx.model).find((m) => m.kind === 'embedding')!.name));
    let ids: number[];
    if (c.promptInit === 'text') {
      if (!ctx.tokenizer) throw new Error('prompt-tuning: init text needs the model\'s tokenizer');
      const text = createTokenizer(ctx.tokenizer).encode(c.initText!, { bos: false });
      if (text.length === 0) throw new Error('prompt-tuning: initText encodes to no tokens');
      ids = Array.from({ length: P }, (_, i) => text[i % text.length]!);
    } else {
      ids = sampledVocabIds(ctx, P);
    }
    ids.forEach((id, i) => data.set(table.subarray(id * D, id * D + D), i * D));
  }
  return new Map([[PROMPT_KEY, { shape: [P, D], data }]]);
}

/** `count` random ordinary vocabulary tokens (no control or byte tokens), drawn with the context's generator. */
function sampledVocabIds(ctx: InitContext<unknown>, count: number): number[] {
  const types = ctx.tokenizer?.types;
  const ok = (id: number) => !types || types[id] === TokenType.NORMAL;
  const pool = Array.from({ length: ctx.model.vocabSize }, (_, i) => i).filter(ok);
  return Array.from({ length: count }, () => pool[Math.floor(ctx.random() * pool.length)]!);
}

/**
 * A [count, d] prompt started at the embeddings of random ordinary vocabulary tokens (prompt tuning's
 * sampled-vocabulary init), for the prompt methods that start from one (EPT, IDPT).
 */
export function sampledVocabPrompt(ctx: InitContext<unknown>, count: number): Float32Array {
  const D = ctx.model.dim, table = tensorF32(ctx.baseWeight(modelModules(ctx.model).find((m) => m.kind === 'embedding')!.name));
  const out = new Float32Array(count * D);
  sampledVocabIds(ctx, count).forEach((id, i) => out.set(table.subarray(id * D, id * D + D), i * D));
  return out;
}

export function promptEmbeddings(ctx: EmbeddingsContext, c: PromptTuningConfig, b: BuildContext): Tensor {
  const prompt = b.param(PROMPT_KEY), g = ctx.graph, [P, D] = [c.numVirtualTokens, prompt.shape[1]!];
  return g.within('prompt_tuning', () => {
    if (!ctx.decoding) return F.concat([F.broadcastTo(F.reshape(prompt, [1, P, D]), [ctx.batch, P, D]), ctx.x], 1);
    // One position per run: row s < P of [prompt; this run's token embeddings] is virtual token s, row P + b batch row b's token.
    const slot = g.byName(VIRTUAL_SLOT_INPUT) ?? g.input(VIRTUAL_SLOT_INPUT, [ctx.batch, 1], 'i32');
    return F.embedding(F.concat([prompt, F.reshape(ctx.x, [ctx.batch, D])], 0), slot);
  });
}
