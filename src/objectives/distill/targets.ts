/**
 * Distillation targets, computed on the host in float64 from logits read back from the backend:
 * KD's teacher distribution, and TAID's interpolation between the student and the teacher with its
 * adaptive schedule for t.
 */

/**
 * The target distribution of every scored row, f32 [rows·vocab]: softmax((1 − t)·student + t·teacher)
 * (t = 1, or no student: the teacher's softmax). Rows not scored (mask 0) are left zero.
 */
export function interpolatedTargets(teacher: Float32Array, student: Float32Array | undefined, t: number, mask: Uint8Array, vocab: number): Float32Array {
  const rows = mask.length, q = new Float32Array(rows * vocab), u = new Float64Array(vocab);
  for (let r = 0; r < rows; r++) {
    if (!mask[r]) continue;
    let max = -Infinity;
    for (let v = 0; v < vocab; v++) {
      const x = student && t !== 1 ? (1 - t) * student[r * vocab + v]! + t * teacher[r * vocab + v]! : teacher[r * vocab + v]!;
      u[v] = x;
      if (x > max) max = x;
    }
    let sum = 0;
    for (let v = 0; v < vocab; v++) { u[v] = Math.exp(u[v]! - max); sum += u[v]!; }
    for (let v = 0; v < vocab; v++) q[r * vocab + v] = u[v]! / sum;
  }
  return q;
}

/**
 * What the graph's soft cross-entropy reads for targets q (see loss.ts): class 0 for every scored row
 * (−100 elsewhere), the weights W = mask·(e₀ − q)/M, and the mean entropy of the targets, which turns the
 * soft cross-entropy into the KL divergence KL(q ‖ p_student) that is reported.
 */
export function softTargetInputs(q: Float32Array, mask: Uint8Array, vocab: number): { classes: Int32Array; weights: Float32Array; entropy: number; scored: number } {
  const rows = mask.length, classes = new Int32Array(rows).fill(-100), weights = new Float32Array(rows * vocab);
  const scored = mask.reduce((a, m) => a + (m ? 1 : 0), 0);
  let entropy = 0;
  for (let r = 0; r < rows; r++) {
    if (!mask[r]) continue;
    classes[r] = 0;
    for (let v = 0; v < vocab; v++) {
      const p = q[r * vocab + v]!;
      weights[r * vocab + v] = ((v === 0 ? 1 : 0) - p) / scored;
      if (p > 0) entropy -= p * Math.log(p);
    }
  }
  return { classes, weights, entropy: entropy / Math.max(1, scored), scored };
}

export interface TaidOptions {
  /** t at the first step (default 0.4). */
  tStart?: number;
  /** t's ceiling, reached by the end of the run at the latest (default 1). */
  tEnd?: number;
  /** Step size α of the adaptive increase (default 5e-4). */
  alpha?: number;
  /** Momentum β of the loss's relative change (default 0.99). */
  beta?: number;
}

/**
 * TAID's schedule for the interpolation parameter t (Shing et al., 2025, §3.3 and its reference code's
 * defaults): after each step, the loss's relative improvement δ = (J_prev − J)/J_prev feeds a momentum
 * m ← β·m + (1 − β)·δ, and t ← min(t_end, max(t_linear, t + α·σ(m)·(1 − t))), where t_linear rises
 * linearly from t_start to t_end over the run. The first step only records its loss.
 */
export class TaidSchedule {
  readonly tStart: number;
  readonly tEnd: number;
  readonly alpha: number;
  readonly beta: number;
  t: number;
  private momentum = 0;
  private prev: number | undefined;

  constructor(o: TaidOptions = {}) {
    this.tStart = o.tStart ?? 0.4;
    this.tEnd = o.tEnd ?? 1;
    this.alpha = o.alpha ?? 5e-4;
    this.beta = o.beta ?? 0.99;
    if (!(this.tStart >= 0 && this.tStart < 1)) throw new RangeError(`TAID t_start must be in [0, 1) (got ${this.tStart})`);
    if (!(this.tEnd > this.tStart && this.tEnd <= 1)) throw new RangeError(`TAID t_end must be in (t_start, 1] (got ${this.tEnd})`);
    if (!(this.alpha >= 0 && this.alpha <= 1)) throw new RangeError(`TAID alpha must be in [0, 1] (got ${this.alpha})`);
    if (!(this.beta >= 0 && this.beta < 1)) throw new RangeError(`TAID beta must be in [0, 1) (got ${this.beta})`);
    this.t = this.tStart;
  }

  /** After step `step` (1-based) of `total`, with that step's loss. */
  update(loss: number, step: number, total: number): number {
    if (this.prev === undefined) { this.prev = loss; return this.t; }
    const delta = (this.prev - loss) / (this.prev + 1e-15);
    this.momentum = this.beta * this.momentum + (1 - this.beta) * delta;
    const linear = this.tStart + (this.tEnd - this.tStart) * (step / total);
    const adaptive = this.t + this.alpha * (1 / (1 + Math.exp(-this.momentum))) * (1 - this.t);
    this.t = Math.min(this.tEnd, Math.max(linear, adaptive));
    this.prev = loss;
    return this.t;
  }
}
