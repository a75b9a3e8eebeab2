/**
 * deita's selection (Liu et al., 2024, "What makes good data for alignment?"): score every example by
 * complexity × quality, then walk them in score order and keep one only when its embedding's cosine
 * similarity to every example already kept is below a threshold (the "Repr Filter"), until `keep` are kept.
 * deita's scores come from trained scorer models; here the model's own signals stand in (README.md), and an
 * example whose IFD is ≥ 1 (the prompt does not help) comes after every other.
 */
import { cosine, fmt, type ItemSignals } from '../common/index.js';
import { checkKeep, type Selection } from '../common/selection.js';

export interface DeitaOptions {
  keep: number;
  /** Cosine-similarity threshold (default 0.9, as deita's). */
  threshold?: number;
}

/** Complexity: IFD. Quality: the model's geometric-mean probability of the response given the prompt, exp(−lossCond). */
export function deitaScores(s: ItemSignals): { complexity: number; quality: number; score: number } {
  const complexity = s.ifd, quality = Math.exp(-s.lossCond);
  return { complexity, quality, score: complexity * quality };
}

export function selectDeita(signals: readonly ItemSignals[], o: DeitaOptions): Selection {
  checkKeep(o.keep, signals.length);
  const threshold = o.threshold ?? 0.9;
  if (!(threshold > -1 && threshold <= 1)) throw new RangeError(`deita: threshold must be in (−1, 1], got ${threshold}`);
  const scores = signals.map(deitaScores);
  const order = signals.map((_, i) => i).sort((a, b) => Number(signals[a]!.ifd >= 1) - Number(signals[b]!.ifd >= 1) || scores[b]!.score - scores[a]!.score || a - b);
  const kept: number[] = [], report: string[] = [], dropped: { index: number; similarTo: number; cosine: number }[] = [];
  for (const i of order) {
    if (kept.length >= o.keep) break;
    let worst = -Infinity, near = -1;
    for (const j of kept) { const c = cosine(signals[i]!.embedding, signals[j]!.embedding); if (c > worst) { worst = c; near = j; } }
    const s = scores[i]!;
    if (worst >= threshold) {
      dropped.push({ index: i, similarTo: near, cosine: worst });
      report.push(`#${i + 1} dropped: score ${fmt(s.score)}, cosine ${fmt(worst)} to kept #${near + 1} ≥ ${threshold}`);
      continue;
    }
    kept.push(i);
    report.push(`#${i + 1} kept: score ${fmt(s.score)}${signals[i]!.ifd >= 1 ? ' (IFD ≥ 1, ranked last)' : ''} (complexity ${fmt(s.complexity)} × quality ${fmt(s.quality)})${near >= 0 ? `, nearest kept #${near + 1} cosine ${fmt(worst)}` : ''}`);
  }
  if (kept.length < o.keep) report.push(`only ${kept.length} examples pass the threshold ${threshold}; ${o.keep} were asked for`);
  kept.sort((a, b) => a - b);
  return { method: 'deita', kept, report, summary: { threshold, scores: kept.map((i) => ({ index: i, ...scores[i]! })), dropped } };
}
