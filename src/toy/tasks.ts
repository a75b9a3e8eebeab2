/**
 * Small built-in models and tasks with no files needed: a two-layer MLP classifier and a one-block
 * transformer (a 1-layer Llama) learning an arithmetic sequence task. Used by the tests (the same loss
 * curve on every backend), the benchmarks and the quick-start job.
 */
import type { Backend } from '../backends/backend.js';
import type { LlamaConfig } from '../formats/checkpoint.js';
import * as F from '../graph/api.js';
import { Graph, type Tensor } from '../graph/graph.js';
import { numel } from '../graph/types.js';
import { buildModel } from '../model/families.js';
import { Trainer } from '../train/trainer.js';
import { seededRandom } from '../util/random.js';

/** Uniform(−bound, bound) with bound = 1/√fanIn, as PyTorch's default Linear init. */
function init(shape: readonly number[], fanIn: number, random: () => number): Float32Array {
  const bound = 1 / Math.sqrt(fanIn);
  return Float32Array.from({ length: numel(shape) }, () => (random() * 2 - 1) * bound);
}

export interface ToyRun { losses: number[]; trainer: Trainer }

/** Two-layer MLP (8 → 32 GELU → 4) classifying points by the sign pattern of two linear functions. */
export async function trainMlp(backend: Backend, o: { steps: number; seed?: number; lr?: number; onStep?: (step: number, loss: number) => void }): Promise<ToyRun> {
  const N = 64, Din = 8, H = 32, C = 4;
  const random = seededRandom(o.seed ?? 1);
  const g = new Graph();
  const x = g.input('x', [N, Din]);
  const y = g.input('y', [N], 'i32');
  const w1 = g.param('w1', [Din, H]), b1 = g.param('b1', [H]), w2 = g.param('w2', [H, C]), b2 = g.param('b2', [C]);
  const logits = F.add(F.matmul(F.gelu(F.add(F.matmul(x, w1), b1)), w2), b2);
  const loss = F.crossEntropy(logits, y);
  const trainer = await Trainer.create({ graph: g, loss, trainable: [w1, b1, w2, b2], backend, optimizer: { lr: o.lr ?? 1e-2 } });
  for (const [t, fan] of [[w1, Din], [b1, Din], [w2, H], [b2, H]] as [Tensor, number][]) trainer.session.set(t, init(t.shape, fan, random));
  const xs = Float32Array.from({ length: N * Din }, () => random() * 2 - 1);
  const ys = Int32Array.from({ length: N }, (_, n) => (xs[n * Din]! + xs[n * Din + 1]! > 0 ? 1 : 0) + (xs[n * Din + 2]! - xs[n * Din + 3]! > 0 ? 2 : 0));
  trainer.session.set(x, xs);
  trainer.session.set(y, ys);
  const losses: number[] = [];
  for (let s = 0; s < o.steps; s++) {
    const r = await trainer.step();
    losses.push(r.loss);
    o.onStep?.(r.step, r.loss);
  }
  return { losses, trainer };
}

/** The one-block transformer: a 1-layer Llama with grouped-query attention and both RoPE layouts available. */
export const TOY_BLOCK_CONFIG: LlamaConfig = {
  dim: 32, hiddenDim: 64, nLayers: 1, nHeads: 4, nKvHeads: 2, vocabSize: 16, maxSeqLen: 64, normEps: 1e-5,
  ropeTheta: 10000, tiedEmbeddings: false, qkvBias: false, ropeLayout: 'half', architecture: 'llama',
};

/**
 * Sequences x_{t+1} = (x_t + k) mod V with k given by the first two tokens: the model must read k from
 * context, so attention has to work for the loss to fall well below log V.
 */
export function arithmeticBatch(batch: number, seq: number, vocab: number, random: () => number): { ids: Int32Array; targets: Int32Array } {
  const ids = new Int32Array(batch * seq), targets = new Int32Array(batch * seq);
  for (let b = 0; b < batch; b++) {
    const start = Math.floor(random() * vocab), k = 1 + Math.floor(random() * 3);
    for (let t = 0; t < seq; t++) ids[b * seq + t] = (start + k * t) % vocab;
    for (let t = 0; t < seq; t++) targets[b * seq + t] = t + 1 < seq ? ids[b * seq + t + 1]! : -100;
  }
  return { ids, targets };
}

export async function trainTransformerBlock(backend: Backend, o: { steps: number; seed?: number; lr?: number; batch?: number; seq?: number; onStep?: (step: number, loss: number) => void }): Promise<ToyRun> {
  const c = TOY_BLOCK_CONFIG, B = o.batch ?? 8, T = o.seq ?? 16;
  const random = seededRandom(o.seed ?? 1);
  const g = new Graph();
  const model = buildModel(g, c, { batch: B, seq: T });
  const targets = g.input('targets', [B * T], 'i32');
  const loss = F.crossEntropy(F.reshape(model.logits, [-1, c.vocabSize]), targets);
  const params = [...model.weights.values()];
  const trainer = await Trainer.create({ graph: g, loss, trainable: params, backend, optimizer: { lr: o.lr ?? 3e-3 } });
  for (const [name, t] of model.weights) {
    const isNorm = name.endsWith('norm.weight');
    trainer.session.set(t, isNorm ? new Float32Array(numel(t.shape)).fill(1) : init(t.shape, t.shape[t.rank - 1]!, random));
  }
  const losses: number[] = [];
  for (let s = 0; s < o.steps; s++) {
    const batch = arithmeticBatch(B, T, c.vocabSize, random);
    const r = await trainer.step([[model.ids, batch.ids], [targets, batch.targets]]);
    losses.push(r.loss);
    o.onStep?.(r.step, r.loss);
  }
  return { losses, trainer };
}
