/**
 * Shared pieces of the data selectors: the examples as JSONL lines with their tokens, one forward pass per
 * example giving the final hidden states and logits, the model-based scores every selector reads
 * (response loss with and without the prompt, IFD, a mean-pooled embedding, a projected gradient feature),
 * a seeded random source, cosine similarity and k-means.
 */
import type { Backend } from '../../backends/backend.js';
import type { LlamaCheckpoint } from '../../formats/checkpoint.js';
import { jsonlExample } from '../../data/dataset.js';
import { Graph, type Tensor } from '../../graph/graph.js';
import type { LlamaGraph } from '../../model/llama.js';
import { buildModel } from '../../model/families.js';
import { checkpointDtypes, weightSources } from '../../model/runtime.js';
import { Session } from '../../scheduler/session.js';
import type { Tokenizer } from '../../tokenizer/types.js';

/** One JSONL line of the data file and its tokens. */
export interface SelectItem {
  /** The line exactly as read (written back unchanged when kept). */
  line: string;
  /** 1-based line number in its file. */
  lineNo: number;
  /** Token ids, BOS first. */
  ids: number[];
  /** Where the response starts in `ids`: the completion of {"prompt","completion"}, the second half of {"text"}. */
  split: number;
  /** The "task" field when present, else the file name. */
  task: string;
}

/** Parse JSONL text into items ({"text"} or {"prompt","completion"}, as training reads them). */
export function selectItems(text: string, file: string, tok: Tokenizer, maxLen: number): SelectItem[] {
  const out: SelectItem[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const e = jsonlExample(line, `${file}:${i + 1}`, tok, maxLen);
    if (!e) return;
    if (e.ids.length < 3) throw new Error(`${file}:${i + 1}: too short to score (${e.ids.length} tokens with BOS; at least 2 text tokens are needed)`);
    const row = JSON.parse(line) as Record<string, unknown>;
    let split = e.target.indexOf(1);
    if (typeof row.text === 'string') split = Math.max(1, Math.floor(e.ids.length / 2));
    if (split < 1 || split >= e.ids.length) throw new Error(`${file}:${i + 1}: the completion has no tokens`);
    out.push({ line, lineNo: i + 1, ids: e.ids, split, task: typeof row.task === 'string' ? row.task : file });
  });
  if (out.length === 0) throw new Error(`${file}: no examples`);
  return out;
}

// ---------------------------------------------------------------------------------------------- random

/** mulberry32: a small seeded generator of uniform numbers in [0, 1). */
export function rng(seed: number): () => number {
  let a = (seed >>> 0) ^ 0x9e3779b9;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------- vectors

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.sqrt(dot(a, a) * dot(b, b));
  return n === 0 ? 0 : dot(a, b) / n;
}

export function sqDist(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) { const d = a[i]! - b[i]!; s += d * d; }
  return s;
}

export function mean(vs: readonly Float64Array[]): Float64Array {
  const m = new Float64Array(vs[0]?.length ?? 0);
  for (const v of vs) for (let i = 0; i < m.length; i++) m[i]! += v[i]! / vs.length;
  return m;
}

export interface KMeansResult {
  /** Cluster of each point. */
  assign: number[];
  centroids: Float64Array[];
  sizes: number[];
  iterations: number;
}

/**
 * k-means (Lloyd's algorithm, squared Euclidean distance) with seeded k-means++ initialisation; stops when
 * no assignment changes or after `maxIter` rounds. Ties go to the lower cluster index; an emptied cluster
 * keeps its centroid.
 */
export function kmeans(points: readonly Float64Array[], k: number, seed: number, maxIter = 100): KMeansResult {
  const n = points.length;
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`kmeans: k must be a positive integer, got ${k}`);
  if (k > n) throw new RangeError(`kmeans: k = ${k} clusters for ${n} points`);
  const rand = rng(seed);
  const centroids: Float64Array[] = [Float64Array.from(points[Math.floor(rand() * n)]!)];
  const d2 = points.map((p) => sqDist(p, centroids[0]!));
  while (centroids.length < k) {
    const total = d2.reduce((a, b) => a + b, 0);
    let pick = 0;
    if (total > 0) {
      let r = rand() * total;
      for (pick = 0; pick < n - 1; pick++) { r -= d2[pick]!; if (r < 0) break; }
      while (d2[pick] === 0 && pick > 0) pick--; // never a point that is already a centroid
    } else pick = centroids.length; // all points coincide with centroids: any distinct index
    centroids.push(Float64Array.from(points[pick]!));
    for (let i = 0; i < n; i++) d2[i] = Math.min(d2[i]!, sqDist(points[i]!, centroids.at(-1)!));
  }
  const assign = new Array<number>(n).fill(-1);
  let iterations = 0;
  for (; iterations < maxIter; iterations++) {
    let changed = false;
    for (let i = 0; i < n; i++) {
      let best = 0, bd = Infinity;
      for (let c = 0; c < k; c++) { const d = sqDist(points[i]!, centroids[c]!); if (d < bd) { bd = d; best = c; } }
      if (assign[i] !== best) { assign[i] = best; changed = true; }
    }
    if (!changed) break;
    for (let c = 0; c < k; c++) {
      const members = points.filter((_, i) => assign[i] === c);
      if (members.length) centroids[c] = mean(members);
    }
  }
  const sizes = new Array<number>(k).fill(0);
  for (const a of assign) sizes[a]!++;
  return { assign, centroids, sizes, iterations };
}

/** Split `total` over groups in proportion to `sizes` (largest remainder, ties to the lower index), each at most its size. */
export function proportional(sizes: readonly number[], total: number): number[] {
  const n = sizes.reduce((a, b) => a + b, 0);
  const exact = sizes.map((s) => (s * total) / n);
  const out = exact.map((e) => Math.floor(e));
  let left = total - out.reduce((a, b) => a + b, 0);
  const order = exact.map((e, i) => [e - Math.floor(e), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const [, i] of order) { if (left <= 0) break; if (out[i]! < sizes[i]!) { out[i]!++; left--; } }
  return out;
}

// ---------------------------------------------------------------------------------------------- model signals

/** What the model says about one example. */
export interface ItemSignals {
  /** Mean cross-entropy of the response tokens given BOS + prompt (nats/token). */
  lossCond: number;
  /** Mean cross-entropy of the response tokens given BOS alone. */
  lossAlone: number;
  /** Instruction-following difficulty: lossCond / lossAlone (Li et al., 2024, "From quantity to quality"). */
  ifd: number;
  /** Mean over positions of the final normed hidden state of the whole example. */
  embedding: Float64Array;
}

/** One forward pass of the base model per row: the final hidden states and the logits. */
export class Forward {
  private session?: Session;
  private graph?: LlamaGraph;
  constructor(readonly ckpt: LlamaCheckpoint, readonly backend: Backend, readonly seq: number) {}

  async run(ids: readonly number[]): Promise<{ hidden: Float32Array; logits: Float32Array }> {
    if (ids.length > this.seq) throw new RangeError(`forward: ${ids.length} tokens for a graph of ${this.seq}`);
    if (!this.session) {
      const g = new Graph();
      this.graph = buildModel(g, this.ckpt.config, { batch: 1, seq: this.seq, weightDtype: checkpointDtypes(this.ckpt) });
      const outs: Tensor[] = [this.graph.hidden, this.graph.logits];
      for (const t of outs) g.markOutput(t);
      this.session = await Session.create(g, this.backend, undefined, weightSources(this.graph.weights, this.ckpt));
    }
    const buf = new Int32Array(this.seq);
    buf.set(ids);
    this.session.set(this.graph!.ids, buf);
    await this.session.run();
    return { hidden: Float32Array.from(await this.session.get(this.graph!.hidden)), logits: Float32Array.from(await this.session.get(this.graph!.logits)) };
  }

  dispose(): void { this.session?.dispose(); }
}

/** Softmax of row `t` of [T, V] logits, in float64. */
export function softmaxRow(logits: Float32Array, t: number, V: number): Float64Array {
  const p = new Float64Array(V);
  let mx = -Infinity;
  for (let v = 0; v < V; v++) mx = Math.max(mx, logits[t * V + v]!);
  let z = 0;
  for (let v = 0; v < V; v++) { p[v] = Math.exp(logits[t * V + v]! - mx); z += p[v]!; }
  for (let v = 0; v < V; v++) p[v]! /= z;
  return p;
}

/** Mean cross-entropy of ids[from..] each predicted from the previous position. */
function responseLoss(logits: Float32Array, ids: readonly number[], from: number, V: number): number {
  let s = 0;
  for (let t = from; t < ids.length; t++) s -= Math.log(softmaxRow(logits, t - 1, V)[ids[t]!]!);
  return s / (ids.length - from);
}

/** The model's signals for every item (two forward passes each: with and without the prompt). */
export async function itemSignals(items: readonly SelectItem[], fw: Forward, onProgress?: (done: number) => void): Promise<ItemSignals[]> {
  const { vocabSize: V, dim: D } = fw.ckpt.config;
  const out: ItemSignals[] = [];
  for (const [i, it] of items.entries()) {
    const full = await fw.run(it.ids);
    const lossCond = responseLoss(full.logits, it.ids, it.split, V);
    const alone = [it.ids[0]!, ...it.ids.slice(it.split)];
    const lossAlone = responseLoss((await fw.run(alone)).logits, alone, 1, V);
    const embedding = new Float64Array(D);
    for (let t = 0; t < it.ids.length; t++) for (let d = 0; d < D; d++) embedding[d]! += full.hidden[t * D + d]! / it.ids.length;
    out.push({ lossCond, lossAlone, ifd: lossCond / lossAlone, embedding });
    onProgress?.(i + 1);
  }
  return out;
}

/**
 * A gradient feature per item: the gradient of the mean response loss with respect to the output head's
 * weight W [V, D], G = (1/n) Σ_t (softmax(z_t) − onehot(y_{t+1})) h_tᵀ (exact for the last layer), reduced
 * to `dim` numbers by a seeded Kronecker-factored Rademacher projection, f_j = a_jᵀ G b_j / √dim with
 * a_j ∈ {±1}^V, b_j ∈ {±1}^D, so the V×D gradient is never formed.
 */
export async function gradientFeatures(items: readonly SelectItem[], fw: Forward, dim: number, seed: number): Promise<Float64Array[]> {
  const { vocabSize: V, dim: D } = fw.ckpt.config;
  const { A, B } = projection(dim, V, D, seed);
  const out: Float64Array[] = [];
  for (const it of items) {
    const { hidden, logits } = await fw.run(it.ids);
    const f = new Float64Array(dim);
    const n = it.ids.length - it.split;
    for (let t = it.split - 1; t < it.ids.length - 1; t++) {
      const e = softmaxRow(logits, t, V);
      e[it.ids[t + 1]!]! -= 1;
      const h = hidden.subarray(t * D, (t + 1) * D);
      for (let j = 0; j < dim; j++) f[j]! += (dot(A[j]!, e) * dot(B[j]!, h)) / n / Math.sqrt(dim);
    }
    out.push(f);
  }
  return out;
}

/**
 * Order by IFD, highest first, with every IFD ≥ 1 after every IFD < 1: at IFD ≥ 1 the prompt does not make
 * the response easier, which Li et al. read as no instruction–response relation (their filter drops them).
 */
export function byIfd(a: ItemSignals, b: ItemSignals): number {
  return Number(a.ifd >= 1) - Number(b.ifd >= 1) || b.ifd - a.ifd;
}

/** The Rademacher vectors of gradientFeatures' projection: A [dim][V], B [dim][D]. */
export function projection(dim: number, V: number, D: number, seed: number): { A: Float64Array[]; B: Float64Array[] } {
  if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`gradient feature size must be a positive integer, got ${dim}`);
  const rand = rng(seed ^ 0x5eed);
  const A = Array.from({ length: dim }, () => Float64Array.from({ length: V }, () => (rand() < 0.5 ? -1 : 1)));
  const B = Array.from({ length: dim }, () => Float64Array.from({ length: D }, () => (rand() < 0.5 ? -1 : 1)));
  return { A, B };
}

/** The graph length the items need (their longest), within the model's context. */
export function seqFor(items: readonly SelectItem[], maxSeqLen: number): number {
  const s = Math.max(...items.map((i) => i.ids.length));
  if (s > maxSeqLen) throw new Error(`an example has ${s} tokens; the model's context is ${maxSeqLen} (lower --max-len)`);
  return s;
}

export const fmt = (x: number, d = 4): string => (Number.isFinite(x) ? x.toFixed(d) : String(x));
