import type { AdamWHyper } from '../../backend.js';
import type { FloatArray } from './types.js';

/**
 * AdamW with decoupled weight decay (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019,
 * Algorithm 2), as torch.optim.AdamW: p ← p − lr·wd·p; m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
 * p ← p − lr · m̂ / (√v̂ + ε) with bias-corrected m̂, v̂.
 */
export function adamw(p: FloatArray, g: FloatArray, m: FloatArray, v: FloatArray, h: AdamWHyper): void {
  const bc1 = 1 - Math.pow(h.beta1, h.step), bc2 = 1 - Math.pow(h.beta2, h.step);
  const decay = 1 - h.lr * h.weightDecay;
  // Stryker disable next-line EqualityOperator: `i <= p.length` only adds writes one past the end of typed arrays, which JavaScript ignores
  for (let i = 0; i < p.length; i++) {
    const gi = g[i]! * h.gradScale;
    const mi = h.beta1 * m[i]! + (1 - h.beta1) * gi;
    const vi = h.beta2 * v[i]! + (1 - h.beta2) * gi * gi;
    m[i] = mi; v[i] = vi;
    p[i] = p[i]! * decay - (h.lr * (mi / bc1)) / (Math.sqrt(vi / bc2) + h.eps);
  }
}
