/**
 * The DPO objective (Rafailov et al., 2023, eq. 7) as graph ops:
 *   L = −E log σ(β · [(log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) − log π_ref(y_l|x))])
 * with log π(y|x) the summed log-probability of the response tokens.
 */
import * as F from '../../graph/api.js';
import type { Graph, Tensor } from '../../graph/graph.js';
import type { LlamaGraph } from '../../model/llama.js';

/**
 * Summed log-probability of each row's scored tokens, f32 [R]: a row's cross-entropy (the mean over its
 * scored targets) times their count. targets: i32 [R·T] (−100: not scored); counts: f32 [R], each ≥ 1.
 */
export function sequenceLogProbs(net: LlamaGraph, targets: Tensor, counts: Tensor, rows: number, seq: number, vocab: number): Tensor {
  const logits = net.virtualTokens ? F.slice(net.logits, 1, net.virtualTokens, net.virtualTokens + seq) : net.logits;
  const perRow: Tensor[] = [];
  for (let i = 0; i < rows; i++) {
    const li = F.reshape(F.slice(logits, 0, i, i + 1), [seq, vocab]);
    perRow.push(F.reshape(F.crossEntropy(li, F.slice(targets, 0, i * seq, (i + 1) * seq)), [1]));
  }
  return F.neg(F.mul(F.concat(perRow, 0), counts));
}

/**
 * The DPO loss of `pairs` preference pairs from the policy's and the reference's sequence log-probabilities
 * (f32 [2·pairs]: chosen rows first, then rejected). Also returns the margins z (f32 [pairs]), the
 * implicit reward differences β·(…) the loss pushes up. −log σ(z) is computed as a two-class
 * cross-entropy with logits [z, 0] and class 0, which is stable for any z.
 */
export function dpoLoss(g: Graph, policy: Tensor, reference: Tensor, pairs: number, beta: number, zeroClass: Tensor): { loss: Tensor; margins: Tensor } {
  const side = (t: Tensor, s: number) => F.slice(t, 0, s * pairs, (s + 1) * pairs);
  const chosen = F.sub(side(policy, 0), side(reference, 0)), rejected = F.sub(side(policy, 1), side(reference, 1));
  const margins = F.scale(F.sub(chosen, rejected), beta);
  const logits = F.concat([F.reshape(margins, [pairs, 1]), F.fill(g, [pairs, 1], 0)], 1);
  return { loss: F.crossEntropy(logits, zeroClass), margins };
}
