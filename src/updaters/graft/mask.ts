// Skill localisation by grafting (Panigrahi et al., 2023, "Task-Specific Skill Localization in Fine-tuned
// Language Models"): θ(s) = θ₀ + σ(s) ⊙ (θ_ft − θ₀), with mask logits s initialised so the top fraction of
// |θ_ft − θ₀| starts on (s = +init) and the rest off (s = −init); s is trained by its own gradient
// ∂L/∂s = ∂L/∂θ ⊙ (θ_ft − θ₀) ⊙ σ(s)(1 − σ(s)); the rounded mask 1[σ(s) > 0.5] is what is kept.

export const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

/** Mask logits: +init on the top `fraction` of |diff| entries (global over the given tensors), −init elsewhere. */
export function initialMaskLogits(diff: ReadonlyMap<string, Float32Array>, fraction: number, init = 3): Map<string, Float32Array> {
  if (!(fraction > 0 && fraction <= 1)) throw new RangeError(`graft fraction must be in (0, 1], got ${fraction}`);
  if (!(init > 0 && Number.isFinite(init))) throw new RangeError(`graft init logit must be > 0, got ${init}`);
  let total = 0;
  for (const d of diff.values()) total += d.length;
  // One typed array of magnitudes (a number[] would cost twice the memory and sort slower).
  const mags = new Float32Array(total);
  let o = 0;
  for (const d of diff.values()) for (let i = 0; i < d.length; i++) mags[o++] = Math.abs(d[i]!);
  mags.sort();
  const k = Math.max(1, Math.round(fraction * total));
  const thr = mags[total - k]!;
  // Entries above the threshold are on; ties at it are taken in tensor order, then index, until k are on.
  let ties = k;
  for (let i = total - k; i < total; i++) if (mags[i]! > thr) ties--;
  const out = new Map<string, Float32Array>();
  for (const [n, d] of diff) {
    out.set(n, Float32Array.from(d, (x) => {
      const a = Math.abs(x);
      if (a > thr) return init;
      if (a === thr && ties > 0) { ties--; return init; }
      return -init;
    }));
  }
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

/**
 * The rounded graft taken from the two models themselves: θ_ft where σ(s) > 0.5, θ₀ elsewhere. Bit for bit the
 * fine-tuned model when every logit is positive and the base when none is (θ₀ + 1·(θ_ft − θ₀) in f32 need not
 * round back to θ_ft).
 */
export function roundedGraft(base: Float32Array, tuned: Float32Array, logits: Float32Array): Float32Array {
  return Float32Array.from(base, (b, i) => (logits[i]! > 0 ? tuned[i]! : b));
}

/** The soft graft θ₀ + σ(s)·(θ_ft − θ₀), the point the mask trains at (differences taken in f64). */
export function softGraft(base: Float32Array, tuned: Float32Array, logits: Float32Array): Float32Array {
  return Float32Array.from(base, (b, i) => b + sigmoid(logits[i]!) * (tuned[i]! - b));
}
