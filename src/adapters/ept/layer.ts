/**
 * EPT (efficient prompt tuning by multi-space projection and prompt fusion), as read here:
 *
 *   L(z)  = z + (z A) B                         A [d, r], B [r, d]; B = 0 at init
 *   Q     = L(P)                                P [p, d]: the short soft prompt (prompt fusion: the
 *                                               low-rank matrices enrich the prompt they update the input with)
 *   g     = softmax(W_g · mean_rows(Q))         W_g [N, d]; W_g = 0 at init (equal weights)
 *   P'    = Q + Σ_k g_k (Q U_k) V_k             U_k [d, k], V_k [k, d]; V = 0 at init
 *   input = [P'; L(X_e)]
 *
 * At init L and the projections are the identity, so EPT starts as prompt tuning with a short prompt.
 * L acts token by token, so KV-cache decoding applies it to each new token as it comes.
 */
import * as F from '../../graph/api.js';
import type { Tensor } from '../../graph/graph.js';
import { VIRTUAL_SLOT_INPUT } from '../../model/names.js';
import { sampledVocabPrompt } from '../prompt-tuning/layer.js';
import type { BuildContext, EmbeddingsContext, InitContext, ParamStore } from '../types.js';
import type { EptConfig } from './config.js';

export const KEYS = {
  prompt: 'prompt_embeddings', lowRankA: 'ept_lora_A', lowRankB: 'ept_lora_B',
  gate: 'ept_gate', spaceU: 'ept_space_U', spaceV: 'ept_space_V',
} as const;

export function createEptParams(ctx: InitContext<EptConfig>): ParamStore {
  const c = ctx.config, D = ctx.model.dim, P = c.numVirtualTokens;
  if (c.r > D || c.spaceRank > D) throw new Error(`ept: r ${c.r} and spaceRank ${c.spaceRank} must not exceed the model width ${D}`);
  const prompt = sampledVocabPrompt(ctx, P);
  // A and U: uniform with LoRA's Kaiming bound 1/√d; B, V and the gate: zero, so the start is the identity.
  const bound = 1 / Math.sqrt(D);
  const uniform = (n: number) => Float32Array.from({ length: n }, () => (2 * ctx.random() - 1) * bound);
  return new Map([
    [KEYS.prompt, { shape: [P, D], data: prompt }],
    [KEYS.lowRankA, { shape: [D, c.r], data: uniform(D * c.r) }],
    [KEYS.lowRankB, { shape: [c.r, D], data: new Float32Array(c.r * D) }],
    [KEYS.gate, { shape: [c.numSpaces, D], data: new Float32Array(c.numSpaces * D) }],
    [KEYS.spaceU, { shape: [c.numSpaces, D, c.spaceRank], data: uniform(c.numSpaces * D * c.spaceRank) }],
    [KEYS.spaceV, { shape: [c.numSpaces, c.spaceRank, D], data: new Float32Array(c.numSpaces * c.spaceRank * D) }],
  ]);
}

/** The prompt after fusion and the gated multi-space projection, [p, d]; and L for the input. */
function eptParts(c: EptConfig, b: BuildContext): { prompt: Tensor; lowRank: (z: Tensor) => Tensor } {
  const A = b.param(KEYS.lowRankA), B = b.param(KEYS.lowRankB), D = A.shape[0]!;
  const lowRank = (z: Tensor): Tensor => {
    const flat = F.reshape(z, [z.shape.reduce((x, y) => x * y, 1) / D, D]);
    return F.reshape(F.add(flat, F.matmul(F.matmul(flat, A), B)), z.shape);
  };
  const q = lowRank(b.param(KEYS.prompt));
  const logits = F.matmul(F.mean(q, [0], true), b.param(KEYS.gate), { transB: true }); // [1, N]
  const e = F.exp(logits);
  const gates = F.div(e, F.sum(e, [1], true));
  const U = b.param(KEYS.spaceU), V = b.param(KEYS.spaceV), k = c.spaceRank;
  let prompt = q;
  for (let s = 0; s < c.numSpaces; s++) {
    const u = F.reshape(F.slice(U, 0, s, s + 1), [D, k]), v = F.reshape(F.slice(V, 0, s, s + 1), [k, D]);
    prompt = F.add(prompt, F.mul(F.matmul(F.matmul(q, u), v), F.slice(gates, 1, s, s + 1)));
  }
  return { prompt, lowRank };
}

export function eptEmbeddings(ctx: EmbeddingsContext, c: EptConfig, b: BuildContext): Tensor {
  const g = ctx.graph;
  return g.within('ept', () => {
    const { prompt, lowRank } = eptParts(c, b);
    const P = c.numVirtualTokens, D = prompt.shape[1]!, x = lowRank(ctx.x);
    if (!ctx.decoding) return F.concat([F.broadcastTo(F.reshape(prompt, [1, P, D]), [ctx.batch, P, D]), x], 1);
    // One position per run, as in prompt tuning: slot s < P picks virtual token s, P + b batch row b's token.
    const slot = g.byName(VIRTUAL_SLOT_INPUT) ?? g.input(VIRTUAL_SLOT_INPUT, [ctx.batch, 1], 'i32');
    return F.embedding(F.concat([prompt, F.reshape(x, [ctx.batch, D])], 0), slot);
  });
}
