/**
 * Distilling a teacher into the adapted model: forward-KL knowledge distillation (KD) and TAID. The
 * teacher is any model with the student's vocabulary; it runs forward only, on the same backend, and its
 * logits are read back each step. The targets are formed on the host (targets.ts) and enter the training
 * graph as inputs of a soft cross-entropy (loss.ts); the reported loss is KL(target ‖ student).
 */
import { batchAt, type PackedBlocks } from '../../data/dataset.js';
import type { LlamaCheckpoint } from '../../formats/checkpoint.js';
import * as F from '../../graph/api.js';
import type { Tensor } from '../../graph/graph.js';
import { LlamaRuntime } from '../../model/runtime.js';
import { FINE_TUNE_RANGES } from '../../train/finetune.js';
import { checkOptions } from '../../util/ranges.js';
import { buildObjectiveGraph, checkObjectiveRun, dropoutFeed, type ObjectiveRun, objectiveTrainer, syncAdapter } from '../adapter-trainer.js';
import { softCrossEntropy } from './loss.js';
import { interpolatedTargets, softTargetInputs, TaidSchedule, type TaidOptions } from './targets.js';

export const DISTILL_METHODS = ['kd', 'taid'] as const;
export type DistillMethod = (typeof DISTILL_METHODS)[number];

export interface DistillOptions extends ObjectiveRun {
  /** The teacher: any model with the student's vocabulary (and, where both carry one, the same tokens). */
  teacher: LlamaCheckpoint;
  /** Packed rows: the positions whose next token the data scores are the positions distilled. */
  data: PackedBlocks;
  batch: number;
  /** 'kd' (default): the teacher's distribution; 'taid': TAID's interpolation with its adaptive t. */
  method?: DistillMethod;
  taid?: TaidOptions;
  onStep?: (r: DistillStep) => void;
}

export interface DistillStep {
  step: number;
  /** KL(target ‖ student), mean over scored positions: 0 when the student matches its target. */
  loss: number;
  /** The soft cross-entropy minimised (loss plus the targets' entropy), plus any regulariser. */
  objective: number;
  terms: Record<string, number>;
  /** The interpolation parameter the step's targets used (1 for KD). */
  t: number;
  lr: number;
  gradNorm: number;
  seconds: number;
}

/** Float32 values of [rows × vocabulary] the host holds at once per step (teacher logits, targets, weights). */
const MAX_TARGET_BYTES = 1 << 30;

/** Refuses a teacher whose vocabulary differs from the student's, naming the first difference. */
export function checkTeacher(student: LlamaCheckpoint, teacher: LlamaCheckpoint): void {
  const [a, b] = [student.config.vocabSize, teacher.config.vocabSize];
  if (a !== b) throw new Error(`the teacher's vocabulary has ${b} tokens, the student's ${a}: distillation needs one tokenizer`);
  const [ta, tb] = [student.tokenizer?.tokens, teacher.tokenizer?.tokens];
  if (ta && tb) {
    const i = ta.findIndex((t, k) => t !== tb[k]);
    if (i >= 0) throw new Error(`the teacher's token ${i} is ${JSON.stringify(tb[i])}, the student's ${JSON.stringify(ta[i])}: distillation needs one tokenizer`);
  }
}

export async function distill(o: DistillOptions): Promise<{ steps: DistillStep[] }> {
  checkOptions('distill', o as unknown as Record<string, unknown>, { ...FINE_TUNE_RANGES, method: { oneOf: DISTILL_METHODS } });
  const { model, backend, data } = o;
  checkTeacher(model.base, o.teacher);
  const B = o.batch, T = data.seq, V = model.base.config.vocabSize, N = B * T;
  checkObjectiveRun('distill', o, T);
  if (T > o.teacher.config.maxSeqLen) throw new RangeError(`distill: rows of ${T} tokens exceed the teacher's context of ${o.teacher.config.maxSeqLen}`);
  if (3 * N * V * 4 > MAX_TARGET_BYTES) throw new RangeError(`distill: ${B} rows × ${T} tokens × ${V} vocabulary entries need ${((3 * N * V * 4) / 2 ** 30).toFixed(1)} GiB of targets per step on the host (limit 1 GiB): use a smaller batch or seq`);
  const method = o.method ?? 'kd';
  const schedule = method === 'taid' ? new TaidSchedule(o.taid) : undefined;

  let classes: Tensor | undefined, targetWeights: Tensor | undefined;
  const d = buildObjectiveGraph(model, o.adapter, B, T, (g, net) => {
    const logits = F.reshape(net.virtualTokens ? F.slice(net.logits, 1, net.virtualTokens, net.virtualTokens + T) : net.logits, [N, V]);
    classes = g.input('soft_classes', [N], 'i32');
    targetWeights = g.input('soft_weights', [N, V], 'f32');
    return softCrossEntropy(logits, classes, targetWeights);
  });
  const trainer = await objectiveTrainer(o, d);
  const teacher = new LlamaRuntime(o.teacher, backend);
  const student = schedule ? model.runtime(backend) : undefined;
  const out: DistillStep[] = [];
  const started = performance.now();
  const sync = () => syncAdapter(o, trainer);
  try {
    let row = 0;
    for (let s = 0; s < o.steps; s++) {
      const b = batchAt(data, row, B);
      row = (row + B) % data.rows;
      const mask = Uint8Array.from(b.targets, (t) => (t !== -100 ? 1 : 0));
      const t = schedule ? schedule.t : 1;
      const teacherLogits = await teacher.logits(b.ids, B, T);
      // TAID's target mixes in the student as it is now (the adapter's current values, no gradient).
      let studentLogits: Float32Array | undefined;
      if (student && t < 1) { await sync(); studentLogits = await student.logits(b.ids, B, T); }
      const inputs = softTargetInputs(interpolatedTargets(teacherLogits, studentLogits, t, mask, V), mask, V);
      if (inputs.scored === 0) throw new Error(`distill: the batch at row ${row} has no scored position`);
      const feed: [Tensor, Int32Array | Float32Array][] = [[d.net.ids, b.ids], [classes!, inputs.classes], [targetWeights!, inputs.weights], ...dropoutFeed(d, o.seed, s)];
      const r = await trainer.step(feed);
      const step: DistillStep = {
        step: r.step, loss: r.loss - inputs.entropy, objective: r.objective, terms: r.terms, t, lr: r.lr, gradNorm: r.gradNorm, seconds: (performance.now() - started) / 1000,
      };
      // The schedule follows the distillation loss as the TAID reference code passes it (the soft cross-entropy).
      schedule?.update(r.loss, r.step, o.steps);
      out.push(step);
      o.onStep?.(step);
    }
    await sync();
  } finally {
    teacher.dispose();
    student?.dispose();
    trainer.session.dispose();
  }
  return { steps: out };
}
