/** Learning-rate multipliers: linear warmup, then cosine, linear or constant decay. */
export const DECAY_KINDS = ['cosine', 'linear', 'constant'] as const;
export type DecayKind = (typeof DECAY_KINDS)[number];

/** Multiplier at 1-based step s of `total`: s/warmup during warmup, then the decay to `minRatio`. */
export function lrSchedule(kind: DecayKind, total: number, warmup = 0, minRatio = 0): (step: number) => number {
  return (s) => {
    const inWarmup = warmup > 0 &&
      // Stryker disable next-line EqualityOperator: at s = warmup both branches give 1 (s/warmup, and the decay at progress 0), so `<` is equivalent
      s <= warmup;
    if (inWarmup) return s / warmup;
    if (kind === 'constant') return 1;
    const progress = Math.min(1, (s - warmup) / Math.max(1, total - warmup));
    const shape = kind === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * progress)) : 1 - progress;
    return minRatio + (1 - minRatio) * shape;
  };
}
