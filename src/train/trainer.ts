/**
 * The training step: forward, backward (autodiff appended to the same graph), global gradient norm,
 * then a fused AdamW update per trainable tensor. One readback per step (loss and gradient norm).
 */
import type { AdamWHyper, Backend, ExecutionPlan, HostArray } from '../backends/backend.js';
import { planGraph } from '../scheduler/plan.js';
import * as F from '../graph/api.js';
import { gradients } from '../graph/autodiff.js';
import type { CheckpointSegment } from '../graph/checkpoint.js';
import { getOp } from '../graph/ops/index.js';
import type { Graph, Tensor } from '../graph/graph.js';
import { numel } from '../graph/types.js';
import { Session } from '../scheduler/session.js';

export interface OptimizerOptions {
  /** Peak learning rate (default 1e-3). */
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay (default 0). */
  weightDecay?: number;
  /** Clip the global gradient norm to this (default: off). */
  maxGradNorm?: number;
  /** Learning-rate multiplier per 1-based step (warmup and decay); default constant 1. */
  schedule?: (step: number) => number;
}

export interface TrainerSpec {
  graph: Graph;
  /** The objective the gradients are taken of. */
  loss: Tensor;
  /**
   * The task loss when the objective adds other terms: reported as `loss`, with the objective as
   * `objective` (default: the objective itself).
   */
  task?: Tensor;
  /** Named parts of the objective (regularisers), read with it each step and reported in `terms`. */
  terms?: ReadonlyMap<string, Tensor>;
  trainable: readonly Tensor[];
  backend: Backend;
  optimizer?: OptimizerOptions;
  /** Micro-batches whose gradients are summed before each optimizer step (default 1). */
  accumulate?: number;
  /** Forward segments the backward pass recomputes instead of keeping their activations (checkpoint.ts). */
  checkpoint?: readonly CheckpointSegment[];
  /**
   * Called with the 1-based step number after that step's gradients exist and before the optimizer uses
   * them (importance scores that need a parameter and its gradient at the same point: AdaLoRA).
   */
  beforeUpdate?: (step: number) => Promise<void>;
  /** Called with the plan before the backend loads it (a memory check that refuses to start). */
  checkPlan?: (plan: ExecutionPlan) => void;
  /** Frozen weights loaded with the graph (see Session.create: shared with other sessions loaded from the same arrays). */
  weights?: ReadonlyMap<Tensor | number, HostArray>;
  /**
   * Trainable tensors (by name) that the caller updates itself on the host (GaLore's projected Adam, sparse
   * updates): they get a gradient but no Adam moments, and the fused AdamW leaves them alone.
   */
  hostUpdated?: ReadonlySet<string>;
  /** Called after the fused updates of each step with that step's hyperparameters, to update the hostUpdated tensors. */
  hostUpdate?: (hyper: AdamWHyper) => Promise<void>;
}

/**
 * One trained tensor's values in the plan: itself, its gradient and squared norm, AdamW's moments (−1 for a
 * tensor the caller updates on the host), and `born`: the step count at which its moments were zero, so
 * that moments started later (a tensor that joined training) get their own bias correction.
 */
export interface TrainerSlot { param: number; grad: number; m: number; v: number; name: string; sq: number; active: boolean; born: number }

export type Feed = [Tensor | string, Int32Array | Float32Array][];

export interface StepResult {
  step: number;
  /** The task loss (mean over micro-batches). */
  loss: number;
  /** What the optimizer minimised: the task loss plus every term. */
  objective: number;
  /** Each regulariser's value by name (empty when the objective is the task loss alone). */
  terms: Record<string, number>;
  gradNorm: number;
  lr: number;
}

export class Trainer {
  private stepCount = 0;
  private constructor(
    readonly session: Session,
    private readonly loss: Tensor,
    private readonly task: Tensor,
    private readonly terms: readonly [string, Tensor][],
    private readonly slots: TrainerSlot[],
    private readonly o: Required<OptimizerOptions>,
    readonly accumulate: number,
    private readonly beforeUpdate?: (step: number) => Promise<void>,
    private readonly hostUpdate?: (hyper: AdamWHyper) => Promise<void>,
  ) {}

  /**
   * Append what a training step needs to the graph: the backward pass (recomputing checkpoint segments),
   * the gradient norms, accumulation sums and AdamW's moments. `create` runs this; planning it alone
   * tells what a run will need before any memory is taken.
   */
  static prepare(spec: Omit<TrainerSpec, 'backend' | 'optimizer' | 'beforeUpdate' | 'hostUpdate'>): TrainerSlot[] {
    const { graph: g, loss, trainable } = spec;
    if (trainable.length === 0) throw new Error('nothing to train: the trainable set is empty');
    const accumulate = spec.accumulate ?? 1;
    if (!(Number.isInteger(accumulate) && accumulate >= 1)) throw new Error(`gradient accumulation must be an integer ≥ 1 (got ${accumulate})`);
    const grads = gradients(loss, trainable, spec.checkpoint ? { checkpoint: spec.checkpoint } : {});
    // With accumulation, each run adds its gradient into a persistent sum that the optimizer reads.
    const used = trainable.map((t) => {
      const d = grads.get(t);
      return accumulate > 1 ? F.accumulate(g.state(`${t.info.name ?? t.id}.grad_sum`, t.shape), d) : d;
    });
    // Each gradient's squared norm is a graph output, read with the loss in one batch, so clipping costs
    // no extra pass and a frozen tensor's share can simply be left out.
    const sq = used.map((d) => F.sum(F.mul(d, d)));
    g.markOutput(loss, ...(spec.task ? [spec.task] : []), ...(spec.terms?.values() ?? []), ...sq);
    return trainable.map((t, i) => {
      const host = spec.hostUpdated?.has(t.info.name ?? `%${t.id}`) === true;
      return {
        sq: sq[i]!.id,
        active: true,
        name: t.info.name ?? `%${t.id}`,
        param: t.id,
        grad: accumulate > 1 ? g.nodes[used[i]!.info.producer]!.inputs[0]! : used[i]!.id,
        m: host ? -1 : g.state(`${t.info.name ?? t.id}.adam_m`, t.shape).id,
        v: host ? -1 : g.state(`${t.info.name ?? t.id}.adam_v`, t.shape).id,
        born: 0,
      };
    });
  }

  static async create(spec: TrainerSpec): Promise<Trainer> {
    const g = spec.graph, loss = spec.loss, accumulate = spec.accumulate ?? 1;
    const slots = Trainer.prepare(spec);
    const plan = planGraph(g);
    spec.checkPlan?.(plan);
    const session = await Session.create(g, spec.backend, plan, spec.weights);
    for (const s of slots) {
      const zeros = new Float32Array(numel(g.values[s.param]!.shape));
      if (s.m >= 0) {
        session.set(s.m, zeros);
        session.set(s.v, zeros);
      }
      if (accumulate > 1) session.set(s.grad, zeros);
    }
    const o = spec.optimizer ?? {};
    return new Trainer(session, loss, spec.task ?? loss, [...(spec.terms ?? [])], slots, {
      lr: o.lr ?? 1e-3, beta1: o.beta1 ?? 0.9, beta2: o.beta2 ?? 0.999, eps: o.eps ?? 1e-8,
      weightDecay: o.weightDecay ?? 0, schedule: o.schedule ?? (() => 1), maxGradNorm: o.maxGradNorm ?? Infinity,
    }, accumulate, spec.beforeUpdate, spec.hostUpdate);
  }

  /**
   * One optimizer step: run each micro-batch feed (as many as `accumulate`; an empty list runs once on
   * inputs already set), then update. The loss reported is the mean over the micro-batches.
   */
  async step(micro: Feed[] | Feed = []): Promise<StepResult> {
    // A list of feeds has arrays (feeds) as entries of its entries; a feed has a tensor or name there.
    const feeds: Feed[] = Array.isArray((micro[0] as unknown[] | undefined)?.[0]) ? (micro as Feed[]) : [micro as Feed];
    if (feeds.length !== this.accumulate) throw new Error(`step needs ${this.accumulate} micro-batches (gradient accumulation), got ${feeds.length}`);
    let lossSum = 0, objectiveSum = 0, gn2 = 0;
    const termSums = this.terms.map(() => 0);
    const active = this.slots.filter((s) => s.active);
    // Accumulated gradients are sums kept between runs: clear them as a step begins (not after the last
    // update, so that the last step's gradients stay readable through gradientValues).
    if (this.accumulate > 1) for (const s of active) this.session.set(s.grad, new Float32Array(numel(this.session.graph.values[s.grad]!.shape)));
    for (const feed of feeds) {
      for (const [ref, data] of feed) this.session.set(ref, data);
      await this.session.run(this.skip);
      const [objArr, taskArr, ...rest] = await this.session.getMany([this.loss, this.task, ...this.terms.map(([, t]) => t), ...active.map((s) => s.sq)]);
      objectiveSum += objArr![0]!;
      lossSum += taskArr![0]!;
      this.terms.forEach((_, i) => { termSums[i]! += rest[i]![0]!; });
      const sqs = rest.slice(this.terms.length);
      gn2 = sqs.reduce((a, x) => a + x[0]!, 0);
    }
    const loss = lossSum / feeds.length, objective = objectiveSum / feeds.length;
    const terms = Object.fromEntries(this.terms.map(([name], i) => [name, termSums[i]! / feeds.length]));
    // The summed gradient is averaged over micro-batches: its norm scales by 1/k.
    const gradNorm = Math.sqrt(gn2) / this.accumulate;
    if (!Number.isFinite(objective) || !Number.isFinite(gradNorm)) {
      throw new Error(`step ${this.stepCount + 1}: the loss or gradient is not finite (loss ${loss}${this.terms.length ? `, objective ${objective}` : ''}, gradient norm ${gradNorm}); lower the learning rate or check the data`);
    }
    this.stepCount++;
    await this.beforeUpdate?.(this.stepCount);
    const lr = this.o.lr * this.o.schedule(this.stepCount);
    // Scale the gradient down to norm maxGradNorm when it is longer (never up; no limit is Infinity).
    const clip = Math.min(1, this.o.maxGradNorm / gradNorm);
    const hyper: AdamWHyper = {
      lr, beta1: this.o.beta1, beta2: this.o.beta2, eps: this.o.eps, weightDecay: this.o.weightDecay, step: this.stepCount,
      gradScale: clip / this.accumulate,
    };
    for (const s of active) {
      if (s.m < 0) continue;
      this.session.exe.adamw(s.param, s.grad, s.m, s.v, s.born ? { ...hyper, step: hyper.step - s.born } : hyper);
    }
    await this.hostUpdate?.(hyper);
    return { step: this.stepCount, loss, objective, terms, gradNorm, lr };
  }

  /**
   * Change which tensors train (LISA, LaMDA's gradual freezing, BAdam…). Plan steps that only serve the
   * gradients of frozen tensors are skipped from the next step on; nothing is rebuilt.
   */
  setTrainable(names: Iterable<string>): void {
    const want = new Set(names);
    for (const n of want) if (!this.slots.some((s) => s.name === n)) throw new Error(`setTrainable: no trainable tensor named ${n}`);
    for (const s of this.slots) s.active = want.has(s.name);
    const plan = this.session.plan;
    // Walk the plan backwards from what is still read: the loss and the active gradients and norms.
    const needed = new Set<number>([this.loss.id, this.task.id, ...this.terms.map(([, t]) => t.id)]);
    const root = (id: number): number => {
      const p = plan.nodes[plan.values[id]!.producer];
      return p && getOp(p.op).view ? root(p.inputs[0]!) : id;
    };
    for (const s of this.slots) if (s.active) { needed.add(s.grad); needed.add(s.sq); }
    const skip = new Uint8Array(plan.steps.length);
    for (let i = plan.steps.length - 1; i >= 0; i--) {
      const st = plan.steps[i]!;
      const outs = st.outputs.map(root);
      if (!outs.some((o) => needed.has(o)) && !st.outputs.some((o) => needed.has(o))) { skip[i] = 1; continue; }
      for (const x of st.inputs) { needed.add(x); needed.add(root(x)); }
    }
    this.skip = skip;
  }

  /** Plan steps skipped on every run (set by setTrainable). */
  private skip: Uint8Array | undefined;

  /** How many plan steps the current trainable set skips. */
  get skippedSteps(): number { return this.skip?.reduce((a, b) => a + b, 0) ?? 0; }

  /** Optimizer state for checkpoints: Adam moments by parameter name, and the step count. */
  async exportState(): Promise<{ step: number; tensors: Map<string, Float32Array> }> {
    const slots = this.slots.filter((s) => s.m >= 0);
    const arrays = await this.session.getMany(slots.flatMap((s) => [s.m, s.v]));
    const tensors = new Map<string, Float32Array>();
    slots.forEach((s, i) => {
      tensors.set(`${s.name}.adam_m`, Float32Array.from(arrays[2 * i]!));
      tensors.set(`${s.name}.adam_v`, Float32Array.from(arrays[2 * i + 1]!));
    });
    return { step: this.stepCount, tensors };
  }

  /**
   * Restore what exportState gave (resume). With `partial`, a tensor missing from the state keeps zero
   * moments that start at `state.step` (their bias correction counts from there); `born` gives, by name, the
   * step at which the moments that are imported started (default 0).
   */
  importState(state: { step: number; tensors: ReadonlyMap<string, Float32Array> }, o: { partial?: boolean; born?: ReadonlyMap<string, number> } = {}): void {
    for (const s of this.slots) {
      if (s.m < 0) continue;
      const m = state.tensors.get(`${s.name}.adam_m`), v = state.tensors.get(`${s.name}.adam_v`);
      if (!m || !v) {
        if (o.partial) { s.born = state.step; continue; }
        throw new Error(`the optimizer state has no ${s.name}.${m ? 'adam_v' : 'adam_m'}`);
      }
      this.session.set(s.m, m);
      this.session.set(s.v, v);
      s.born = o.born?.get(s.name) ?? 0;
    }
    this.stepCount = state.step;
  }

  /** The step count at which each tensor's Adam moments started (0 unless they joined later). */
  momentsBorn(): Map<string, number> { return new Map(this.slots.filter((s) => s.m >= 0).map((s) => [s.name, s.born])); }

  /** Current values of the trainable tensors, by name. */
  async trainableValues(): Promise<Map<string, Float32Array>> {
    const arrays = await this.session.getMany(this.slots.map((s) => s.param));
    return new Map(this.slots.map((s, i) => [s.name, Float32Array.from(arrays[i]!)]));
  }

  /**
   * Gradients of the last step by parameter name, averaged over its micro-batches (before clipping). Only
   * tensors that are still training have one.
   */
  async gradientValues(names: readonly string[]): Promise<Map<string, Float32Array>> {
    const slots = names.map((n) => {
      const s = this.slots.find((x) => x.name === n);
      if (!s) throw new Error(`gradientValues: no trainable tensor named ${n}`);
      if (!s.active) throw new Error(`gradientValues: ${n} is frozen (setTrainable), so it has no gradient`);
      return s;
    });
    const arrays = await this.session.getMany(slots.map((s) => s.grad));
    return new Map(slots.map((s, i) => [s.name, Float32Array.from(arrays[i]!, (v) => v / this.accumulate)]));
  }

  /** The value id of a trainable tensor's gradient (the sum over micro-batches), or undefined. */
  gradientId(name: string): number | undefined { return this.slots.find((s) => s.name === name)?.grad; }

  get steps(): number { return this.stepCount; }
  dispose(): void { this.session.dispose(); }
}
