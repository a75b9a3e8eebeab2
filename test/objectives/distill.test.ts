// Distillation (src/objectives/distill): the soft cross-entropy's value and gradient against their direct
// float64 formulas (1e-12); a student equal to its teacher has zero loss and zero gradient; TAID's target
// at t = 0 and t = 1 is the student's and the teacher's distribution, and its schedule follows the
// paper's update (hand-computed values); KD training lowers the KL; the same curve on js, wasm and webgpu.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { gradients } from '../../src/graph/autodiff.js';
import { Graph } from '../../src/graph/graph.js';
import { softCrossEntropy } from '../../src/objectives/distill/loss.js';
import { interpolatedTargets, softTargetInputs, TaidSchedule } from '../../src/objectives/distill/targets.js';
import { distill } from '../../src/objectives/distill/train.js';
import { Session } from '../../src/scheduler/session.js';
import { curveDiff, js, otherBackends } from '../backends/backends.js';
import { heroBlocks, randomizeParams, stories } from '../methods/helpers.js';
import { rng } from '../helpers.js';

const softmax = (x: ArrayLike<number>): number[] => {
  const m = Math.max(...Array.from(x)), e = Array.from(x, (v) => Math.exp(v - m)), s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};

test('soft cross-entropy: value −mean Σ q log p and gradient (p − q)/M on scored rows, float64', async () => {
  const N = 5, V = 7, r = rng(3);
  const g = new Graph();
  const s = g.param('s', [N, V]);
  const classesIn = g.input('c', [N], 'i32'), weightsIn = g.input('w', [N, V]);
  const loss = softCrossEntropy(s, classesIn, weightsIn);
  const grad = gradients(loss, [s]).get(s)!;
  g.markOutput(loss, grad);
  const logits = Float64Array.from({ length: N * V }, () => 4 * r() - 2);
  const mask = Uint8Array.of(1, 1, 0, 1, 1);
  const q = new Float32Array(N * V);
  // Targets that are multiples of 1/64 sum to exactly 1 in float32, as the identity behind the op assumes.
  for (let i = 0; i < N; i++) {
    const counts = Array.from({ length: V }, () => 0);
    for (let k = 0; k < 64; k++) counts[Math.floor(r() * V)]!++;
    counts.forEach((c, v) => { q[i * V + v] = c / 64; });
  }
  const inputs = softTargetInputs(q, mask, V);
  const sess = await Session.create(g, createJsBackend({ precision: 'f64' }));
  sess.set(s, logits as unknown as Float32Array);
  sess.set(classesIn, inputs.classes);
  sess.set(weightsIn, inputs.weights);
  await sess.run();
  let expected = 0;
  const dExpected = new Float64Array(N * V);
  for (let i = 0; i < N; i++) {
    if (!mask[i]) continue;
    const p = softmax(logits.subarray(i * V, (i + 1) * V));
    for (let v = 0; v < V; v++) {
      if (q[i * V + v]) expected -= (q[i * V + v]! * Math.log(p[v]!)) / 4;
      dExpected[i * V + v] = (p[v]! - q[i * V + v]!) / 4;
    }
  }
  assert.ok(Math.abs((await sess.get(loss))[0]! - expected) < 1e-12);
  const dg = await sess.get(grad);
  for (let k = 0; k < N * V; k++) assert.ok(Math.abs(dg[k]! - dExpected[k]!) < 1e-12, `gradient ${k}: ${dg[k]} vs ${dExpected[k]}`);
});

test('TAID targets: t = 0 gives the student distribution, t = 1 the teacher, between them the softmax of the mix', () => {
  const V = 6, r = rng(9);
  const teacher = Float32Array.from({ length: 2 * V }, () => 6 * r() - 3), student = Float32Array.from({ length: 2 * V }, () => 6 * r() - 3);
  const mask = Uint8Array.of(1, 0);
  const at = (t: number) => interpolatedTargets(teacher, student, t, mask, V);
  const near = (a: ArrayLike<number>, b: number[]) => b.forEach((x, i) => assert.ok(Math.abs(a[i]! - x) < 1e-7, `${a[i]} vs ${x}`));
  near(at(0), softmax(student.subarray(0, V)));
  near(at(1), softmax(teacher.subarray(0, V)));
  near(at(0.3), softmax(Array.from({ length: V }, (_, v) => 0.7 * student[v]! + 0.3 * teacher[v]!)));
  assert.ok(at(0.3).subarray(V).every((x) => x === 0), 'unscored rows stay zero');
});

test('TAID schedule: starts at t_start, moves by α·σ(m)·(1 − t) or the linear floor, never past t_end', () => {
  const s = new TaidSchedule({ tStart: 0.4, tEnd: 1, alpha: 1, beta: 0.5 });
  assert.is(s.t, 0.4);
  assert.is(s.update(2, 1, 10), 0.4, 'the first step only records its loss');
  // δ = (2 − 1)/2 = 0.5, m = 0.25: t = 0.4 + σ(0.25)·0.6 = 0.737306 (the linear floor is 0.52).
  assert.ok(Math.abs(s.update(1, 2, 10) - 0.737306) < 1e-6, String(s.t));
  // δ = −0.5, m = −0.125: t = 0.737306 + σ(−0.125)·0.262694 = 0.860454.
  assert.ok(Math.abs(s.update(1.5, 3, 10) - 0.860454) < 1e-6, String(s.t));
  const slow = new TaidSchedule({ tStart: 0.4, alpha: 0 });
  slow.update(1, 1, 10);
  assert.ok(Math.abs(slow.update(1, 5, 10) - 0.7) < 1e-12, 'with α = 0, t follows the linear schedule');
  for (let k = 6; k <= 12; k++) assert.ok(slow.update(1, k, 10) <= 1);
  assert.throws(() => new TaidSchedule({ tStart: 1 }), /t_start/);
});

async function students(randomTeacher: boolean) {
  const ckpt = await stories();
  let teacher = ckpt;
  if (randomTeacher) {
    const t = new AdaptedModel(ckpt);
    t.addAdapter('t', 'lora', { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'] }, { seed: 2 });
    randomizeParams(t, 't', 0.3);
    t.merge('t');
    teacher = t.effectiveCheckpoint();
  }
  const model = new AdaptedModel(ckpt);
  model.addAdapter('s', 'lora', { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'] }, { seed: 1 });
  return { model, teacher, data: heroBlocks(ckpt, 32, 8, 7) };
}

test('a student equal to its teacher: zero KL and zero gradient (KD and TAID)', async () => {
  for (const method of ['kd', 'taid'] as const) {
    const { model, teacher, data } = await students(false);
    const { steps } = await distill({ model, adapter: 's', backend: createJsBackend({ precision: 'f64' }), teacher, data, steps: 1, batch: 2, method });
    // Zero up to the float32 rounding of the logits read back and of the targets (a different teacher gives
    // KL ≈ 0.1 and gradient norms ≈ 1 in the next test).
    assert.ok(Math.abs(steps[0]!.loss) < 1e-6 && steps[0]!.gradNorm < 1e-5, `${method}: ${JSON.stringify(steps[0])}`);
  }
});

test('KD lowers the KL to a different teacher; TAID raises t; the same KD and TAID curves on js, wasm and webgpu', async () => {
  const run = async (backend: ReturnType<typeof js>, steps: number, method: 'kd' | 'taid' = 'kd') => {
    const { model, teacher, data } = await students(true);
    return (await distill({ model, adapter: 's', backend, teacher, data, steps, batch: 2, lr: 1e-2, decay: 'constant', method, taid: { alpha: 0.05 } })).steps;
  };
  const kd = await run(js(), 10);
  assert.ok(kd[0]!.loss > 0.05 && kd[9]!.loss < 0.7 * kd[0]!.loss, `KL ${kd.map((s) => s.loss.toFixed(4))}`);
  const taid = await run(js(), 6, 'taid');
  assert.is(taid[0]!.t, 0.4);
  // The first update only records the loss; from the second on, t is at least the linear schedule.
  for (let i = 1; i < 6; i++) assert.ok(taid[i]!.t >= taid[i - 1]!.t && (i < 2 || taid[i]!.t >= 0.4 + 0.6 * (i / 6) - 1e-12), `t ${taid.map((s) => s.t)}`);
  assert.ok(taid[5]!.t > 0.4, 't rose');
  const taid3 = (await run(js(), 3, 'taid')).map((s) => s.loss);
  for (const { name, backend } of await otherBackends()) {
    const other = await run(backend, 3);
    const diff = curveDiff(kd.slice(0, 3).map((s) => s.loss), other.map((s) => s.loss));
    assert.ok(diff < 1e-4, `${name}: KL curve differs by ${diff}`);
    const taidDiff = curveDiff(taid3, (await run(backend, 3, 'taid')).map((s) => s.loss));
    assert.ok(taidDiff < 1e-4, `${name}: TAID curve differs by ${taidDiff}`);
    backend.dispose();
  }
});

test('a teacher with another vocabulary is refused before any work', async () => {
  const { model, teacher, data } = await students(false);
  const other = { ...teacher, config: { ...teacher.config, vocabSize: teacher.config.vocabSize + 1 } };
  await assert.not.ok(await distill({ model, adapter: 's', backend: js(), teacher: other, data, steps: 1, batch: 2 }).then(() => true, (e: Error) => { assert.match(e.message, /vocabulary has 513 tokens, the student's 512/); return false; }));
  const tokens = [...teacher.tokenizer!.tokens];
  tokens[100] = 'different';
  const renamed = { ...teacher, tokenizer: { ...teacher.tokenizer!, tokens } };
  await assert.not.ok(await distill({ model, adapter: 's', backend: js(), teacher: renamed, data, steps: 1, batch: 2 }).then(() => true, (e: Error) => { assert.match(e.message, /token 100 is "different"/); return false; }));
});

test.run();
