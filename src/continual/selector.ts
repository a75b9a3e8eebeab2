/**
 * ConPET's module selector: a softmax regression from an input's representation (the mean base embedding of
 * its context tokens) to the task whose PET module should serve it, trained on the host in float64 by full-
 * batch gradient descent on the cross-entropy. Small (tasks × d weights) and retrained after every task on
 * the new task's examples plus the replay buffer, so old tasks stay routable.
 */
export class TaskSelector {
  private w = new Float64Array(0);
  private tasks = 0;

  constructor(readonly dim: number) {}

  /** Fit to (feature, task) pairs; tasks are 0 … n − 1. */
  fit(features: readonly Float32Array[], labels: readonly number[], o: { tasks: number; epochs?: number; lr?: number } ): void {
    if (features.length !== labels.length || features.length === 0) throw new Error(`selector: ${features.length} features for ${labels.length} labels`);
    const T = o.tasks, D = this.dim, W = new Float64Array(T * (D + 1));
    // Standardised inputs make one learning rate fit every model width.
    const norm = features.map((f) => { let s = 0; for (const v of f) s += v * v; const n = Math.sqrt(s) || 1; return Float64Array.from(f, (v) => v / n); });
    const lr = o.lr ?? 2, epochs = o.epochs ?? 300;
    for (let e = 0; e < epochs; e++) {
      const grad = new Float64Array(W.length);
      norm.forEach((x, i) => {
        const p = this.probs(W, T, x);
        p[labels[i]!] -= 1;
        for (let t = 0; t < T; t++) {
          const g = p[t]! / norm.length;
          for (let j = 0; j < D; j++) grad[t * (D + 1) + j] += g * x[j]!;
          grad[t * (D + 1) + D] += g;
        }
      });
      for (let k = 0; k < W.length; k++) W[k] -= lr * grad[k]!;
    }
    this.w = W; this.tasks = T;
  }

  private probs(W: Float64Array, T: number, x: Float64Array): Float64Array {
    const D = this.dim, z = new Float64Array(T);
    for (let t = 0; t < T; t++) { let s = W[t * (D + 1) + D]!; for (let j = 0; j < D; j++) s += W[t * (D + 1) + j]! * x[j]!; z[t] = s; }
    const m = Math.max(...z);
    let sum = 0;
    for (let t = 0; t < T; t++) { z[t] = Math.exp(z[t]! - m); sum += z[t]!; }
    for (let t = 0; t < T; t++) z[t] /= sum;
    return z;
  }

  /** The task chosen for a feature vector. */
  predict(feature: Float32Array): number {
    if (this.tasks === 0) throw new Error('selector: not fitted');
    let s = 0; for (const v of feature) s += v * v;
    const n = Math.sqrt(s) || 1;
    const p = this.probs(this.w, this.tasks, Float64Array.from(feature, (v) => v / n));
    return p.indexOf(Math.max(...p));
  }
}

/** A replay buffer of at most `capacity` items, a uniform sample of everything offered (reservoir sampling). */
export class ReplayBuffer<T> {
  readonly items: T[] = [];
  private seen = 0;

  constructor(readonly capacity: number, private readonly random: () => number) {
    if (!(Number.isInteger(capacity) && capacity >= 0)) throw new RangeError(`replay buffer: capacity ${capacity} must be an integer ≥ 0`);
  }

  offer(item: T): void {
    this.seen++;
    if (this.items.length < this.capacity) { this.items.push(item); return; }
    const j = Math.floor(this.random() * this.seen);
    if (j < this.capacity) this.items[j] = item;
  }
}
