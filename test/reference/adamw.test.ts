// The Trainer's optimizer against torch.optim.AdamW (test/reference/adamw_ref.py): bias correction, decoupled
// weight decay, fineTune's learning-rate schedule (lrSchedule: warmup, then cosine or linear decay), global-norm
// clipping over all tensors and gradient accumulation, for 20 steps. The loss is quadratic, ½·Σ c ⊙ p² + Σ p ⊙ g,
// with a fixed sequence g that both sides are fed, so each gradient depends on the trajectory so far.
// Tolerances: on the float64 js backend every parameter within 1e-6 of PyTorch relative to the tensor's
// largest value, after every step, and each step's learning rate within 1e-12; on float32 (what training
// runs) the same 1e-6, several times the rounding of 20 float32 updates (measured 1–3e-7).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Backend } from '../../src/backends/backend.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import * as F from '../../src/graph/api.js';
import { Graph, type Tensor } from '../../src/graph/graph.js';
import { type DecayKind, lrSchedule } from '../../src/train/schedule.js';
import { Trainer } from '../../src/train/trainer.js';
import { gaussian, seededRandom } from '../../src/util/random.js';
import { runReference } from './python.js';

const STEPS = 20;
const SHAPES = [[3, 4], [5]];

interface Scenario {
  name: string; lr: number; betas: [number, number]; eps: number; weightDecay: number; maxGradNorm?: number;
  decay: DecayKind; warmup: number; accumulate: number;
}
const SCENARIOS: Scenario[] = [
  { name: 'cosine with warmup, weight decay, clipping', lr: 0.05, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.1, maxGradNorm: 8, decay: 'cosine', warmup: 4, accumulate: 1 },
  // Adam ignores a constant factor on every gradient except through ε: a large ε makes summed micro-batch
  // gradients that are not averaged show.
  { name: 'linear decay, two micro-batches, other betas', lr: 0.02, betas: [0.8, 0.95], eps: 1e-3, weightDecay: 0.01, maxGradNorm: 6, decay: 'linear', warmup: 0, accumulate: 2 },
  { name: 'constant, no decay or clipping', lr: 0.01, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0, decay: 'constant', warmup: 2, accumulate: 1 },
];

/** Float32-representable values, so both sides start from and are fed exactly the same numbers. */
const f32 = (n: number, f: () => number): number[] => Array.from({ length: n }, () => Math.fround(f()));
const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Initial values, curvatures and the gradient sequence g[step][micro][tensor]; g grows so clipping starts partway. */
function data(s: Scenario, seed: number) {
  const r = seededRandom(seed);
  const init = SHAPES.map((sh) => f32(size(sh), () => gaussian(r)));
  const curvature = SHAPES.map((sh) => f32(size(sh), () => 0.5 + r()));
  const grads = Array.from({ length: STEPS }, (_, t) => Array.from({ length: s.accumulate }, () => SHAPES.map((sh) => f32(size(sh), () => 0.3 * 1.25 ** t * gaussian(r)))));
  return { init, curvature, grads };
}

interface Trajectory { lr: number[]; params: number[][][]; gradNorms: number[] }

async function ours(s: Scenario, d: ReturnType<typeof data>, backend: Backend): Promise<Trajectory> {
  const g = new Graph();
  const params = SHAPES.map((sh, i) => g.param(`p${i}`, sh));
  const gIn = SHAPES.map((sh, i) => g.input(`g${i}`, sh)), cIn = SHAPES.map((sh, i) => g.input(`c${i}`, sh));
  let loss: Tensor | undefined;
  params.forEach((p, i) => {
    const term = F.add(F.scale(F.sum(F.mul(cIn[i]!, F.mul(p, p))), 0.5), F.sum(F.mul(p, gIn[i]!)));
    loss = loss ? F.add(loss, term) : term;
  });
  const trainer = await Trainer.create({
    graph: g, loss: loss!, trainable: params, backend, accumulate: s.accumulate,
    optimizer: {
      lr: s.lr, beta1: s.betas[0], beta2: s.betas[1], eps: s.eps, weightDecay: s.weightDecay,
      schedule: lrSchedule(s.decay, STEPS, s.warmup), ...(s.maxGradNorm !== undefined ? { maxGradNorm: s.maxGradNorm } : {}),
    },
  });
  params.forEach((p, i) => trainer.session.set(p, Float32Array.from(d.init[i]!)));
  const out: Trajectory = { lr: [], params: [], gradNorms: [] };
  for (let t = 0; t < STEPS; t++) {
    const micro = d.grads[t]!.map((gs) => [...gs.map((v, i) => [gIn[i]!, Float32Array.from(v)]), ...d.curvature.map((v, i) => [cIn[i]!, Float32Array.from(v)])] as [Tensor, Float32Array][]);
    const r = await trainer.step(micro);
    // Read at the backend's own precision (trainableValues rounds to float32).
    const values = await trainer.session.getMany(params);
    out.lr.push(r.lr);
    out.gradNorms.push(r.gradNorm);
    out.params.push(values.map((v) => Array.from(v)));
  }
  trainer.dispose();
  return out;
}

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-adamw-'));
let reference: Promise<Map<string, { lr: number[]; params: number[][][] }>> | undefined;
function torchRuns() {
  reference ??= (async () => {
    const scenarios = SCENARIOS.map((s, k) => {
      const d = data(s, 10 + k);
      return {
        name: s.name, lr: s.lr, betas: s.betas, eps: s.eps, weight_decay: s.weightDecay, max_grad_norm: s.maxGradNorm ?? null,
        schedule: { kind: s.decay, total: STEPS, warmup: s.warmup },
        params: SHAPES.map((shape, i) => ({ shape, init: d.init[i], curvature: d.curvature[i] })), grads: d.grads,
      };
    });
    const out = runReference<{ scenarios: { name: string; lr: number[]; params: number[][][] }[] }>('adamw_ref.py', { scenarios }, dir);
    return new Map(out.scenarios.map((s) => [s.name, s]));
  })();
  return reference;
}

test.after(() => rmSync(dir, { recursive: true, force: true }));

/** Worst over steps and tensors of max |ours − torch| / max |torch|. */
function worstRelative(a: number[][][], b: number[][][]): { err: number; step: number } {
  let err = 0, step = -1;
  a.forEach((tensors, t) => tensors.forEach((x, i) => {
    const y = b[t]![i]!;
    const scale = Math.max(...y.map(Math.abs));
    const e = Math.max(...x.map((v, j) => Math.abs(v - y[j]!))) / scale;
    if (e > err) { err = e; step = t + 1; }
  }));
  return { err, step };
}

for (const [k, s] of SCENARIOS.entries()) {
  test(`${s.name}: 20 AdamW steps match torch.optim.AdamW (float64 and float32)`, async () => {
    const ref = (await torchRuns()).get(s.name)!;
    const d = data(s, 10 + k);
    const exact = await ours(s, d, createJsBackend({ precision: 'f64' }));
    if (s.maxGradNorm !== undefined) {
      // The sequence must exercise both sides of the clipping threshold.
      assert.ok(exact.gradNorms.some((n) => n > s.maxGradNorm!) && exact.gradNorms.some((n) => n < s.maxGradNorm!), `gradient norms ${exact.gradNorms.map((n) => n.toFixed(2)).join(' ')}`);
    }
    exact.lr.forEach((lr, t) => assert.ok(Math.abs(lr - ref.lr[t]!) <= 1e-12 * ref.lr[t]!, `step ${t + 1}: learning rate ${lr}, torch ${ref.lr[t]}`));
    const e64 = worstRelative(exact.params, ref.params);
    assert.ok(e64.err <= 1e-6, `float64: relative error ${e64.err} at step ${e64.step}`);
    const e32 = worstRelative((await ours(s, d, createJsBackend())).params, ref.params);
    assert.ok(e32.err <= 1e-6, `float32: relative error ${e32.err} at step ${e32.step}`);
    // A trajectory that barely moves would make the comparison vacuous.
    const moved = worstRelative([d.init], [ref.params[STEPS - 1]!]).err;
    assert.ok(moved > 0.05, `parameters moved only ${moved} relative in ${STEPS} steps`);
  });
}

test.run();
