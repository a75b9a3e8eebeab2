/**
 * Fine-tuning with augmentation that lives in the training graph:
 * - mixup on embeddings (Zhang et al., 2018, "mixup: Beyond Empirical Risk Minimization", applied to token
 *   embeddings as in Guo et al., 2019, "Augmenting Data with Mixup for Sentence Classification"): each row's
 *   embeddings become λ·e_i + (1 − λ)·e_π(i) for a random pairing π, λ ~ Beta(α, α) drawn per step, and the
 *   loss is λ·CE(y_i) + (1 − λ)·CE(y_π(i));
 * - a contrastive term between each row and its token-augmented view (tokens.ts): mean-pooled final hidden
 *   states, cosine similarities over the batch divided by a temperature τ, and InfoNCE with the row's own view
 *   as the positive (Gao et al., 2021, "SimCSE", eq. 1), added with a weight and reported as `contrastive`.
 */
import { batchAt, type PackedBlocks } from '../../data/dataset.js';
import * as F from '../../graph/api.js';
import type { Tensor } from '../../graph/graph.js';
import { FINE_TUNE_RANGES } from '../../train/finetune.js';
import { checkOptions } from '../../util/ranges.js';
import { buildObjectiveGraph, checkObjectiveRun, dropoutFeed, type ObjectiveGraph, type ObjectiveRun, objectiveTrainer, syncAdapter } from '../adapter-trainer.js';
import { gaussian, seededRandom } from '../../util/random.js';
import { augmentTokens, type TokenAugmentOptions } from './tokens.js';

export interface AugmentedOptions extends ObjectiveRun {
  data: PackedBlocks;
  batch: number;
  /** Mixup on embeddings with λ ~ Beta(alpha, alpha) per step (alpha > 0; 0.2–0.4 is mixup's usual range). */
  mixup?: { alpha: number };
  /** InfoNCE between each row and its augmented view, weighted by `weight`, at temperature τ (default 0.05, SimCSE's). */
  contrastive?: { weight: number; temperature?: number; augment: TokenAugmentOptions };
  onStep?: (r: AugmentedStep) => void;
}

export interface AugmentedStep {
  step: number;
  /** The next-token loss (with mixup: λ·CE(y) + (1 − λ)·CE(y_π)). */
  loss: number;
  /** `contrastive` (the weighted InfoNCE term) and the adapter's regularisers. */
  terms: Record<string, number>;
  objective: number;
  /** Mixup's λ this step (1 without mixup). */
  lambda: number;
  lr: number;
  gradNorm: number;
  seconds: number;
}

/** A Beta(a, a) draw from two Gamma(a) draws (Marsaglia and Tsang's method; a < 1 through the a + 1 boost). */
export function betaSample(a: number, rand: () => number): number {
  const gamma = (k: number): number => {
    if (k < 1) return gamma(k + 1) * rand() ** (1 / k);
    const d = k - 1 / 3, c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number, v: number;
      do {
        x = gaussian(rand);
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = rand();
      if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
    }
  };
  const x = gamma(a), y = gamma(a);
  return x / (x + y);
}

/** Tokens a packed row holds before its padding: through the last position that predicts a target. */
function rowLength(targets: Int32Array, row: number, T: number): number {
  for (let t = T - 1; t >= 0; t--) if (targets[row * T + t] !== -100) return t + 1;
  return 1;
}

export interface AugmentedGraph {
  readonly d: ObjectiveGraph;
  /** The graph's inputs by role (targets, mix, partner, lambda, rest; pool, positives) and, with the contrastive term, `pooled` [2B, D]. */
  readonly inputs: Record<string, Tensor>;
  /** The weighted InfoNCE term (contrastive only). */
  readonly contrastive?: Tensor;
  readonly objective: Tensor;
}

/** The training graph of trainAugmented for its options (checked there). */
export function buildAugmentedGraph(o: AugmentedOptions): AugmentedGraph {
  const B = o.batch, T = o.data.seq, V = o.model.base.config.vocabSize, tau = o.contrastive?.temperature ?? 0.05;
  const R = o.contrastive ? 2 * B : B;
  const inputs: Record<string, Tensor> = {};
  let contrastive: Tensor | undefined;
  const mixEmbeddings = (x: Tensor) => {
    const D = x.shape[2]!;
    inputs.mix = x.graph.input('mixup_matrix', [B, B], 'f32');
    return F.reshape(F.matmul(inputs.mix, F.reshape(x, [B, T * D])), [B, T, D]);
  };
  const d = buildObjectiveGraph(o.model, o.adapter, R, T, (g, net) => {
    const logits = F.reshape(net.virtualTokens ? F.slice(net.logits, 1, net.virtualTokens, net.virtualTokens + T) : net.logits, [R * T, V]);
    inputs.targets = g.input('targets', [R * T], 'i32');
    if (o.mixup) {
      inputs.partner = g.input('mixup_partner_targets', [B * T], 'i32');
      inputs.lambda = g.input('mixup_lambda', [1], 'f32');
      inputs.rest = g.input('mixup_one_minus_lambda', [1], 'f32');
      const own = F.mul(F.reshape(F.crossEntropy(logits, inputs.targets), [1]), inputs.lambda);
      const other = F.mul(F.reshape(F.crossEntropy(logits, inputs.partner), [1]), inputs.rest);
      return F.reshape(F.add(own, other), []);
    }
    // Contrastive: rows [0, B) are the batch, [B, 2B) their augmented views; only the former carry targets.
    const D = net.hidden.shape[2]!;
    const hidden = F.reshape(net.virtualTokens ? F.slice(net.hidden, 1, net.virtualTokens, net.virtualTokens + T) : net.hidden, [R * T, D]);
    inputs.pool = g.input('contrastive_pool', [R, R * T], 'f32');
    inputs.positives = g.input('contrastive_positives', [B], 'i32');
    const h = F.matmul(inputs.pool, hidden);
    const norm = F.sqrt(F.add(F.sum(F.mul(h, h), [1], true), F.fill(g, [R, 1], 1e-12)));
    const unit = F.div(h, F.broadcastTo(norm, [R, D]));
    const sims = F.scale(F.matmul(F.slice(unit, 0, 0, B), F.slice(unit, 0, B, R), { transB: true }), 1 / tau);
    contrastive = F.scale(F.crossEntropy(sims, inputs.positives), o.contrastive!.weight);
    inputs.pooled = h;
    return F.crossEntropy(logits, inputs.targets);
  }, o.mixup ? { embeddings: mixEmbeddings } : {});
  const objective = contrastive ? F.add(d.objective, contrastive) : d.objective;
  return { d, inputs, ...(contrastive ? { contrastive } : {}), objective };
}

/** One step's inputs for a batch: mixup's pairing, λ and partner targets, or the augmented views and pooling. */
export function augmentedFeed(o: AugmentedOptions, g: AugmentedGraph, b: { ids: Int32Array; targets: Int32Array }, rand: () => number): { feed: [Tensor, Int32Array | Float32Array][]; lambda: number } {
  const B = o.batch, T = o.data.seq, R = o.contrastive ? 2 * B : B, { d, inputs } = g;
  const feed: [Tensor, Int32Array | Float32Array][] = [];
  let lambda = 1;
  if (o.mixup) {
    lambda = betaSample(o.mixup.alpha, rand);
    // A random pairing: row i mixes with row perm[i].
    const perm = Array.from({ length: B }, (_, i) => i);
    for (let i = B - 1; i > 0; i--) { const j = Math.floor(rand() * (i + 1)); [perm[i], perm[j]] = [perm[j]!, perm[i]!]; }
    const mix = new Float32Array(B * B), partner = new Int32Array(B * T);
    for (let i = 0; i < B; i++) {
      mix[i * B + i]! += lambda;
      mix[i * B + perm[i]!]! += 1 - lambda;
      partner.set(b.targets.subarray(perm[i]! * T, perm[i]! * T + T), i * T);
    }
    feed.push([d.net.ids, b.ids], [inputs.targets!, b.targets], [inputs.mix!, mix], [inputs.partner!, partner], [inputs.lambda!, Float32Array.of(lambda)], [inputs.rest!, Float32Array.of(1 - lambda)]);
  } else {
    const ids = new Int32Array(R * T), targets = new Int32Array(R * T).fill(-100), pool = new Float32Array(R * R * T);
    ids.set(b.ids);
    targets.set(b.targets);
    for (let i = 0; i < B; i++) {
      const L = rowLength(b.targets, i, T);
      const row = Array.from(b.ids.subarray(i * T, i * T + L));
      const view = augmentTokens(row, new Uint8Array(L), o.contrastive!.augment, rand).ids.slice(0, T);
      ids.set(view, (B + i) * T);
      for (let t = 0; t < L; t++) pool[i * R * T + i * T + t] = 1 / L;
      for (let t = 0; t < view.length; t++) pool[(B + i) * R * T + (B + i) * T + t] = 1 / view.length;
    }
    feed.push([d.net.ids, ids], [inputs.targets!, targets], [inputs.pool!, pool], [inputs.positives!, Int32Array.from({ length: B }, (_, i) => i)]);
  }
  return { feed, lambda };
}

export async function trainAugmented(o: AugmentedOptions): Promise<{ steps: AugmentedStep[] }> {
  checkOptions('trainAugmented', o as unknown as Record<string, unknown>, FINE_TUNE_RANGES);
  if (!o.mixup && !o.contrastive) throw new RangeError('trainAugmented: give mixup or contrastive (token-level augmentation alone is augmentExamples before packing)');
  if (o.mixup && o.contrastive) throw new RangeError('trainAugmented: mixup and the contrastive term are separate options; use one at a time');
  if (o.mixup && !(o.mixup.alpha > 0)) throw new RangeError(`trainAugmented: mixup alpha must be > 0 (got ${o.mixup.alpha})`);
  if (o.contrastive && !(o.contrastive.weight >= 0)) throw new RangeError(`trainAugmented: the contrastive weight must be ≥ 0 (got ${o.contrastive.weight})`);
  const tau = o.contrastive?.temperature ?? 0.05;
  if (!(tau > 0)) throw new RangeError(`trainAugmented: the contrastive temperature must be > 0 (got ${tau})`);
  const B = o.batch, T = o.data.seq, V = o.model.base.config.vocabSize;
  checkObjectiveRun('trainAugmented', o, T);
  const rand = seededRandom((o.seed ?? 1) * 7919 + 17);
  const g = buildAugmentedGraph(o);
  const { d, contrastive, objective } = g;
  const trainer = await objectiveTrainer(o, { ...d, objective }, contrastive ? new Map([['contrastive', contrastive]]) : new Map());
  const out: AugmentedStep[] = [];
  const started = performance.now();
  try {
    for (let s = 0; s < o.steps; s++) {
      const { feed, lambda } = augmentedFeed(o, g, batchAt(o.data, (s * B) % o.data.rows, B), rand);
      feed.push(...dropoutFeed(d, o.seed, s));
      const r = await trainer.step(feed);
      const step: AugmentedStep = { step: r.step, loss: r.loss, terms: r.terms, objective: r.objective, lambda, lr: r.lr, gradNorm: r.gradNorm, seconds: (performance.now() - started) / 1000 };
      out.push(step);
      o.onStep?.(step);
    }
    await syncAdapter(o, trainer);
  } finally {
    trainer.session.dispose();
  }
  return { steps: out };
}
