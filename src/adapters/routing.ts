/**
 * Graph pieces for methods that choose among several modules per token or per row (PHATGOOSE's experts,
 * FedIns' SSF pool): standardisation, a step function and a top-k mask, from elementwise ops only, so they
 * run on every backend without a sort kernel.
 */
import * as F from '../graph/api.js';
import type { Tensor } from '../graph/graph.js';

/** (x − mean) / √(var + 1e-12) over the last axis. */
export function standardise(x: Tensor): Tensor {
  const last = x.shape.length - 1;
  const centred = F.sub(x, F.mean(x, [last], true));
  return F.div(centred, F.sqrt(F.add(F.mean(F.mul(centred, centred), [last], true), F.fill(x.graph, [1], 1e-12))));
}

/** ½(1 + sign d), sign d = d/√(d² + 10⁻³⁰): exactly 0 or 1 in float32 unless d is 0 (then ½). */
export function step(d: Tensor): Tensor {
  const sign = F.div(d, F.sqrt(F.add(F.mul(d, d), F.fill(d.graph, [1], 1e-30))));
  return F.scale(F.add(sign, F.fill(d.graph, [1], 1)), 0.5);
}

/**
 * 1 where a score is among its row's k largest, 0 elsewhere; scores [N, E]. A score's rank is the number of
 * scores above it, Σ_j step(c_j − c_e) (the j = e term contributes ½, taken off); tied scores share a place.
 */
export function topKMask(scores: Tensor, k: number): Tensor {
  const [N, E] = scores.shape as [number, number];
  const diff = F.sub(F.reshape(scores, [N, 1, E]), F.reshape(scores, [N, E, 1])); // [N, e, j] = c_j − c_e
  const rank = F.sub(F.sum(step(diff), [2]), F.fill(scores.graph, [1], 0.5));
  return step(F.sub(F.fill(scores.graph, [1], k - 0.5), rank));
}

/** Cosine similarity of every row of a [N, D] with every row of b [E, D]: [N, E]. */
export function cosines(a: Tensor, b: Tensor): Tensor {
  const unit = (x: Tensor) => F.div(x, F.sqrt(F.add(F.sum(F.mul(x, x), [1], true), F.fill(x.graph, [1], 1e-12))));
  return F.matmul(unit(a), unit(b), { transB: true });
}
