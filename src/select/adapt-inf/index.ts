/**
 * Adapt-∞ (Maharana et al., 2024): lifelong data selection over a stream of tasks. When a task arrives its
 * examples join the pool; the pool's gradient features are clustered with k-means into pseudo-skills; in
 * each cluster the most redundant examples (cosine similarity of their gradient features at or above a
 * threshold to one already retained) are pruned permanently; then every cluster contributes, in proportion
 * to its size, its highest-scoring examples to the pool carried to the next task. See README.md.
 */
import { cosine, fmt, kmeans, proportional } from '../common/index.js';
import { checkKeep, type Selection } from '../common/selection.js';

export interface AdaptInfItem {
  task: string;
  /** Projected gradient feature. */
  feature: Float64Array;
  /** Importance score (higher is kept first): the response loss. */
  score: number;
}

export interface AdaptInfOptions {
  keep: number;
  /** Pseudo-skill clusters per step (default: min(keep, ⌈√pool⌉)). */
  clusters?: number;
  /** Cosine similarity at or above which an example is redundant (default 0.99). */
  threshold?: number;
  seed?: number;
}

export function selectAdaptInf(items: readonly AdaptInfItem[], o: AdaptInfOptions): Selection {
  checkKeep(o.keep, items.length);
  const threshold = o.threshold ?? 0.99;
  const tasks: string[] = [];
  for (const it of items) if (!tasks.includes(it.task)) tasks.push(it.task);
  let pool: number[] = [];
  const report: string[] = [], steps: Record<string, unknown>[] = [];
  let pruned: number[] = [];
  for (const [step, task] of tasks.entries()) {
    const arriving = items.map((_, i) => i).filter((i) => items[i]!.task === task);
    const candidates = [...pool, ...arriving];
    const k = Math.max(1, Math.min(o.clusters ?? Math.ceil(Math.sqrt(candidates.length)), o.keep, candidates.length));
    const km = kmeans(candidates.map((i) => items[i]!.feature), k, (o.seed ?? 0) + step);
    const survivors: number[][] = [];
    const prunedNow: number[] = [];
    for (let c = 0; c < k; c++) {
      const members = candidates.filter((_, j) => km.assign[j] === c).sort((a, b) => items[b]!.score - items[a]!.score || a - b);
      const kept: number[] = [];
      for (const i of members) {
        if (kept.some((j) => cosine(items[i]!.feature, items[j]!.feature) >= threshold)) prunedNow.push(i);
        else kept.push(i);
      }
      survivors.push(kept);
    }
    pruned = [...pruned, ...prunedNow];
    const budget = Math.min(o.keep, survivors.reduce((a, s) => a + s.length, 0));
    const quota = proportional(survivors.map((s) => s.length), budget);
    pool = survivors.flatMap((s, c) => s.slice(0, quota[c]));
    report.push(`task ${step + 1} "${task}": ${arriving.length} new, pool ${candidates.length}; ${k} clusters of sizes ${km.sizes.join(', ')}; pruned ${prunedNow.length} redundant${prunedNow.length ? ` (${prunedNow.map((i) => `#${i + 1}`).join(', ')})` : ''}; carried ${pool.length}`);
    steps.push({ task, arriving: arriving.length, clusterSizes: km.sizes, pruned: prunedNow, carried: pool.length });
  }
  const kept = [...pool].sort((a, b) => a - b);
  report.push(`kept: ${kept.map((i) => `#${i + 1} (${items[i]!.task}, loss ${fmt(items[i]!.score)})`).join(', ')}`);
  if (kept.length < o.keep) report.push(`only ${kept.length} examples remain after pruning; ${o.keep} were asked for`);
  return { method: 'adapt-inf', kept, report, summary: { threshold, steps, pruned } };
}
