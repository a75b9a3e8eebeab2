/**
 * CPT's projected gradient step: after every update each context token's embedding is pulled back into
 * an L2 ball around where it started, ‖e_i − e_i⁰‖ ≤ ε_i, by scaling its change (the exact Euclidean
 * projection onto the ball). ε_i depends on the token's role, scaled by √(d/2048) so that one setting
 * means the same for every width (the paper's and PEFT's normalisation).
 */
import type { CptConfig } from './config.js';

/** Labels and padding get this bound: they stay where they started (PEFT's minimum epsilon). */
export const FIXED_EPSILON = 1e-10;

/** ε per context token for a model of width `dim`. */
export function tokenEpsilons(c: CptConfig, dim: number): Float64Array {
  const scale = Math.sqrt(dim / 2048);
  return Float64Array.from(c.cptTokensTypeMask, (t) => {
    const role = t > 0 ? t % 4 : 0;
    return role === 1 || role === 3 ? c.projectionFormatEpsilon * scale : role === 2 ? c.projectionEpsilon * scale : FIXED_EPSILON;
  });
}

/** Project `values` [n, dim] in place so that every row is within eps[row] of `anchor`'s row. */
export function projectRows(values: Float32Array, anchor: Float32Array, eps: Float64Array, dim: number): void {
  for (let r = 0; r < eps.length; r++) {
    let norm2 = 0;
    for (let j = 0; j < dim; j++) norm2 += (values[r * dim + j]! - anchor[r * dim + j]!) ** 2;
    const norm = Math.sqrt(norm2);
    if (norm <= eps[r]!) continue;
    const f = eps[r]! / norm;
    for (let j = 0; j < dim; j++) values[r * dim + j] = anchor[r * dim + j]! + (values[r * dim + j]! - anchor[r * dim + j]!) * f;
  }
}
