/**
 * CDAS, Complexity and Diversity Aware Sampling (CodeACT, Lv et al., 2024): cluster the examples by their
 * embeddings with k-means (diversity), then take from every cluster, in proportion to its size, the examples
 * of highest complexity, measured by the model's own instruction-following difficulty (IFD; an IFD ≥ 1 ranks
 * after every IFD < 1, see byIfd). See README.md.
 */
import { byIfd, fmt, type ItemSignals, kmeans, proportional } from '../common/index.js';
import { checkKeep, type Selection } from '../common/selection.js';

export interface CdasOptions {
  keep: number;
  /** k-means clusters (default: min(keep, ⌈√n⌉)). */
  clusters?: number;
  seed?: number;
}

export function selectCdas(signals: readonly ItemSignals[], o: CdasOptions): Selection {
  const n = signals.length;
  checkKeep(o.keep, n);
  const k = o.clusters ?? Math.min(o.keep, Math.ceil(Math.sqrt(n)));
  if (!Number.isInteger(k) || k < 1 || k > o.keep) throw new RangeError(`cdas: clusters must be an integer in 1..keep (${o.keep}), got ${k}`);
  const km = kmeans(signals.map((s) => s.embedding), k, o.seed ?? 0);
  // Every cluster gets at least one place (k ≤ keep), the rest in proportion to its size.
  const base = km.sizes.map((s): number => (s > 0 ? 1 : 0));
  const extra = proportional(km.sizes.map((s, c) => s - base[c]!), o.keep - base.reduce((a, b) => a + b, 0));
  const quota = base.map((b, c) => b + extra[c]!);
  const kept: number[] = [], report: string[] = [], clusters: Record<string, unknown>[] = [];
  for (let c = 0; c < k; c++) {
    const members = signals.map((_, i) => i).filter((i) => km.assign[i] === c).sort((a, b) => byIfd(signals[a]!, signals[b]!) || a - b);
    const take = members.slice(0, quota[c]);
    kept.push(...take);
    report.push(`cluster ${c}: ${members.length} example${members.length === 1 ? '' : 's'}, kept ${take.length} of highest IFD (below 1 first): ${take.map((i) => `#${i + 1} (IFD ${fmt(signals[i]!.ifd)})`).join(', ')}`);
    clusters.push({ cluster: c, size: members.length, kept: take, ifd: take.map((i) => signals[i]!.ifd) });
  }
  kept.sort((a, b) => a - b);
  return { method: 'cdas', kept, report, summary: { clusters, kmeansIterations: km.iterations } };
}
