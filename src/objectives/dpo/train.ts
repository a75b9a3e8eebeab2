/**
 * Training an adapter with DPO. The reference policy is the same model with this adapter disabled: a
 * forward-only graph on the same backend that shares the frozen weights with the training graph (one copy),
 * run on each batch before the training step. Its log-probabilities enter the training graph as inputs.
 */
import type { AdaptedModel } from '../../adapters/adapted-model.js';
import { Graph, type Tensor } from '../../graph/graph.js';
import { buildModel } from '../../model/families.js';
import { checkpointDtypes, weightSources } from '../../model/runtime.js';
import { Session } from '../../scheduler/session.js';
import { FINE_TUNE_RANGES } from '../../train/finetune.js';
import { checkOptions } from '../../util/ranges.js';
import { buildObjectiveGraph, checkObjectiveRun, dropoutFeed, type ObjectiveGraph, type ObjectiveRun, objectiveTrainer, syncAdapter } from '../adapter-trainer.js';
import { type PreferenceData, preferenceBatch } from './data.js';
import { dpoLoss, sequenceLogProbs } from './loss.js';

export interface DpoOptions extends ObjectiveRun {
  data: PreferenceData;
  /** Preference pairs per step (each is two rows: chosen and rejected). */
  batch: number;
  /** β, the strength of the implicit KL constraint to the reference (default 0.1, the paper's). */
  beta?: number;
  onStep?: (r: DpoStep) => void;
}

export interface DpoStep {
  step: number;
  /** The DPO loss (the task loss), mean over the step's pairs. */
  loss: number;
  /** The loss plus the adapter's regularisers, if any (what the optimizer minimised). */
  objective: number;
  terms: Record<string, number>;
  /** Mean implicit reward margin β·[(log π − log π_ref)(chosen) − (log π − log π_ref)(rejected)]. */
  margin: number;
  /** Fraction of the step's pairs whose margin is positive. */
  accuracy: number;
  lr: number;
  gradNorm: number;
  seconds: number;
}

export interface DpoGraph extends ObjectiveGraph {
  /** i32 [2B·T]: chosen rows' targets, then rejected rows' (−100: not scored). */
  readonly targets: Tensor;
  /** f32 [2B]: scored tokens per row. */
  readonly counts: Tensor;
  /** f32 [2B]: the reference's summed log-probabilities of the same rows. */
  readonly reference: Tensor;
  /** i32 [B], all zero (the class the two-way cross-entropy scores). */
  readonly zeroClass: Tensor;
  /** The policy's summed log-probabilities, f32 [2B]. */
  readonly logps: Tensor;
  /** The DPO loss (the task loss). */
  readonly loss: Tensor;
  readonly margins: Tensor;
}

/** The policy's DPO graph for `pairs` pairs of `seq` tokens: the adapter's forward, sequence log-probabilities, loss. */
export function buildDpoGraph(model: AdaptedModel, adapterName: string, pairs: number, seq: number, beta: number): DpoGraph {
  const R = 2 * pairs, V = model.base.config.vocabSize;
  let extra: Omit<DpoGraph, keyof ObjectiveGraph | 'loss'> | undefined;
  const d = buildObjectiveGraph(model, adapterName, R, seq, (g, net) => {
    const targets = g.input('targets', [R * seq], 'i32'), counts = g.input('counts', [R], 'f32');
    const reference = g.input('reference_logps', [R], 'f32'), zeroClass = g.input('zero_class', [pairs], 'i32');
    const logps = sequenceLogProbs(net, targets, counts, R, seq, V);
    const { loss, margins } = dpoLoss(g, logps, reference, pairs, beta, zeroClass);
    g.markOutput(margins, logps);
    extra = { targets, counts, reference, zeroClass, logps, margins };
    return loss;
  });
  return { ...d, ...extra!, loss: d.task };
}

export const DPO_RANGES = { ...FINE_TUNE_RANGES, beta: { above: 0 } } as const;

export async function trainDpo(o: DpoOptions): Promise<{ steps: DpoStep[] }> {
  checkOptions('trainDpo', o as unknown as Record<string, unknown>, DPO_RANGES);
  const { model, backend, data } = o;
  const B = o.batch, T = data.seq, R = 2 * B, beta = o.beta ?? 0.1;
  const adapter = checkObjectiveRun('trainDpo', o, T);
  const V = model.base.config.vocabSize;

  // The reference: this adapter disabled, every other adapter as it is.
  model.disable(adapter.name);
  let refSession: Session;
  let ref: { ids: Tensor; targets: Tensor; counts: Tensor; logps: Tensor };
  try {
    const gr = new Graph();
    const refWeights = model.effectiveCheckpoint();
    const net = buildModel(gr, refWeights.config, { batch: R, seq: T, hooks: model.hooks().hooks, weightDtype: checkpointDtypes(refWeights) });
    const targets = gr.input('targets', [R * T], 'i32'), counts = gr.input('counts', [R], 'f32');
    const logps = sequenceLogProbs(net, targets, counts, R, T, V);
    gr.markOutput(logps);
    ref = { ids: net.ids, targets, counts, logps };
    refSession = await Session.create(gr, backend, undefined, weightSources(net.weights, refWeights));
    model.uploadAdapterParams(refSession);
  } finally {
    model.enable(adapter.name);
  }

  const d = buildDpoGraph(model, adapter.name, B, T, beta);
  const trainer = await objectiveTrainer(o, d);
  const zeros = new Int32Array(B);
  const out: DpoStep[] = [];
  const started = performance.now();
  try {
    for (let s = 0; s < o.steps; s++) {
      const batch = preferenceBatch(data, (s * B) % data.pairs, B);
      refSession.set(ref.ids, batch.ids);
      refSession.set(ref.targets, batch.targets);
      refSession.set(ref.counts, batch.counts);
      await refSession.run();
      const refLogps = Float32Array.from(await refSession.get(ref.logps));
      const feed: [Tensor, Int32Array | Float32Array][] = [[d.net.ids, batch.ids], [d.targets, batch.targets], [d.counts, batch.counts], [d.reference, refLogps], [d.zeroClass, zeros], ...dropoutFeed(d, o.seed, s)];
      const r = await trainer.step(feed);
      const z = await trainer.session.get(d.margins);
      let sum = 0, wins = 0;
      for (let i = 0; i < B; i++) { sum += z[i]!; if (z[i]! > 0) wins++; }
      const step: DpoStep = { step: r.step, loss: r.loss, objective: r.objective, terms: r.terms, margin: sum / B, accuracy: wins / B, lr: r.lr, gradNorm: r.gradNorm, seconds: (performance.now() - started) / 1000 };
      out.push(step);
      o.onStep?.(step);
    }
    await syncAdapter(o, trainer);
  } finally {
    refSession.dispose();
    trainer.session.dispose();
  }
  return { steps: out };
}
