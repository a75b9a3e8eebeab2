/**
 * Fine-tuning an adapter on a Llama model: builds the training graph with the adapter's transform,
 * uploads frozen weights once, runs the trainer over packed batches with evaluation and checkpoints,
 * and writes the trained values back into the adapter.
 */
import type { AdaptedModel } from '../adapters/adapted-model.js';
import { adapterParamName } from '../adapters/adapted-model.js';
import type { TrainerAccess } from '../adapters/types.js';
import { type Backend, type ExecutionPlan, OutOfMemoryError } from '../backends/backend.js';
import { adviseOutOfMemory, checkTrainingPlan, type TrainingShape } from './memory.js';
import { type PackedBlocks, batchAt } from '../data/dataset.js';
import * as F from '../graph/api.js';
import { type CheckpointSegment, layerSegments } from '../graph/checkpoint.js';
import { Graph, type Tensor } from '../graph/graph.js';
import type { LlamaGraph } from '../model/llama.js';
import { INSTANCE_INPUT, TASK_ID_INPUT } from '../model/names.js';
import { buildModel } from '../model/families.js';
import { type CeChunk, nextTokenLoss } from '../model/loss.js';
import { checkpointDtypes, weightSources } from '../model/runtime.js';
import type { LlamaCheckpoint } from '../formats/checkpoint.js';
import { type StepProfile, summarizeProfile, typicalStepMs } from '../scheduler/profile.js';
import { checkOptions, type Range } from '../util/ranges.js';
import { DECAY_KINDS, type DecayKind, lrSchedule } from './schedule.js';
import { type StepResult, Trainer } from './trainer.js';
import type { TrainingState } from './training-state.js';

export interface FineTuneOptions {
  model: AdaptedModel;
  adapter: string;
  backend: Backend;
  data: PackedBlocks;
  steps: number;
  batch: number;
  /** Peak learning rate (default: the method's `defaultLr`). */
  lr?: number;
  warmup?: number;
  decay?: DecayKind;
  weightDecay?: number;
  maxGradNorm?: number;
  accumulate?: number;
  seed?: number;
  /** Evaluate on these blocks every `evalEvery` steps (and at the end). */
  evalData?: PackedBlocks;
  evalEvery?: number;
  onStep?: (r: StepResult & { tokens: number; seconds: number }) => void;
  onEval?: (r: { step: number; loss: number }) => void;
  /** Called every `checkpointEvery` steps with the trainer, so the caller can save adapter + optimizer state. */
  checkpointEvery?: number;
  onCheckpoint?: (step: number, trainer: FineTuneRun) => Promise<void>;
  /** Resume from a saved training state (decodeTrainingState); the adapter must hold its saved values. */
  resume?: TrainingState;
  /**
   * Time every kernel of the last step (plan steps and AdamW updates): GPU timestamps on webgpu, the host
   * clock on js and wasm. The result's `profile` compares their sum with a typical step's wall time.
   */
  profile?: boolean;
  /**
   * Activation checkpointing: keep only each layer's input through the forward pass and recompute the
   * layer in the backward pass (about one more forward's work for much less memory; same gradients).
   */
  checkpointing?: boolean;
  /**
   * Rows of the output head and cross-entropy computed at a time, so the [tokens × vocabulary] logits never
   * exist whole: a row count, 0 for all rows at once, or 'auto' (default: chunks of at most 64 MiB of
   * logits, and none when the whole logits fit in that).
   */
  ceChunk?: CeChunk;
  /**
   * Check the planned memory against the backend's limits before the first step (default true): a run
   * that cannot fit is refused with a MemoryPlanError naming settings that would fit.
   */
  memoryCheck?: boolean;
}

/** The range of each numeric or enumerated option (the command line's flags use the same ranges). */
export const FINE_TUNE_RANGES = {
  steps: { integer: true, min: 1 },
  batch: { integer: true, min: 1 },
  // AdamW moves each parameter by about lr per step: above 1 that outweighs any weight of a trained model.
  lr: { above: 0, max: 1 },
  warmup: { integer: true, min: 0 },
  decay: { oneOf: DECAY_KINDS },
  weightDecay: { min: 0 },
  maxGradNorm: { above: 0 },
  accumulate: { integer: true, min: 1 },
  seed: { integer: true },
  evalEvery: { integer: true, min: 0 },
  checkpointEvery: { integer: true, min: 0 },
} satisfies Record<string, Range>;

/** Positions a model's context must hold for rows of `seq` tokens with the adapters' virtual tokens and prefix. */
export function contextNeeded(model: AdaptedModel, seq: number): { needed: number; reserved: number } {
  const { hooks } = model.hooks();
  const reserved = (hooks.virtualTokens ?? 0) + (hooks.prefixTokens ?? 0);
  return { needed: seq + reserved, reserved };
}

function hasTargets(d: PackedBlocks): boolean {
  return d.rows > 0 && d.targets.some((t) => t !== -100);
}

/** Every option and the data's fit to the model, before any work. */
function checkFineTune(o: FineTuneOptions): void {
  checkOptions('fineTune', o as unknown as Record<string, unknown>, FINE_TUNE_RANGES);
  if (!hasTargets(o.data)) throw new RangeError('fineTune: the training data has no token to predict (no rows, or every example is empty)');
  if (o.evalData && o.evalData.seq !== o.data.seq) throw new RangeError(`fineTune: evalData has rows of ${o.evalData.seq} tokens, data of ${o.data.seq}; pack both with the same seq`);
  if (o.evalData && !hasTargets(o.evalData)) throw new RangeError('fineTune: evalData has no token to predict (no rows, or every example is empty)');
  const tasks = o.model.taskCount();
  if (tasks !== undefined) {
    checkTasks('data', o.data, tasks);
    if (o.evalData) checkTasks('evalData', o.evalData, tasks);
  }
  const { needed, reserved } = contextNeeded(o.model, o.data.seq);
  const context = o.model.base.config.maxSeqLen;
  if (needed > context) throw new RangeError(`fineTune: rows of ${o.data.seq} tokens${reserved ? ` plus ${reserved} adapter positions` : ''} exceed the model's context of ${context} (pack the data with seq ≤ ${context - reserved})`);
}

/** Rows' task ids fit an adapter that routes by `n` tasks: every row has one below n (rows without one are task 0 when n is 1). */
function checkTasks(name: string, d: PackedBlocks, n: number): void {
  if (n === 1) {
    const bad = d.tasks?.find((t) => t > 0);
    if (bad !== undefined) throw new RangeError(`fineTune: ${name} has task id ${bad}, but the adapter routes by 1 task (only task 0)`);
    return;
  }
  const missing = d.tasks ? d.tasks.filter((t) => t < 0).length : d.rows;
  if (missing) throw new RangeError(`fineTune: the adapter routes each row by a task id (${n} tasks), but ${missing} of ${name}'s ${d.rows} rows have none: give every JSONL line an integer "task" field`);
  const bad = d.tasks!.find((t) => t >= n);
  if (bad !== undefined) throw new RangeError(`fineTune: ${name} has task id ${bad}, outside the adapter's ${n} tasks (0 to ${n - 1})`);
}

/** A batch's task ids for the graph: rows without one (only allowed with one task) are task 0. */
function batchTasks(tasks: Int32Array | undefined, batch: number): Int32Array {
  return tasks ? tasks.map((t) => Math.max(0, t)) : new Int32Array(batch);
}

export interface FineTuneResult {
  losses: number[];
  evals: { step: number; loss: number }[];
  run: FineTuneRun;
  /** With `profile`: the last step's kernels; null when the backend cannot time them (no timestamp-query). */
  profile?: StepProfile | null;
}

export interface FineTuneRun {
  readonly trainer: Trainer;
  /** Copy the current trained values into the adapter's parameter store. */
  syncAdapter(): Promise<void>;
  /** Optimizer and controller state for a checkpoint (call syncAdapter first for the parameters). */
  exportState(): Promise<TrainingState>;
}

export interface TrainingGraph {
  readonly graph: Graph;
  readonly model: LlamaGraph;
  /** i32 [batch · seq]. */
  readonly targets: Tensor;
  /** The objective: next-token cross-entropy plus the adapters' loss terms. */
  readonly loss: Tensor;
  /** The next-token cross-entropy alone (the task loss, logged as "loss"). */
  readonly taskLoss: Tensor;
  /** The adapters' loss terms by the name they are logged under (empty for most methods). */
  readonly terms: ReadonlyMap<string, Tensor>;
  /** The adapter parameters that train, as graph params. */
  readonly trainable: Tensor[];
  /** Segments for `gradients` (Trainer's `checkpoint`): each layer with checkpointing, each cross-entropy chunk. */
  readonly segments: CheckpointSegment[];
  /** The weights the graph reads (base with merged adapters and residuals applied), in their stored types. */
  readonly weights: LlamaCheckpoint;
}

/**
 * The forward training graph of an adapter on its model, before gradients. With a chunked loss and a head
 * that nothing trained feeds (a frozen output layer), each chunk's gradient is formed in the forward pass
 * (`rowsOnly` of chunkedCrossEntropy: one pass over the head fewer); a trained head gets the recomputing
 * chunks instead.
 */
export function buildTrainingGraph(m: AdaptedModel, adapterName: string, o: { batch: number; seq: number; checkpointing?: boolean; ceChunk?: CeChunk }, rowsOnly = true): TrainingGraph {
  const adapter = m.get(adapterName);
  const graph = new Graph();
  const { hooks, built, regularizers } = m.hooks({ training: true });
  const weights = m.effectiveCheckpoint();
  // The effective config: a saved lm_head (PEFT modules_to_save) unties the head from the embedding.
  const model = buildModel(graph, weights.config, { batch: o.batch, seq: o.seq, hooks, weightDtype: checkpointDtypes(weights) });
  const layers = o.checkpointing ? layerSegments(graph) : [];
  const targets = graph.input('targets', [o.batch * o.seq], 'i32');
  const { loss: ce, segments: chunks, logits } = nextTokenLoss(model, targets, { ceChunk: o.ceChunk ?? 'auto', rowsOnly });
  // The objective is the task loss plus each adapter's regulariser; the trainer reads every part by name.
  const terms = regularizers(graph);
  const loss = [...terms.values()].reduce((sum, r) => F.add(sum, r), ce);
  const params = built.get(graph) ?? new Map<string, Tensor>();
  const trainable = [...adapter.params.keys()].filter((k) => m.isTrainable(adapter.name, k)).map((k) => {
    const t = params.get(adapterParamName(adapter.name, k));
    if (!t) throw new Error(`adapter '${adapter.name}' parameter ${k} is not used by the model graph`);
    return t;
  });
  if (rowsOnly && logits.length > 1 && feeds(logits, new Set(trainable.map((t) => t.id)), model.hidden.id)) return buildTrainingGraph(m, adapterName, o, false);
  return { graph, model, targets, loss, taskLoss: ce, terms, trainable, segments: [...layers, ...chunks], weights };
}

/** Whether any of `values` is computed from one of `params` other than through `through` (walking producers back). */
function feeds(values: readonly Tensor[], params: ReadonlySet<number>, through: number): boolean {
  const g = values[0]!.graph, seen = new Set<number>([through]), stack = values.map((v) => v.id);
  while (stack.length) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    if (params.has(id)) return true;
    const producer = g.values[id]!.producer;
    if (producer >= 0) stack.push(...g.nodes[producer]!.inputs);
  }
  return false;
}

export async function fineTune(o: FineTuneOptions): Promise<FineTuneResult> {
  const adapter = o.model.get(o.adapter);
  checkFineTune(o);
  const T = o.data.seq;
  const { graph: g, model, targets, loss, taskLoss, terms, trainable, segments, weights } = buildTrainingGraph(o.model, o.adapter, {
    batch: o.batch, seq: T, ...(o.checkpointing ? { checkpointing: true } : {}), ...(o.ceChunk !== undefined ? { ceChunk: o.ceChunk } : {}),
  });
  const controller = o.model.controller(adapter.name, o.steps);
  const name = (key: string): string => adapterParamName(adapter.name, key);
  const access: TrainerAccess = {
    async values(keys) {
      const arrays = await trainer.session.getMany(keys.map(name));
      return new Map(keys.map((k, i) => [k, Float32Array.from(arrays[i]!)]));
    },
    async gradients(keys) {
      const grads = await trainer.gradientValues(keys.map(name));
      return new Map(keys.map((k) => [k, grads.get(name(k))!]));
    },
    write: (key, data) => trainer.session.set(name(key), data),
    setTrainable: (keys) => trainer.setTrainable(keys.map(name)),
  };
  const shape: TrainingShape = {
    batch: o.batch, seq: T, accumulate: o.accumulate ?? 1, ...(o.checkpointing ? { checkpointing: true } : {}), ...(o.ceChunk !== undefined ? { ceChunk: o.ceChunk } : {}),
  };
  let plan: ExecutionPlan | undefined;
  // Running out of memory anyway (a limit the estimate could not see) gets the same advice as a refusal.
  const advised = <T>(work: () => Promise<T>): Promise<T> => work().catch((e: unknown) => {
    throw e instanceof OutOfMemoryError && plan ? adviseOutOfMemory(e, plan, o.model, o.adapter, o.backend, shape) : e;
  });
  const trainer: Trainer = await advised(() => Trainer.create({
    graph: g, loss, task: taskLoss, terms, trainable, backend: o.backend, accumulate: o.accumulate ?? 1, checkpoint: segments, weights: weightSources(model.weights, weights),
    checkPlan: (p) => {
      plan = p;
      if (o.memoryCheck !== false) checkTrainingPlan(p, o.model, o.adapter, o.backend, shape);
    },
    ...(controller?.beforeUpdate ? { beforeUpdate: (step: number) => controller.beforeUpdate!(step, access) } : {}),
    optimizer: {
      lr: o.lr ?? adapter.method.defaultLr.value, weightDecay: o.weightDecay ?? 0, schedule: lrSchedule(o.decay ?? 'cosine', o.steps, o.warmup ?? 0),
      ...(o.maxGradNorm !== undefined ? { maxGradNorm: o.maxGradNorm } : {}),
    },
  }));
  o.model.uploadAdapterParams(trainer.session);
  if (o.resume) {
    trainer.importState({ step: o.resume.step, tensors: o.resume.optimizer });
    controller?.importState?.(o.resume.controller);
  }
  const seedInput = g.byName('dropout_seed');
  const taskInput = g.byName(TASK_ID_INPUT);
  const instanceInput = g.byName(INSTANCE_INPUT), instanceOf = o.model.hooks().hooks.instance;

  const run: FineTuneRun = {
    trainer,
    async syncAdapter() {
      const values = await trainer.trainableValues();
      for (const [name, data] of values) adapter.params.get(name.slice(adapter.name.length + 1))!.data.set(data);
    },
    async exportState() {
      const { step, tensors } = await trainer.exportState();
      return { step, optimizer: tensors, controller: controller?.exportState?.() ?? new Map() };
    },
  };

  const evaluate = async (step: number): Promise<{ step: number; loss: number }> => {
    const rt = o.model.runtime(o.backend);
    await run.syncAdapter();
    let total = 0, count = 0;
    const ev = o.evalData!;
    for (let r = 0; r < ev.rows; r += o.batch) {
      const b = batchAt(ev, r, o.batch);
      const seqs = Array.from({ length: Math.min(o.batch, ev.rows - r) }, (_, i) => {
        const row = Array.from(b.ids.subarray(i * T, i * T + T));
        const tg = b.targets.subarray(i * T, i * T + T);
        return { row, tg };
      });
      const tasks = o.model.taskCount() !== undefined ? Array.from(batchTasks(b.tasks, o.batch).subarray(0, seqs.length)) : undefined;
      const res = await rt.evalTargets(seqs.map((s) => s.row), seqs.map((s) => Array.from(s.tg)), { ceChunk: o.ceChunk ?? 'auto', ...(tasks ? { tasks } : {}) });
      total += res.loss * res.tokens; count += res.tokens;
    }
    rt.dispose();
    const e = { step, loss: total / Math.max(1, count) };
    o.onEval?.(e);
    return e;
  };

  const losses: number[] = [], evals: { step: number; loss: number }[] = [];
  const accumulate = o.accumulate ?? 1;
  let row = ((o.resume?.step ?? 0) * o.batch * accumulate) % Math.max(1, o.data.rows);
  const started = performance.now();
  let tokens = 0;
  // Wall time of each unprofiled step, and the profiled step's kernels.
  const stepMs: number[] = [];
  let profiled: Awaited<ReturnType<typeof trainer.session.exe.endProfile>> | undefined;
  for (let s = trainer.steps; s < o.steps; s++) {
    const micro = Array.from({ length: accumulate }, (_, k) => {
      const b = batchAt(o.data, row, o.batch);
      row = (row + o.batch) % o.data.rows;
      tokens += o.batch * T;
      const feed: [Tensor, Int32Array | Float32Array][] = [[model.ids, b.ids], [targets, b.targets]];
      if (seedInput) feed.push([seedInput, Int32Array.of(((o.seed ?? 0) * 1000003 + s * 7919 + k * 104729) | 0)]);
      if (taskInput) feed.push([taskInput, batchTasks(b.tasks, o.batch)]);
      if (instanceInput) feed.push([instanceInput, instanceOf!(b.ids, b.targets, o.batch, T)]);
      return feed;
    });
    const profiling = o.profile === true && s === o.steps - 1;
    if (profiling) trainer.session.exe.beginProfile();
    const t0 = performance.now();
    const r = await advised(() => trainer.step(micro));
    if (profiling) profiled = await trainer.session.exe.endProfile();
    else stepMs.push(performance.now() - t0);
    await controller?.afterUpdate?.(r.step, access);
    losses.push(r.loss);
    o.onStep?.({ ...r, tokens, seconds: (performance.now() - started) / 1000 });
    if (o.evalData && o.evalEvery && r.step % o.evalEvery === 0) evals.push(await evaluate(r.step));
    if (o.onCheckpoint && o.checkpointEvery && r.step % o.checkpointEvery === 0) { await run.syncAdapter(); await o.onCheckpoint(r.step, run); }
  }
  await run.syncAdapter();
  if (o.evalData && (!o.evalEvery || o.steps % o.evalEvery !== 0)) evals.push(await evaluate(trainer.steps));
  const result: FineTuneResult = { losses, evals, run };
  if (profiled !== undefined) {
    result.profile = profiled && summarizeProfile(o.backend.describe(), trainer.session.exe.backend === 'webgpu' ? 'gpu' : 'host', profiled, typicalStepMs(stepMs));
  }
  return result;
}
