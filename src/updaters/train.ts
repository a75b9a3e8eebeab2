/**
 * Training the base model's own weights, as an Updater chooses them. The tensors that train are f32 graph
 * parameters with an f32 master copy; the frozen ones are loaded as the checkpoint stores them (compact
 * types stay compact) and shared with evaluation. A change of the trainable set re-plans the step: the
 * graph is rebuilt with the new parameters, the moments of tensors that keep training are carried over and
 * those of tensors that stop are dropped, so optimizer state exists only for what trains.
 */
import type { AdamWHyper, Backend, HostArray } from '../backends/backend.js';
import { type PackedBlocks, batchAt } from '../data/dataset.js';
import { type LlamaCheckpoint, type NamedTensor, isCompactTensor, tensorDType, tensorF32 } from '../formats/checkpoint.js';
import { Graph, type Tensor } from '../graph/graph.js';
import { numel } from '../graph/types.js';
import { buildModel } from '../model/families.js';
import { nextTokenLoss } from '../model/loss.js';
import { LlamaRuntime } from '../model/runtime.js';
import { checkOptions, type Range } from '../util/ranges.js';
import { seededRandom } from '../util/random.js';
import { type DecayKind, lrSchedule } from '../train/schedule.js';
import { FINE_TUNE_RANGES } from '../train/finetune.js';
import { type StepResult, Trainer } from '../train/trainer.js';
import type { SparseDelta } from './sparse/delta.js';
import { type BaseTensorInfo, type TensorOptimizer, type Updater, type UpdaterContext, layerOf } from './types.js';

export interface BaseTrainOptions {
  checkpoint: LlamaCheckpoint;
  backend: Backend;
  data: PackedBlocks;
  /** Held-out blocks, evaluated every `evalEvery` steps and at the end. */
  evalData?: PackedBlocks;
  steps: number;
  batch: number;
  /** Peak learning rate (default 1e-4). */
  lr?: number;
  warmup?: number;
  decay?: DecayKind;
  weightDecay?: number;
  maxGradNorm?: number;
  /** Seeds the updater's draws (ctx.rng). */
  seed?: number;
  evalEvery?: number;
  onStep?(r: StepResult & { trainableFraction: number }): void;
  onEval?(r: { step: number; loss: number }): void;
  /** Progress lines (the updater's and the re-plans'). */
  log?(line: string): void;
}

export interface BaseTrainResult {
  /** The trained model, all tensors: those that trained as f32, the others as loaded. */
  checkpoint: LlamaCheckpoint;
  /** The last held-out loss (with evalData). */
  evalLoss?: number;
  evals: { step: number; loss: number }[];
  /** The task loss of each step. */
  losses: number[];
  /** The most optimizer-state bytes held at once (Adam moments, host optimizers' state). */
  optimizerStateBytes: number;
  /** Trainable elements over all base elements, averaged over the steps. */
  trainableFraction: number;
  /** Median wall time of a step (forward, backward, update and the updater's hooks; re-plans excluded). */
  stepMs: number;
  /** The updater's own figures, with trainableFraction. */
  summary: Record<string, number | string>;
  /** The result as a sparse delta over the base, for updaters that have one (SpIEL, LT-SFT, grafting). */
  sparseDelta?: SparseDelta;
}

/** The fine-tuning ranges less gradient accumulation and checkpoints, which base-weight training does not take. */
const { accumulate: _accumulate, checkpointEvery: _checkpointEvery, ...BASE_RANGES } = FINE_TUNE_RANGES;
export const BASE_TRAIN_RANGES = BASE_RANGES satisfies Record<string, Range>;

const BETA1 = 0.9, BETA2 = 0.999, EPS = 1e-8;

/** The base tensors a model's training graph reads, in graph order, with their decoder layers. */
export function baseTensors(ckpt: LlamaCheckpoint, batch = 1, seq = 2): BaseTensorInfo[] {
  const g = new Graph();
  const model = buildModel(g, ckpt.config, { batch, seq, weightDtype: (n) => { const t = ckpt.tensors.get(n); return t ? tensorDType(t) : 'f32'; } });
  nextTokenLoss(model, g.input('targets', [batch * seq], 'i32'), { ceChunk: 0 });
  return [...model.weights].map(([name, t]) => {
    const layer = layerOf(name);
    return { name, shape: [...t.shape], ...(layer !== undefined ? { layer } : {}) };
  });
}

function hasTargets(d: PackedBlocks): boolean {
  return d.rows > 0 && d.targets.some((t) => t !== -100);
}

interface Built {
  trainer: Trainer;
  trainable: ReadonlySet<string>;
  /** The tensors of this plan updated on the host, with their rules. */
  host: Map<string, TensorOptimizer>;
  ids: Tensor;
  targets: Tensor;
}

export async function trainBaseWeights(updater: Updater, o: BaseTrainOptions): Promise<BaseTrainResult> {
  checkOptions('trainBaseWeights', o as unknown as Record<string, unknown>, BASE_TRAIN_RANGES);
  if (!hasTargets(o.data)) throw new RangeError('trainBaseWeights: the training data has no token to predict (no rows, or every example is empty)');
  if (o.evalData && o.evalData.seq !== o.data.seq) throw new RangeError(`trainBaseWeights: evalData has rows of ${o.evalData.seq} tokens, data of ${o.data.seq}; pack both with the same seq`);
  if (o.evalData && !hasTargets(o.evalData)) throw new RangeError('trainBaseWeights: evalData has no token to predict');
  if (o.data.seq > o.checkpoint.config.maxSeqLen) throw new RangeError(`trainBaseWeights: rows of ${o.data.seq} tokens exceed the model's context of ${o.checkpoint.config.maxSeqLen}`);
  // A method may start elsewhere than the base (grafting: the masked fine-tuned model).
  const ckpt = updater.start ? await updater.start(o.checkpoint) : o.checkpoint;
  const T = o.data.seq, B = o.batch;
  const log = o.log ?? (() => {});
  const tensors = baseTensors(ckpt);
  const size = new Map(tensors.map((t) => [t.name, numel(t.shape)]));
  const totalElements = [...size.values()].reduce((a, b) => a + b, 0);
  // f32 master copies of every tensor that has trained (the trained model's values).
  const master = new Map<string, Float32Array>();
  // Moments of tensors that left training, kept only when the updater asks (keepMoments).
  const parked = new Map<string, { m: Float32Array; v: Float32Array; born: number }>();
  // Host optimizers and the step each started at (their own step count).
  const hostOpt = new Map<string, { opt: TensorOptimizer; since: number }>();
  const random = seededRandom(o.seed ?? 0);
  const schedule = lrSchedule(o.decay ?? 'cosine', o.steps, o.warmup ?? 0);
  const lr = o.lr ?? 1e-4;
  let built: Built | undefined;
  let step = 0;

  const f32Of = (name: string): Float32Array => {
    const m = master.get(name);
    if (m) return m;
    const t = ckpt.tensors.get(name);
    if (!t) throw new Error(`${ckpt.source}: no tensor ${name}`);
    return tensorF32(t);
  };
  const check = (names: Iterable<string>): Set<string> => {
    const set = new Set(names);
    for (const n of set) if (!size.has(n)) throw new Error(`${updater.method}: no base tensor named ${n} (the model has ${tensors.length}, e.g. ${tensors[0]?.name})`);
    if (set.size === 0) throw new Error(`${updater.method}: nothing to train (the trainable set is empty)`);
    return set;
  };
  const fraction = (set: ReadonlySet<string>): number => [...set].reduce((a, n) => a + size.get(n)!, 0) / totalElements;

  const ctx: UpdaterContext = {
    get step() { return step; },
    tensors,
    get trainable() { return built?.trainable ?? new Set<string>(); },
    rng: random,
    async values(names) {
      const live = built ? names.filter((n) => built!.trainable.has(n)) : [];
      const arrays = live.length ? await built!.trainer.session.getMany(live) : [];
      const out = new Map<string, Float32Array>(live.map((n, i) => [n, Float32Array.from(arrays[i]! as Float32Array)]));
      for (const n of names) if (!out.has(n)) out.set(n, Float32Array.from(f32Of(n)));
      return out;
    },
    async gradients(names) {
      if (!built) throw new Error('gradients: no step has run yet');
      return built.trainer.gradientValues(names);
    },
    log,
    async heldOutLoss(replace) {
      if (!o.evalData) return undefined;
      for (const [n, v] of replace) if (v.length !== size.get(n)) throw new Error(`heldOutLoss: ${n} ${size.has(n) ? `has ${size.get(n)} entries, not ${v.length}` : 'is no base tensor'}`);
      await syncMaster();
      const cur = currentCheckpoint();
      const tensors = new Map(cur.tensors);
      for (const [n, v] of replace) tensors.set(n, { shape: [...ckpt.tensors.get(n)!.shape], data: v });
      return heldOut({ ...cur, tensors });
    },
  };

  /** Copy the trained values out of the plan into the master copies. */
  const syncMaster = async (): Promise<void> => {
    if (!built) return;
    const names = [...built.trainable];
    const arrays = await built.trainer.session.getMany(names);
    names.forEach((n, i) => master.set(n, Float32Array.from(arrays[i]! as Float32Array)));
  };

  /** Build the step for a trainable set, carrying over the moments of the tensors that stay. */
  const plan = async (want: Set<string>): Promise<void> => {
    let carried: Map<string, Float32Array> = new Map(), born = new Map<string, number>();
    if (built) {
      await syncMaster();
      const state = await built.trainer.exportState();
      born = built.trainer.momentsBorn();
      for (const n of built.trainable) {
        const m = state.tensors.get(`${n}.adam_m`), v = state.tensors.get(`${n}.adam_v`);
        if (!m || !v) continue;
        if (want.has(n)) { carried.set(`${n}.adam_m`, m); carried.set(`${n}.adam_v`, v); }
        else if (updater.keepMoments) parked.set(n, { m, v, born: born.get(n) ?? 0 });
      }
      for (const n of built.host.keys()) if (!want.has(n)) hostOpt.delete(n);
      built.trainer.dispose();
      built = undefined;
    }
    for (const n of want) {
      const p = parked.get(n);
      if (p && !carried.has(`${n}.adam_m`)) { carried.set(`${n}.adam_m`, p.m); carried.set(`${n}.adam_v`, p.v); born.set(n, p.born); }
      parked.delete(n);
      if (!hostOpt.has(n)) {
        const opt = updater.tensorOptimizer?.(n, tensors.find((t) => t.name === n)!.shape);
        if (opt) hostOpt.set(n, { opt, since: step });
      }
    }
    const g = new Graph();
    // What trains (or has trained) is f32; the rest keeps the type it was loaded with.
    const model = buildModel(g, ckpt.config, { batch: B, seq: T, weightDtype: (n) => {
      if (want.has(n) || master.has(n)) return 'f32';
      const t = ckpt.tensors.get(n);
      return t ? tensorDType(t) : 'f32';
    } });
    const targets = g.input('targets', [B * T], 'i32');
    // The head's own gradient needs the recomputing chunks; otherwise each chunk's gradient comes with its forward.
    const headTrains = [...want].some((n) => n === 'lm_head.weight' || (ckpt.config.tiedEmbeddings && n === 'model.embed_tokens.weight'));
    const { loss, segments } = nextTokenLoss(model, targets, { ceChunk: 'auto', rowsOnly: !headTrains });
    const weights = new Map<Tensor, HostArray>();
    const trainable: Tensor[] = [];
    for (const [name, t] of model.weights) {
      if (want.has(name)) { trainable.push(t); continue; }
      const m = master.get(name);
      weights.set(t, m ?? sourceOf(ckpt.tensors.get(name)!));
    }
    const host = new Map([...want].filter((n) => hostOpt.has(n)).map((n) => [n, hostOpt.get(n)!.opt]));
    const trainer = await Trainer.create({
      graph: g, loss, trainable, backend: o.backend, checkpoint: segments, weights,
      ...(host.size ? { hostUpdated: new Set(host.keys()), hostUpdate: (h: AdamWHyper) => hostStep(h) } : {}),
      ...(updater.beforeUpdate ? { beforeUpdate: () => updater.beforeUpdate!(ctx) } : {}),
      optimizer: { lr, beta1: BETA1, beta2: BETA2, eps: EPS, weightDecay: o.weightDecay ?? 0, schedule, ...(o.maxGradNorm !== undefined ? { maxGradNorm: o.maxGradNorm } : {}) },
    });
    for (const n of want) trainer.session.set(n, Float32Array.from(f32Of(n)));
    trainer.importState({ step, tensors: carried }, { partial: true, born });
    built = { trainer, trainable: want, host, ids: model.ids, targets };
    const frac = fraction(want);
    log(`${updater.method}: ${want.size} of ${tensors.length} base tensors train from step ${step + 1} (${(100 * frac).toFixed(2)}% of ${totalElements} weights)`);
  };

  /** The host-side updates of this step: read gradient and value, update, write back. */
  const hostStep = async (h: AdamWHyper): Promise<void> => {
    const b = built!;
    const names = [...b.host.keys()];
    const graph = b.trainer.session.graph;
    const gradIds = names.map((n) => gradOf(b.trainer, n));
    const arrays = await b.trainer.session.getMany([...names.map((n) => graph.byName(n)!.id), ...gradIds]);
    names.forEach((n, i) => {
      const param = Float32Array.from(arrays[i]! as Float32Array), grad = Float32Array.from(arrays[names.length + i]! as Float32Array);
      b.host.get(n)!.update(param, grad, { lr: h.lr, step: h.step - hostOpt.get(n)!.since, beta1: h.beta1, beta2: h.beta2, eps: h.eps, weightDecay: h.weightDecay, gradScale: h.gradScale });
      b.trainer.session.set(n, param);
    });
  };

  const stateBytes = (): number => {
    let n = 0;
    if (built) for (const name of built.trainable) if (!built.host.has(name)) n += 2 * 4 * size.get(name)!;
    for (const { opt } of hostOpt.values()) n += opt.stateBytes();
    for (const p of parked.values()) n += p.m.byteLength + p.v.byteLength;
    return n;
  };

  /** The mean next-token loss of a model over evalData's rows. */
  const heldOut = async (model: LlamaCheckpoint): Promise<number> => {
    const rt = new LlamaRuntime(model, o.backend);
    const ev = o.evalData!;
    let total = 0, count = 0;
    for (let r = 0; r < ev.rows; r += B) {
      const b = batchAt(ev, r, B), n = Math.min(B, ev.rows - r);
      const rows = Array.from({ length: n }, (_, i) => Array.from(b.ids.subarray(i * T, i * T + T)));
      const tgs = Array.from({ length: n }, (_, i) => Array.from(b.targets.subarray(i * T, i * T + T)));
      const res = await rt.evalTargets(rows, tgs, { batch: B, seq: T });
      total += res.loss * res.tokens; count += res.tokens;
    }
    rt.dispose();
    return total / Math.max(1, count);
  };

  const evaluate = async (): Promise<{ step: number; loss: number }> => {
    await syncMaster();
    const e = { step, loss: await heldOut(currentCheckpoint()) };
    o.onEval?.(e);
    return e;
  };

  const currentCheckpoint = (): LlamaCheckpoint => {
    const out = new Map<string, NamedTensor>();
    for (const [name, t] of ckpt.tensors) {
      const m = master.get(name);
      out.set(name, m ? { shape: [...t.shape], data: m } : t);
    }
    return { ...ckpt, tensors: out };
  };

  await plan(check(updater.initialTrainable(ctx)));
  const losses: number[] = [], evals: { step: number; loss: number }[] = [], stepMs: number[] = [];
  let peakState = stateBytes(), fractionSum = 0, row = 0;
  let sparse: SparseDelta | undefined;
  try {
    while (step < o.steps) {
      const b = batchAt(o.data, row, B);
      row = (row + B) % o.data.rows;
      const t0 = performance.now();
      const r = await built!.trainer.step([[built!.ids, b.ids], [built!.targets, b.targets]]);
      step = r.step;
      // Not after the last step: a new trainable set would have nothing left to train.
      const next = step < o.steps ? await updater.afterStep?.(ctx) : undefined;
      stepMs.push(performance.now() - t0);
      const frac = fraction(built!.trainable);
      fractionSum += frac;
      losses.push(r.loss);
      o.onStep?.({ ...r, trainableFraction: frac });
      peakState = Math.max(peakState, stateBytes());
      if (next !== undefined) {
        const want = check(next);
        if (!sameSet(want, built!.trainable)) {
          await plan(want);
          peakState = Math.max(peakState, stateBytes());
        }
      }
      if (o.evalData && o.evalEvery && step % o.evalEvery === 0) evals.push(await evaluate());
    }
    await syncMaster();
    if (o.evalData && (!o.evalEvery || o.steps % o.evalEvery !== 0)) evals.push(await evaluate());
    // Asked while the last plan is alive, so ctx.values reads the trained values.
    if (updater.sparseDelta) sparse = await updater.sparseDelta(ctx);
  } finally {
    built?.trainer.dispose();
  }
  const trainableFraction = fractionSum / Math.max(1, o.steps);
  const sorted = [...stepMs].sort((a, b) => a - b);
  const result: BaseTrainResult = {
    checkpoint: currentCheckpoint(), evals, losses, optimizerStateBytes: peakState, trainableFraction,
    stepMs: sorted[Math.floor(sorted.length / 2)] ?? 0,
    summary: { trainableFraction, ...(updater.summary?.() ?? {}) },
  };
  if (evals.length) result.evalLoss = evals[evals.length - 1]!.loss;
  if (sparse) result.sparseDelta = sparse;
  return result;
}

/** The array a frozen tensor is loaded from: its stored bytes, compact or f32. */
function sourceOf(t: NamedTensor): HostArray {
  return isCompactTensor(t) ? t.bytes : t.data;
}

/** The gradient value id of a trainable tensor in a trainer's plan. */
function gradOf(trainer: Trainer, name: string): number {
  const id = trainer.gradientId(name);
  if (id === undefined) throw new Error(`no gradient for ${name}`);
  return id;
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}
