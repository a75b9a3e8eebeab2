/**
 * The training step: forward, backward (autodiff appended to the same graph), global gradient norm,
 * then a fused AdamW update per trainable tensor. One readback per step (loss and gradient norm).
 */
import type { AdamWHyper, Backend } from '../backends/backend.js';
import * as F from '../graph/api.js';
import { gradients } from '../graph/autodiff.js';
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
  loss: Tensor;
  trainable: readonly Tensor[];
  backend: Backend;
  optimizer?: OptimizerOptions;
}

export interface StepResult { step: number; loss: number; gradNorm: number; lr: number }

export class Trainer {
  private stepCount = 0;
  private constructor(
    readonly session: Session,
    private readonly loss: Tensor,
    private readonly gradNorm2: Tensor,
    private readonly slots: { param: number; grad: number; m: number; v: number }[],
    private readonly o: Required<Omit<OptimizerOptions, 'maxGradNorm'>> & { maxGradNorm?: number },
  ) {}

  static async create(spec: TrainerSpec): Promise<Trainer> {
    const { graph: g, loss, trainable } = spec;
    if (trainable.length === 0) throw new Error('nothing to train: the trainable set is empty');
    const grads = gradients(loss, trainable);
    // Global gradient norm² as part of the graph, so clipping costs no extra readback.
    const sq = trainable.map((t) => { const d = grads.get(t); return F.sum(F.mul(d, d)); });
    const gradNorm2 = sq.reduce((a, b) => F.add(a, b));
    g.markOutput(loss, gradNorm2);
    const slots = trainable.map((t) => ({
      param: t.id,
      grad: grads.get(t).id,
      m: g.state(`${t.info.name ?? t.id}.adam_m`, t.shape).id,
      v: g.state(`${t.info.name ?? t.id}.adam_v`, t.shape).id,
    }));
    const session = await Session.create(g, spec.backend);
    for (const s of slots) {
      const zeros = new Float32Array(numel(g.values[s.m]!.shape));
      session.set(s.m, zeros);
      session.set(s.v, zeros);
    }
    const o = spec.optimizer ?? {};
    return new Trainer(session, loss, gradNorm2, slots, {
      lr: o.lr ?? 1e-3, beta1: o.beta1 ?? 0.9, beta2: o.beta2 ?? 0.999, eps: o.eps ?? 1e-8,
      weightDecay: o.weightDecay ?? 0, schedule: o.schedule ?? (() => 1),
      ...(o.maxGradNorm !== undefined ? { maxGradNorm: o.maxGradNorm } : {}),
    });
  }

  /** Run one step on the inputs already set on the session (or given here by name/tensor). */
  async step(feed: [Tensor | string, Int32Array | Float32Array][] = []): Promise<StepResult> {
    for (const [ref, data] of feed) this.session.set(ref, data);
    await this.session.run();
    const [lossArr, gn2] = await this.session.getMany([this.loss, this.gradNorm2]);
    const loss = lossArr![0]!, gradNorm = Math.sqrt(gn2![0]!);
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
      throw new Error(`step ${this.stepCount + 1}: the loss or gradient is not finite (loss ${loss}, gradient norm ${gradNorm}); lower the learning rate or check the data`);
    }
    this.stepCount++;
    const lr = this.o.lr * this.o.schedule(this.stepCount);
    const clip = this.o.maxGradNorm !== undefined && gradNorm > this.o.maxGradNorm ? this.o.maxGradNorm / gradNorm : 1;
    const hyper: AdamWHyper = { lr, beta1: this.o.beta1, beta2: this.o.beta2, eps: this.o.eps, weightDecay: this.o.weightDecay, step: this.stepCount, gradScale: clip };
    for (const s of this.slots) this.session.exe.adamw(s.param, s.grad, s.m, s.v, hyper);
    return { step: this.stepCount, loss, gradNorm, lr };
  }

  get steps(): number { return this.stepCount; }
  dispose(): void { this.session.dispose(); }
}
