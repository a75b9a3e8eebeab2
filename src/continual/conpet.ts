/**
 * ConPET (Song et al., "ConPET: Continual Parameter-Efficient Tuning for Large Language Models", 2023), its
 * dynamic form: a stream of tasks, one LoRA module per task, a selector that picks the module for each input,
 * and a replay buffer of earlier tasks' examples mixed into the selector's training at every later task (the
 * modules themselves never see other tasks, so they cannot forget; what can is the routing). After each new
 * task every task seen so far is scored on its held-out examples through the selector's routing, one mixed-
 * adapter batch per task (src/adapters/mixed), giving the forgetting matrix.
 */
import { AdaptedModel } from '../adapters/adapted-model.js';
import { instanceFeatures } from '../adapters/idpt/instance.js';
import type { Backend } from '../backends/backend.js';
import { type Example, pack } from '../data/dataset.js';
import type { LlamaCheckpoint } from '../formats/checkpoint.js';
import { fineTune } from '../train/finetune.js';
import { seededRandom } from '../util/random.js';
import { ReplayBuffer, TaskSelector } from './selector.js';

export interface ConpetTask {
  readonly name: string;
  readonly train: readonly Example[];
  readonly heldOut: readonly Example[];
}

export interface ConpetOptions {
  backend: Backend;
  seq: number;
  /** Steps of each task's module (default 40). */
  steps?: number;
  batch?: number;
  lr?: number;
  seed?: number;
  /** Examples of earlier tasks kept for the selector (default 32). */
  replaySize?: number;
  /** The module's options (LoRA's; default rank 8 on q_proj, v_proj). */
  lora?: Record<string, unknown>;
  onTask?(index: number, report: ConpetReport): void;
}

export interface ConpetReport {
  /** loss[t][j]: held-out loss of task j (j ≤ t) after training task t, routed by the selector. */
  loss: number[][];
  /** routed[t][j]: the fraction of task j's held-out examples the selector sent to module j after task t. */
  routed: number[][];
  /** forgetting[j]: the loss of task j after the last task minus its loss right after its own. */
  forgetting: number[];
  model: AdaptedModel;
}

/** The selector's input for an example: the mean base embedding of its context (a prompt; a whole text when it has none). */
export function exampleFeature(table: Float32Array, dim: number, e: Example): Float32Array {
  const firstTarget = e.target.indexOf(1);
  // Plain text predicts from its second token on: there the whole text is the instance to route.
  const context = firstTarget <= 1 ? e.ids : e.ids.slice(0, firstTarget);
  return instanceFeatures(table, dim, context, undefined, 1, context.length);
}

export async function runConpet(ckpt: LlamaCheckpoint, tasks: readonly ConpetTask[], o: ConpetOptions): Promise<ConpetReport> {
  if (tasks.length === 0) throw new Error('conpet: no tasks');
  const bad = tasks.find((t) => t.train.length === 0 || t.heldOut.length === 0);
  if (bad) throw new Error(`conpet: task '${bad.name}' needs training and held-out examples`);
  const model = new AdaptedModel(ckpt);
  const table = model.embeddingTable(), dim = ckpt.config.dim;
  const selector = new TaskSelector(dim);
  const replay = new ReplayBuffer<{ feature: Float32Array; task: number }>(o.replaySize ?? 32, seededRandom(o.seed ?? 0));
  const names = tasks.map((_, i) => `task${i}`);
  const report: ConpetReport = { loss: [], routed: [], forgetting: [], model };
  for (const [t, task] of tasks.entries()) {
    // The task's own module, trained on its data alone (earlier modules are frozen: never trained again).
    for (const n of names.slice(0, t)) model.disable(n);
    model.addAdapter(names[t]!, 'lora', o.lora ?? { r: 8, targetModules: ['q_proj', 'v_proj'] }, { seed: (o.seed ?? 0) + t });
    const r = await fineTune({ model, adapter: names[t]!, backend: o.backend, data: pack(task.train, o.seq, 0), steps: o.steps ?? 40, batch: o.batch ?? 8, decay: 'constant', seed: o.seed ?? 0, ...(o.lr !== undefined ? { lr: o.lr } : {}) });
    await r.run.syncAdapter();
    // The selector: this task's examples and the replayed ones of earlier tasks.
    const current = task.train.map((e) => ({ feature: exampleFeature(table, dim, e), task: t }));
    const set = [...current, ...replay.items];
    selector.fit(set.map((s) => s.feature), set.map((s) => s.task), { tasks: t + 1 });
    for (const c of current) replay.offer(c);
    // Every task so far, routed by the selector through one mixed batch.
    model.setRowAdapters(names.slice(0, t + 1));
    const rt = model.runtime(o.backend);
    const losses: number[] = [], routed: number[] = [];
    for (let j = 0; j <= t; j++) {
      const held = tasks[j]!.heldOut, picks = held.map((e) => selector.predict(exampleFeature(table, dim, e)));
      routed.push(picks.filter((p) => p === j).length / picks.length);
      const seqs = held.map((e) => e.ids.slice(0, o.seq + 1));
      const targets = held.map((e) => Array.from(e.target.slice(1, o.seq + 1), (m, k) => (m ? e.ids[k + 1]! : -100)));
      const res = await rt.evalTargets(seqs.map((s) => s.slice(0, -1)), targets, { batch: o.batch ?? 8, tasks: picks.map((p) => p + 1) });
      losses.push(res.loss);
    }
    rt.dispose();
    model.setRowAdapters(undefined);
    report.loss.push(losses);
    report.routed.push(routed);
    o.onTask?.(t, report);
  }
  const last = report.loss[report.loss.length - 1]!;
  report.forgetting = last.map((l, j) => l - report.loss[j]![j]!);
  return report;
}
