/** Shared pieces of the updater tests: stories260K data, a float64 AdamW reference, and base-weight gradients. */
import { createJsBackend } from '../../src/backends/js/index.js';
import type { PackedBlocks } from '../../src/data/dataset.js';
import { type LlamaCheckpoint, tensorF32 } from '../../src/formats/checkpoint.js';
import { gradients } from '../../src/graph/autodiff.js';
import { Graph } from '../../src/graph/graph.js';
import { buildModel } from '../../src/model/families.js';
import { nextTokenLoss } from '../../src/model/loss.js';
import { Session } from '../../src/scheduler/session.js';
import { heroBlocks, stories } from '../methods/helpers.js';

export { stories };

/** Training and held-out hero stories in rows of 24 tokens. */
export async function storyData(): Promise<{ ckpt: LlamaCheckpoint; train: PackedBlocks; held: PackedBlocks }> {
  const ckpt = await stories();
  return { ckpt, train: heroBlocks(ckpt, 24, 24, 7), held: heroBlocks(ckpt, 24, 8, 99) };
}

/** The f32 values of every tensor of a checkpoint. */
export function valuesOf(ckpt: LlamaCheckpoint): Map<string, Float32Array> {
  return new Map([...ckpt.tensors].map(([n, t]) => [n, Float32Array.from(tensorF32(t))]));
}

/**
 * Next-token loss gradients of the named tensors at `values`, on the js backend through a graph built here
 * (autodiff, no trainer), for batch rows `ids`/`targets`.
 */
export async function baseGradients(ckpt: LlamaCheckpoint, values: Map<string, Float32Array>, names: readonly string[], ids: Int32Array, targets: Int32Array, batch: number, seq: number): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
  const g = new Graph();
  const model = buildModel(g, ckpt.config, { batch, seq });
  const tg = g.input('targets', [batch * seq], 'i32');
  const { loss } = nextTokenLoss(model, tg, { ceChunk: 0 });
  const params = names.map((n) => model.weights.get(n)!);
  const grads = gradients(loss, params);
  g.markOutput(loss);
  const s = await Session.create(g, createJsBackend());
  for (const [n, t] of model.weights) s.set(t, values.get(n)!);
  s.set(model.ids, ids);
  s.set(tg, targets);
  await s.run();
  const arrays = await s.getMany([loss, ...params.map((p) => grads.get(p)!)]);
  s.dispose();
  return { loss: arrays[0]![0]!, grads: new Map(names.map((n, i) => [n, Float32Array.from(arrays[i + 1]! as Float32Array)])) };
}

/** AdamW in float64 (decoupled decay, bias correction with the tensor's own step), updating p, m, v in place. */
export function adamwRef(p: Float64Array, g: ArrayLike<number>, m: Float64Array, v: Float64Array, o: { lr: number; step: number; b1?: number; b2?: number; eps?: number; wd?: number }): void {
  const b1 = o.b1 ?? 0.9, b2 = o.b2 ?? 0.999, eps = o.eps ?? 1e-8, wd = o.wd ?? 0;
  const c1 = 1 - b1 ** o.step, c2 = 1 - b2 ** o.step;
  for (let i = 0; i < p.length; i++) {
    m[i] = b1 * m[i]! + (1 - b1) * g[i]!;
    v[i] = b2 * v[i]! + (1 - b2) * g[i]! * g[i]!;
    p[i] = p[i]! * (1 - o.lr * wd) - (o.lr * m[i]! / c1) / (Math.sqrt(v[i]! / c2) + eps);
  }
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}
