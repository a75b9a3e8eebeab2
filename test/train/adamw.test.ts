// AdamW against a float64 reference written here from torch.optim.AdamW's documented algorithm
// (Loshchilov & Hutter 2019, Algorithm 2): θ ← θ − γλθ; m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
// θ ← θ − γ·(m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + ε). First the js kernel alone, then the trainer around it:
// the learning rate from the schedule, the step count, clipping of the global gradient norm to
// maxGradNorm (coefficient maxGradNorm/‖g‖ when ‖g‖ exceeds it) and the mean over accumulated
// micro-batches, on a loss whose gradient is known in closed form. All in float64 (the js backend's f64
// precision), so the tolerance is 1e-12 relative: any formula or hyper-parameter error is far above it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AdamWHyper } from '../../src/backends/backend.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { adamw } from '../../src/backends/js/kernels/adamw.js';
import * as F from '../../src/graph/api.js';
import { Graph } from '../../src/graph/graph.js';
import { type OptimizerOptions, Trainer } from '../../src/train/trainer.js';
import { lrSchedule } from '../../src/train/schedule.js';
import { maxRelErr, randn } from '../helpers.js';

interface Moments { m: Float64Array; v: Float64Array; t: number }
const moments = (n: number): Moments => ({ m: new Float64Array(n), v: new Float64Array(n), t: 0 });

/** One AdamW step of the reference on θ (in place), gradient g already scaled. */
function referenceStep(theta: Float64Array, g: ArrayLike<number>, s: Moments, o: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number }): void {
  s.t++;
  for (let i = 0; i < theta.length; i++) {
    theta[i] = theta[i]! - o.lr * o.weightDecay * theta[i]!;
    s.m[i] = o.beta1 * s.m[i]! + (1 - o.beta1) * g[i]!;
    s.v[i] = o.beta2 * s.v[i]! + (1 - o.beta2) * g[i]! ** 2;
    const mHat = s.m[i]! / (1 - o.beta1 ** s.t), vHat = s.v[i]! / (1 - o.beta2 ** s.t);
    theta[i] = theta[i]! - (o.lr * mHat) / (Math.sqrt(vHat) + o.eps);
  }
}

const TOL = 1e-12;

test('the js kernel: 20 steps with every hyper-parameter away from its default, and a gradient scale', () => {
  const n = 50;
  const p = randn(n, 1), ref = Float64Array.from(p), m = new Float64Array(n), v = new Float64Array(n), s = moments(n);
  // A large ε and weight decay so that each term shows in the result.
  const o = { lr: 0.03, beta1: 0.8, beta2: 0.95, eps: 0.05, weightDecay: 0.2 };
  for (let step = 1; step <= 20; step++) {
    const g = randn(n, 100 + step, 2), gradScale = step % 3 === 0 ? 0.25 : 1.5;
    adamw(p, g, m, v, { ...o, step, gradScale });
    referenceStep(ref, Array.from(g, (x) => x * gradScale), s, o);
    assert.ok(maxRelErr(p, ref) < TOL, `step ${step}: ${maxRelErr(p, ref)}`);
    assert.ok(maxRelErr(m, s.m) < TOL && maxRelErr(v, s.v) < TOL, `step ${step}: moments`);
  }
});

test('the js kernel: the step number drives bias correction (a late step differs from a first one)', () => {
  const g = randn(8, 2), o: AdamWHyper = { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0, step: 1, gradScale: 1 };
  const first = new Float64Array(8), late = new Float64Array(8);
  adamw(first, g, new Float64Array(8), new Float64Array(8), o);
  adamw(late, g, new Float64Array(8), new Float64Array(8), { ...o, step: 50 });
  // Step 1 from zero moments moves each weight by lr·sign(g); step 50 by lr·0.1·(1−0.9⁵⁰)⁻¹/√(0.01/(1−0.99⁵⁰)).
  first.forEach((x, i) => assert.ok(Math.abs(x + 0.1 * Math.sign(g[i]!)) < 1e-6, `step 1: ${x}`));
  const k = (0.1 / (1 - 0.9 ** 50)) / Math.sqrt(0.01 / (1 - 0.99 ** 50));
  late.forEach((x, i) => assert.ok(Math.abs(x + 0.1 * k * Math.sign(g[i]!)) < 1e-6, `step 50: ${x}`));
});

/**
 * Two trainable tensors a [5] and b [3] with loss ½‖a − ta‖² + ½·c·‖b − tb‖²: gradients a − ta and
 * c·(b − tb), whatever the graph does.
 */
async function quadratic(optimizer: OptimizerOptions | undefined, accumulate = 1) {
  const g = new Graph();
  const a = g.param('a', [5]), b = g.param('b', [3]), ta = g.input('ta', [5]), tb = g.input('tb', [3]);
  const c = 3;
  const half = (x: ReturnType<Graph['param']>, t: ReturnType<Graph['input']>, k: number) => { const d = F.sub(x, t); return F.scale(F.sum(F.mul(d, d)), k / 2); };
  const loss = F.add(half(a, ta, 1), half(b, tb, c));
  const trainer = await Trainer.create({ graph: g, loss, trainable: [a, b], backend: createJsBackend({ precision: 'f64' }), accumulate, ...(optimizer ? { optimizer } : {}) });
  return { trainer, a, b, ta, tb, c };
}

async function compareWithReference(optimizer: OptimizerOptions | undefined, o: { accumulate?: number; steps: number; scale?: number }) {
  const accumulate = o.accumulate ?? 1, scale = o.scale ?? 1;
  const { trainer, a, b, ta, tb, c } = await quadratic(optimizer, accumulate);
  const full = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, schedule: () => 1, ...optimizer };
  const theta = { a: randn(5, 1, scale), b: randn(3, 2, scale) };
  trainer.session.set(a, theta.a);
  trainer.session.set(b, theta.b);
  const st = { a: moments(5), b: moments(3) };
  let clipped = 0;
  for (let step = 1; step <= o.steps; step++) {
    const targets = Array.from({ length: accumulate }, (_, k) => ({ a: randn(5, 10 * step + k, 2 * scale), b: randn(3, 500 + 10 * step + k, 2 * scale) }));
    const r = await trainer.step(targets.map((t) => [[ta, Float32Array.from(t.a)], [tb, Float32Array.from(t.b)]]));
    // The reference: mean gradient and loss over the micro-batches, all at the same weights.
    const ga = new Float64Array(5), gb = new Float64Array(3);
    let loss = 0;
    for (const t of targets) {
      const fa = Float32Array.from(t.a), fb = Float32Array.from(t.b);
      theta.a.forEach((x, i) => { ga[i]! += (x - fa[i]!) / accumulate; loss += (x - fa[i]!) ** 2 / 2 / accumulate; });
      theta.b.forEach((x, i) => { gb[i]! += (c * (x - fb[i]!)) / accumulate; loss += (c * (x - fb[i]!) ** 2) / 2 / accumulate; });
    }
    const norm = Math.sqrt([...ga, ...gb].reduce((s, x) => s + x * x, 0));
    const clip = full.maxGradNorm !== undefined && norm > full.maxGradNorm ? full.maxGradNorm / norm : 1;
    if (clip < 1) clipped++;
    const lr = full.lr * full.schedule(step);
    referenceStep(theta.a, Array.from(ga, (x) => x * clip), st.a, { ...full, lr });
    referenceStep(theta.b, Array.from(gb, (x) => x * clip), st.b, { ...full, lr });
    assert.is(r.step, step);
    assert.ok(Math.abs(r.lr - lr) <= TOL * lr, `step ${step}: lr ${r.lr} vs ${lr}`);
    assert.ok(Math.abs(r.gradNorm - norm) <= TOL * norm, `step ${step}: gradient norm ${r.gradNorm} vs ${norm}`);
    assert.ok(Math.abs(r.loss - loss) <= TOL * loss, `step ${step}: loss ${r.loss} vs ${loss}`);
    const [ga2, gb2] = await trainer.session.getMany([a, b]);
    assert.ok(maxRelErr(ga2!, theta.a) < TOL && maxRelErr(gb2!, theta.b) < TOL, `step ${step}: weights differ by ${maxRelErr(ga2!, theta.a)}, ${maxRelErr(gb2!, theta.b)}`);
  }
  assert.is(trainer.steps, o.steps);
  trainer.dispose();
  return { clipped };
}

test('trainer with the defaults (lr 1e-3, β 0.9/0.999, ε 1e-8, no decay): tiny gradients where ε matters', async () => {
  await compareWithReference(undefined, { steps: 5, scale: 1e-7 });
});

test('trainer: learning rate, betas, ε and weight decay passed through; warmup-cosine schedule; 20 steps', async () => {
  await compareWithReference({ lr: 0.05, beta1: 0.7, beta2: 0.9, eps: 1e-3, weightDecay: 0.3, schedule: lrSchedule('cosine', 20, 4, 0.1) }, { steps: 20 });
});

test('trainer: clipping to maxGradNorm on steps whose norm exceeds it, and only those', async () => {
  // Gradient norms of 7.6–21 here: 11 clips some steps and not others, 100 none.
  const some = await compareWithReference({ lr: 0.02, maxGradNorm: 11 }, { steps: 12 });
  assert.ok(some.clipped > 0 && some.clipped < 12, `${some.clipped} of 12 steps clipped`);
  assert.is((await compareWithReference({ lr: 0.02, maxGradNorm: 100 }, { steps: 3 })).clipped, 0);
});

test('trainer: three accumulated micro-batches are averaged (gradient, norm, loss), with clipping', async () => {
  const r = await compareWithReference({ lr: 0.02, weightDecay: 0.1, maxGradNorm: 6 }, { steps: 6, accumulate: 3 });
  assert.ok(r.clipped > 0 && r.clipped < 6, `${r.clipped} of 6 steps clipped`);
});

test.run();
