/**
 * EVA (Paischer et al., 2024, "One Initialization to Rule them All: Fine-tuning via Explained Variance
 * Adaptation"): A's rows are the principal components of each module's inputs on a data sample, found by
 * incremental PCA batch by batch until consecutive batches agree; ranks move between modules by explained
 * variance within the budget r × modules. See README.md beside this file.
 */
import { svd } from '../../../linalg/svd.js';
import type { InitSample, ModuleInfo, PrepareContext } from '../../types.js';
import { type EvaOptions, type LoraConfig, loraModuleConfig } from '../config.js';

/**
 * Incremental PCA in float64 (Ross et al., 2008, as scikit-learn's IncrementalPCA, which PEFT ports): the
 * data are centred on the running mean; each batch is merged with the components kept so far by one SVD of
 * [diag(s)·V_kᵀ; X_b − x̄_b; √(n·n_b/(n + n_b))·(x̄ − x̄_b)].
 */
export class IncrementalPca {
  /** Rows seen so far. */
  n = 0;
  readonly mean: Float64Array;
  /** Σ over features of the sum of squared deviations from the mean (the total variance × n). */
  private totalSquares = 0;
  /** [kept, d] row-major, each row's largest-magnitude entry positive (scikit-learn's svd_flip). */
  components = new Float64Array(0);
  singularValues = new Float64Array(0);

  constructor(readonly d: number, readonly maxComponents: number) {
    this.mean = new Float64Array(d);
  }

  get kept(): number { return this.singularValues.length; }

  /** Fraction of the total variance along each kept component. */
  explainedVarianceRatio(): Float64Array {
    return this.singularValues.map((s) => (this.totalSquares > 0 ? (s * s) / this.totalSquares : 0));
  }

  /** Merge a batch X [rows, d]. */
  partialFit(x: Float64Array, rows: number): void {
    const d = this.d, kOld = this.kept, n0 = this.n, n1 = n0 + rows;
    const bMean = new Float64Array(d);
    for (let t = 0; t < rows; t++) for (let j = 0; j < d; j++) bMean[j]! += x[t * d + j]! / rows;
    let batchSquares = 0, shift = 0;
    for (let t = 0; t < rows; t++) for (let j = 0; j < d; j++) batchSquares += (x[t * d + j]! - bMean[j]!) ** 2;
    for (let j = 0; j < d; j++) shift += (this.mean[j]! - bMean[j]!) ** 2;
    // Chan et al.'s pairwise update of the sum of squares.
    this.totalSquares += batchSquares + (n0 * rows / n1) * shift;
    const extra = n0 > 0 ? kOld + 1 : 0, m = rows + extra, stacked = new Float64Array(m * d);
    for (let q = 0; q < (n0 > 0 ? kOld : 0); q++) for (let j = 0; j < d; j++) stacked[q * d + j] = this.singularValues[q]! * this.components[q * d + j]!;
    const off = n0 > 0 ? kOld : 0;
    for (let t = 0; t < rows; t++) for (let j = 0; j < d; j++) stacked[(off + t) * d + j] = x[t * d + j]! - bMean[j]!;
    if (n0 > 0) {
      const w = Math.sqrt((n0 * rows) / n1);
      for (let j = 0; j < d; j++) stacked[(m - 1) * d + j] = w * (this.mean[j]! - bMean[j]!);
    }
    for (let j = 0; j < d; j++) this.mean[j] = (n0 * this.mean[j]! + rows * bMean[j]!) / n1;
    this.n = n1;
    // Many more rows than features: the SVD of R from X = Q·R has X's singular values and right vectors, at a
    // fraction of the Jacobi sweeps over all m rows.
    const f = m > d ? svd(householderR(stacked, m, d), d, d) : svd(stacked, m, d);
    const k = Math.min(this.maxComponents, f.k);
    const comps = new Float64Array(k * d);
    for (let q = 0; q < k; q++) {
      let big = 0;
      for (let j = 0; j < d; j++) if (Math.abs(f.vt[q * d + j]!) > Math.abs(big)) big = f.vt[q * d + j]!;
      const sign = big < 0 ? -1 : 1;
      for (let j = 0; j < d; j++) comps[q * d + j] = sign * f.vt[q * d + j]!;
    }
    this.components = comps;
    this.singularValues = f.s.slice(0, k);
  }
}

/** R [d, d] of the QR factorisation of X [m, d] (m ≥ d) by Householder reflections; X is overwritten. */
export function householderR(x: Float64Array, m: number, d: number): Float64Array {
  const v = new Float64Array(m);
  for (let j = 0; j < d; j++) {
    let norm = 0;
    for (let i = j; i < m; i++) norm += x[i * d + j]! ** 2;
    norm = Math.sqrt(norm);
    if (norm === 0) continue;
    const x0 = x[j * d + j]!, alpha = x0 >= 0 ? -norm : norm;
    let vv = 0;
    for (let i = j; i < m; i++) { v[i] = x[i * d + j]! - (i === j ? alpha : 0); vv += v[i]! ** 2; }
    if (vv === 0) continue;
    for (let c = j; c < d; c++) {
      let dot = 0;
      for (let i = j; i < m; i++) dot += v[i]! * x[i * d + c]!;
      const f = (2 * dot) / vv;
      for (let i = j; i < m; i++) x[i * d + c]! -= f * v[i]!;
    }
  }
  const r = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let j = i; j < d; j++) r[i * d + j] = x[i * d + j]!;
  return r;
}

/** Cosine similarity of row q of two [k, d] matrices. */
function rowCosine(a: Float64Array, b: Float64Array, q: number, d: number): number {
  let ab = 0, aa = 0, bb = 0;
  for (let j = 0; j < d; j++) { const x = a[q * d + j]!, y = b[q * d + j]!; ab += x * y; aa += x * x; bb += y * y; }
  return ab / Math.sqrt(aa * bb || 1);
}

export interface EvaResult {
  /** Per module, A's rows [rank, in]. */
  a: Map<string, Float64Array>;
  ranks: Map<string, number>;
  /** Batches of the sample run through the model. */
  batches: number;
  /** Whether every module's components converged before the sample ran out. */
  converged: boolean;
  /** Per module, the incremental PCA it used (modules sharing one input share one). */
  pca: Map<string, IncrementalPca>;
}

/**
 * Ranks from explained variance, as PEFT's _get_rank_distribution: the budget's worth of the highest ratios
 * over all (module, component) pairs. A module left with no component gets its best one back from the module
 * holding the most (our reading: every targeted module keeps an adapter; PEFT drops it).
 */
export function distributeRanks(ratios: readonly (readonly [string, Float64Array])[], budget: number): Map<string, number> {
  const entries: { module: string; value: number; order: number }[] = [];
  for (const [module, r] of ratios) for (let q = 0; q < r.length; q++) entries.push({ module, value: r[q]!, order: entries.length });
  entries.sort((x, y) => y.value - x.value || x.order - y.order);
  const counts = new Map(ratios.map(([m]) => [m, 0]));
  for (const e of entries.slice(0, budget)) counts.set(e.module, counts.get(e.module)! + 1);
  for (const [m, c] of counts) {
    if (c > 0) continue;
    const [richest] = [...counts].sort((x, y) => y[1] - x[1]);
    counts.set(richest![0], richest![1] - 1);
    counts.set(m, 1);
  }
  return counts;
}

/** The positions of a sample row EVA reads: targets (label mask) or every token of an example. */
function keptPositions(sample: InitSample, row: number, o: EvaOptions): number[] {
  const mask = o.useLabelMask ? sample.targets[row]! : sample.present[row]!, out: number[] = [];
  for (let t = 0; t < mask.length; t++) if (mask[t]) out.push(t);
  return out;
}

/** EVA's components and ranks for the targeted modules, from `sample` run through the base model. */
export function evaInit(c: LoraConfig, modules: readonly ModuleInfo[], sample: InitSample, linearInputs: PrepareContext['linearInputs']): EvaResult {
  const targeted = new Map(modules.map((m) => [m.name, m]));
  const maxComponents = Math.round(c.r * c.eva.rho);
  for (const m of modules) {
    if (m.kind === 'embedding') throw new Error(`lora: init 'eva' adapts linear modules only, not the embedding ${m.name}`);
    if (maxComponents > m.inFeatures) throw new Error(`lora: init 'eva' needs round(r·rho) = ${maxComponents} components, more than ${m.name}'s ${m.inFeatures} inputs`);
  }
  // Modules that read the same input (q, k, v) share one PCA, as PEFT shares one hook between equal inputs.
  const pca = new Map<string, IncrementalPca>();
  const converged = new Map<IncrementalPca, boolean[]>();
  let rankOf = new Map(modules.map((m) => [m.name, maxComponents]));
  const done = (p: IncrementalPca, names: readonly string[]): boolean => {
    const flags = converged.get(p);
    return !!flags && names.every((nm) => flags.slice(0, rankOf.get(nm)!).every(Boolean) && flags.length >= rankOf.get(nm)!);
  };
  const sharers = new Map<IncrementalPca, string[]>();
  let batches = 0, all = false;
  for (let start = 0; start < sample.rows.length; start += sample.batchRows) {
    all = pca.size > 0 && [...sharers].every(([p, names]) => done(p, names));
    if (all) break;
    const buffers = new Map<IncrementalPca, number[][]>();
    for (let row = start; row < Math.min(start + sample.batchRows, sample.rows.length); row++) {
      const keep = keptPositions(sample, row, c.eva);
      if (!keep.length) continue;
      const ids = Array.from(sample.rows[row]!.subarray(0, keep[keep.length - 1]! + 1));
      linearInputs(ids, (names, x, _n, d) => {
        const mine = names.filter((nm) => targeted.has(nm));
        if (!mine.length) return;
        let p = pca.get(mine[0]!);
        if (!p) {
          p = new IncrementalPca(d, maxComponents);
          for (const nm of mine) pca.set(nm, p);
          sharers.set(p, mine);
        }
        if (done(p, mine)) return;
        const list = buffers.get(p) ?? [];
        for (const t of keep) list.push(Array.from(x.subarray(t * d, (t + 1) * d)));
        buffers.set(p, list);
      });
    }
    batches++;
    for (const [p, list] of buffers) {
      // As PEFT: a batch with fewer positions than components is skipped.
      if (list.length < maxComponents) continue;
      const prev = p.kept ? p.components.slice() : undefined, prevK = p.kept;
      p.partialFit(Float64Array.from(list.flat()), list.length);
      if (prev) converged.set(p, Array.from({ length: p.kept }, (_, q) => q < prevK && rowCosine(p.components, prev, q, p.d) >= c.eva.tau));
      else converged.set(p, new Array<boolean>(p.kept).fill(false));
    }
    if (modules.every((m) => pca.get(m.name)?.kept)) {
      rankOf = distributeRanks(modules.map((m) => [m.name, pca.get(m.name)!.explainedVarianceRatio()] as const), c.r * modules.length);
    }
  }
  all ||= pca.size > 0 && [...sharers].every(([p, names]) => done(p, names));
  const missing = modules.find((m) => !pca.get(m.name)?.kept);
  if (missing) throw new Error(`lora: init 'eva': the data sample gave ${missing.name} no batch with at least round(r·rho) = ${maxComponents} positions; give more data or a larger batch`);
  const a = new Map<string, Float64Array>();
  for (const m of modules) {
    const p = pca.get(m.name)!, rank = Math.min(rankOf.get(m.name)!, p.kept), d = p.d, rows = p.components.slice(0, rank * d);
    if (c.eva.whiten) for (let q = 0; q < rank; q++) for (let j = 0; j < d; j++) rows[q * d + j]! /= Math.sqrt(p.singularValues[q]!);
    a.set(m.name, rows);
    rankOf.set(m.name, rank);
  }
  return { a, ranks: rankOf, batches, converged: all, pca };
}

/** The config EVA leaves: each module's rank (and, adjusting scaling factors, alpha) as rank_pattern / alpha_pattern keyed by full name. */
export function evaConfig(c: LoraConfig, modules: readonly ModuleInfo[], e: EvaResult): LoraConfig {
  const rankByModule: Record<string, number> = {}, alphaByModule: Record<string, number> = {};
  for (const m of modules) {
    const rank = e.ranks.get(m.name)!, alpha = loraModuleConfig(c, m.name).alpha;
    rankByModule[m.name] = rank;
    alphaByModule[m.name] = c.eva.adjustScalingFactors ? (alpha * rank) / c.r : alpha;
  }
  return { ...c, rankByModule, alphaByModule, dataInit: { ...c.dataInit, evaA: e.a, evaBatches: e.batches, evaConverged: e.converged } };
}
