/**
 * Multi-objective training in the manner of MORepair: several next-token losses over different target
 * fields of the same examples, minimised as one weighted sum, each reported on its own. Every step takes
 * `batch` rows of each objective; one forward pass covers them all, and each objective's cross-entropy
 * scores its own rows (the other rows' targets are ignored in it).
 */
import { batchAt, type PackedBlocks } from '../../data/dataset.js';
import * as F from '../../graph/api.js';
import type { Tensor } from '../../graph/graph.js';
import { FINE_TUNE_RANGES } from '../../train/finetune.js';
import { checkOptions } from '../../util/ranges.js';
import { buildObjectiveGraph, checkObjectiveRun, dropoutFeed, type ObjectiveRun, objectiveTrainer, syncAdapter } from '../adapter-trainer.js';

export interface WeightedObjective {
  /** Reported under this name (the data field it trains on). */
  name: string;
  /** Its weight in the sum that is minimised (≥ 0). */
  weight: number;
  data: PackedBlocks;
}

export interface MultiObjectiveOptions extends ObjectiveRun {
  objectives: readonly WeightedObjective[];
  /** Rows of each objective per step. */
  batch: number;
  onStep?: (r: MultiObjectiveStep) => void;
}

export interface MultiObjectiveStep {
  step: number;
  /** The weighted sum Σ wₖ·Lₖ that is minimised (plus any regulariser: `objective`). */
  loss: number;
  /** Each objective's own mean cross-entropy, by name. */
  losses: Record<string, number>;
  /** The adapter's regularisers, by name. */
  terms: Record<string, number>;
  objective: number;
  lr: number;
  gradNorm: number;
  seconds: number;
}

export async function trainMultiObjective(o: MultiObjectiveOptions): Promise<{ steps: MultiObjectiveStep[] }> {
  checkOptions('trainMultiObjective', o as unknown as Record<string, unknown>, FINE_TUNE_RANGES);
  const K = o.objectives.length;
  if (K === 0) throw new RangeError('trainMultiObjective: no objectives');
  const names = new Set<string>();
  for (const ob of o.objectives) {
    if (names.has(ob.name)) throw new RangeError(`trainMultiObjective: objective "${ob.name}" is given twice`);
    names.add(ob.name);
    if (!(Number.isFinite(ob.weight) && ob.weight >= 0)) throw new RangeError(`trainMultiObjective: the weight of "${ob.name}" must be a number ≥ 0 (got ${ob.weight})`);
    if (ob.data.seq !== o.objectives[0]!.data.seq) throw new RangeError(`trainMultiObjective: "${ob.name}" has rows of ${ob.data.seq} tokens, "${o.objectives[0]!.name}" of ${o.objectives[0]!.data.seq}`);
    if (!ob.data.targets.some((t) => t !== -100)) throw new RangeError(`trainMultiObjective: "${ob.name}" has no token to predict`);
  }
  if (o.objectives.every((ob) => ob.weight === 0)) throw new RangeError('trainMultiObjective: every weight is 0, nothing would train');
  const B = o.batch, T = o.objectives[0]!.data.seq, V = o.model.base.config.vocabSize;
  checkObjectiveRun('trainMultiObjective', o, T);
  const targets: Tensor[] = [], parts: Tensor[] = [];
  const d = buildObjectiveGraph(o.model, o.adapter, K * B, T, (g, net) => {
    // One head over every row; each objective's cross-entropy reads the logits with its own targets.
    const logits = F.reshape(net.virtualTokens ? F.slice(net.logits, 1, net.virtualTokens, net.virtualTokens + T) : net.logits, [K * B * T, V]);
    o.objectives.forEach((ob) => {
      const t = g.input(`targets_${ob.name}`, [K * B * T], 'i32');
      targets.push(t);
      parts.push(F.crossEntropy(logits, t));
    });
    return parts.map((p, k) => F.scale(p, o.objectives[k]!.weight)).reduce((a, b) => F.add(a, b));
  });
  const trainer = await objectiveTrainer(o, d, new Map(o.objectives.map((ob, k) => [`objective:${ob.name}`, parts[k]!])));
  const out: MultiObjectiveStep[] = [];
  const started = performance.now();
  try {
    for (let s = 0; s < o.steps; s++) {
      const ids = new Int32Array(K * B * T);
      const tg = o.objectives.map(() => new Int32Array(K * B * T).fill(-100));
      o.objectives.forEach((ob, k) => {
        const b = batchAt(ob.data, (s * B) % ob.data.rows, B);
        ids.set(b.ids, k * B * T);
        tg[k]!.set(b.targets, k * B * T);
      });
      const r = await trainer.step([[d.net.ids, ids], ...tg.map((t, k): [Tensor, Int32Array] => [targets[k]!, t]), ...dropoutFeed(d, o.seed, s)]);
      const losses: Record<string, number> = {}, terms: Record<string, number> = {};
      for (const [name, v] of Object.entries(r.terms)) {
        if (name.startsWith('objective:')) losses[name.slice('objective:'.length)] = v;
        else terms[name] = v;
      }
      const step: MultiObjectiveStep = { step: r.step, loss: r.loss, losses, terms, objective: r.objective, lr: r.lr, gradNorm: r.gradNorm, seconds: (performance.now() - started) / 1000 };
      out.push(step);
      o.onStep?.(step);
    }
    await syncAdapter(o, trainer);
  } finally {
    trainer.session.dispose();
  }
  return { steps: out };
}
