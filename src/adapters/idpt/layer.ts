/**
 * IDPT (instance-aware dynamic prompt tuning), for a causal language model:
 *
 *   u     = mean of the base embeddings of the row's context tokens       (host: instance.ts)
 *   h     = GELU(W₁ u + b₁)                                              W₁ [H, d]
 *   P(u)  = P₀ + reshape(W₂ h + b₂, [p, d])                               W₂ [p·d, H] = 0 at init
 *   input = [P(u); X_e]
 *
 * P₀ is a static prompt (prompt tuning's), the generator adds the instance's part; with W₂ = 0 IDPT starts
 * as prompt tuning with P₀.
 */
import * as F from '../../graph/api.js';
import type { Tensor } from '../../graph/graph.js';
import { INSTANCE_INPUT, VIRTUAL_SLOT_INPUT } from '../../model/names.js';
import { sampledVocabPrompt } from '../prompt-tuning/layer.js';
import type { BuildContext, EmbeddingsContext, InitContext, ParamStore } from '../types.js';
import type { IdptConfig } from './config.js';

export const IDPT_KEYS = { prompt: 'prompt_embeddings', w1: 'idpt_generator.w1', b1: 'idpt_generator.b1', w2: 'idpt_generator.w2', b2: 'idpt_generator.b2' } as const;

export function createIdptParams(ctx: InitContext<IdptConfig>): ParamStore {
  const c = ctx.config, D = ctx.model.dim, P = c.numVirtualTokens, H = c.generatorHidden;
  const prompt = sampledVocabPrompt(ctx, P);
  const bound = 1 / Math.sqrt(D);
  return new Map([
    [IDPT_KEYS.prompt, { shape: [P, D], data: prompt }],
    [IDPT_KEYS.w1, { shape: [H, D], data: Float32Array.from({ length: H * D }, () => (2 * ctx.random() - 1) * bound) }],
    [IDPT_KEYS.b1, { shape: [H], data: new Float32Array(H) }],
    [IDPT_KEYS.w2, { shape: [P * D, H], data: new Float32Array(P * D * H) }],
    [IDPT_KEYS.b2, { shape: [P * D], data: new Float32Array(P * D) }],
  ]);
}

export function idptEmbeddings(ctx: EmbeddingsContext, c: IdptConfig, b: BuildContext): Tensor {
  const g = ctx.graph, B = ctx.batch, P = c.numVirtualTokens;
  const p0 = b.param(IDPT_KEYS.prompt), D = p0.shape[1]!;
  const u = g.byName(INSTANCE_INPUT) ?? g.input(INSTANCE_INPUT, [B, D], 'f32');
  return g.within('idpt', () => {
    const h = F.gelu(F.add(F.matmul(u, b.param(IDPT_KEYS.w1), { transB: true }), b.param(IDPT_KEYS.b1)));
    const gen = F.add(F.matmul(h, b.param(IDPT_KEYS.w2), { transB: true }), b.param(IDPT_KEYS.b2)); // [B, P·D]
    const prompts = F.add(F.reshape(gen, [B, P, D]), F.reshape(p0, [1, P, D]));
    if (!ctx.decoding) return F.concat([prompts, ctx.x], 1);
    if (B !== 1) throw new Error('idpt: KV-cache decoding runs one row at a time');
    // One position per run, as in prompt tuning: slot s < P picks virtual token s, P the row's own token.
    const slot = g.byName(VIRTUAL_SLOT_INPUT) ?? g.input(VIRTUAL_SLOT_INPUT, [B, 1], 'i32');
    return F.embedding(F.concat([F.reshape(prompts, [P, D]), F.reshape(ctx.x, [B, D])], 0), slot);
  });
}
