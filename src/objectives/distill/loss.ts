/**
 * Cross-entropy against soft targets q from the ops every backend has: with class 0 as a hard target,
 * CE(s, 0) = mean_r [logsumexp(s_r) − s_r0] (stable), and Σ s ⊙ W with W = mask·(e₀ − q)/M adds
 * mean_r [s_r0 − Σ_v q_rv·s_rv]; the sum is mean_r [logsumexp(s_r) − Σ_v q_rv·s_rv] = mean_r −Σ_v q_rv·log p_rv,
 * whose gradient with respect to the logits is (p − q)/M on every scored row.
 */
import * as F from '../../graph/api.js';
import type { Tensor } from '../../graph/graph.js';

/** logits f32 [N, V]; classes i32 [N] (0 scored, −100 not); weights f32 [N, V] from softTargetInputs. */
export function softCrossEntropy(logits: Tensor, classes: Tensor, weights: Tensor): Tensor {
  return F.add(F.crossEntropy(logits, classes), F.sum(F.mul(logits, weights)));
}
