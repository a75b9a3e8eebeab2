// Skill localisation by grafting (Panigrahi et al., 2023, "Task-Specific Skill Localization in Fine-tuned
// Language Models"): θ(s) = θ₀ + σ(s) ⊙ (θ_ft − θ₀), with mask logits s initialised so the top fraction of
// |θ_ft − θ₀| starts on (s = +init) and the rest off (s = −init); s is trained by its own gradient
// ∂L/∂s = ∂L/∂θ ⊙ (θ_ft − θ₀) ⊙ σ(s)(1 − σ(s)); the rounded mask 1[σ(s) > 0.5] is what is kept.

export const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

/** Mask logits: +init on the top `fraction` of |diff| entries (global over the given tensors), −init elsewhere. */
export function initialMaskLogits(diff: ReadonlyMap<string, Float32Array>, fraction: number, init = 3): Map<string, Float32Array> {
  if (!(fraction > 0 && fraction <= 1)) throw new Error(`graft fraction must be in (0, 1], got ${fraction}`);
  const mags: number[] = [];
  for (const d of diff.values()) for (const x of d) mags.push(Math.abs(x));
  mags.sort((a, b) => b - a);
  const k = Math.max(1, Math.round(fraction * mags.length));
  const thr = mags[k - 1];
  const out = new Map<string, Float32Array>();
  let on = 0;
  for (const [n, d] of diff) out.set(n, Float32Array.from(d, (x) => (Math.abs(x) >= thr && on++ < k ? init : -init)));
  return out;
}

/** Gradient of the loss with respect to the mask logits, from the gradient with respect to the grafted weights. */
export function maskLogitGradient(gradTheta: Float32Array, diff: Float32Array, logits: Float32Array): Float32Array {
  return Float32Array.from(logits, (s, i) => { const p = sigmoid(s); return gradTheta[i] * diff[i] * p * (1 - p); });
}

/** The grafted weights θ₀ + 1[σ(s) > 0.5]·diff (rounded) or θ₀ + σ(s)·diff (soft). */
export function graft(base: Float32Array, diff: Float32Array, logits: Float32Array, rounded: boolean): Float32Array {
  return Float32Array.from(base, (b, i) => b + (rounded ? (logits[i] > 0 ? 1 : 0) : sigmoid(logits[i])) * diff[i]);
}
