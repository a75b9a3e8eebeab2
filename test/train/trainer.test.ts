// The trainer's step protocol around AdamW: the forms a step's feeds take, the check that refuses a
// non-finite loss or gradient before any update, the hook that sees each step's gradients, and the
// gradients it reports afterwards. Loss sum(w ⊙ x) has gradient x, so every expected value is exact.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createJsBackend } from '../../src/backends/js/index.js';
import * as F from '../../src/graph/api.js';
import { Graph } from '../../src/graph/graph.js';
import { Trainer } from '../../src/train/trainer.js';
import { rejection } from '../helpers.js';

async function linear(accumulate = 1, beforeUpdate?: (step: number) => Promise<void>) {
  const g = new Graph();
  const w = g.param('w', [3]), x = g.input('x', [3]);
  const trainer = await Trainer.create({ graph: g, loss: F.sum(F.mul(w, x)), trainable: [w], backend: createJsBackend({ precision: 'f64' }), accumulate, optimizer: { lr: 0.1 }, ...(beforeUpdate ? { beforeUpdate } : {}) });
  trainer.session.set(w, Float64Array.of(1, 2, 3));
  return { trainer, w, x };
}

test('a step takes one feed, a list of micro-batch feeds, or nothing (inputs already set): the same first step', async () => {
  const xs = Float32Array.of(1, -2, 0.5);
  const results = [];
  for (const form of ['feed', 'list', 'none'] as const) {
    const { trainer, w, x } = await linear();
    if (form === 'none') trainer.session.set(x, xs);
    const r = form === 'feed' ? await trainer.step([[x, xs]]) : form === 'list' ? await trainer.step([[[x, xs]]]) : await trainer.step();
    results.push({ r, w: Array.from(await trainer.session.get(w)) });
    trainer.dispose();
  }
  // Step 1 of AdamW from zero moments moves each weight by lr against the sign of its gradient.
  for (const { r, w } of results) {
    assert.equal(r, { step: 1, loss: 1 - 4 + 1.5, objective: 1 - 4 + 1.5, terms: {}, gradNorm: Math.hypot(1, -2, 0.5), lr: 0.1 });
    // (ε = 1e-8 shortens it by a relative 1e-8/|g|.)
    w.forEach((v, i) => assert.ok(Math.abs(v - ([1, 2, 3][i]! - 0.1 * Math.sign(xs[i]!))) < 1e-8, `w[${i}] = ${v}`));
  }
});

test('the number of micro-batches must match the accumulation', async () => {
  const { trainer, x } = await linear(2);
  const e = await rejection(trainer.step([[[x, Float32Array.of(1, 1, 1)]]]));
  assert.match(e.message, /step needs 2 micro-batches \(gradient accumulation\), got 1/);
  trainer.dispose();
});

test('a non-finite loss, or a finite loss with a non-finite gradient, stops before any update', async () => {
  // w·x = 1e-300·1e300 = 1 per element, but the gradient x squares to Infinity in the norm.
  const { trainer, w, x } = await linear();
  trainer.session.set(w, Float64Array.of(1e-300, 1e-300, 1e-300));
  const e1 = await rejection(trainer.step([[x, Float64Array.of(1e300, 1e300, 1e300) as unknown as Float32Array]]));
  assert.match(e1.message, /^step 1: the loss or gradient is not finite \(loss 3, gradient norm Infinity\)/);
  assert.equal(Array.from(await trainer.session.get(w)), [1e-300, 1e-300, 1e-300]);
  assert.is(trainer.steps, 0);
  trainer.session.set(w, Float64Array.of(Infinity, 0, 0));
  const e2 = await rejection(trainer.step([[x, Float32Array.of(1, 1, 1)]]));
  assert.match(e2.message, /^step 1: the loss or gradient is not finite \(loss Infinity, gradient norm 1\.7/);
  trainer.dispose();
});

test('beforeUpdate sees each step number once the gradients exist; the last gradients stay readable', async () => {
  const seen: number[] = [];
  const { trainer, x } = await linear(1, async (step) => {
    seen.push(step);
    assert.equal(Array.from((await trainer.gradientValues(['w'])).get('w')!), [step, 2, -1]);
  });
  for (let s = 1; s <= 3; s++) await trainer.step([[x, Float32Array.of(s, 2, -1)]]);
  assert.equal(seen, [1, 2, 3]);
  assert.equal(Array.from((await trainer.gradientValues(['w'])).get('w')!), [3, 2, -1]);
  trainer.dispose();
});

test('with accumulation the gradient sum starts from zero at every step', async () => {
  let step = 0;
  const { trainer, x } = await linear(2, async () => {
    // The mean gradient (s, 1, 0) of this step's two micro-batches, whatever came before.
    assert.equal(Array.from((await trainer.gradientValues(['w'])).get('w')!), [step, 1, 0]);
  });
  for (step = 1; step <= 3; step++) {
    const r = await trainer.step([[[x, Float32Array.of(step, 0, 0)]], [[x, Float32Array.of(step, 2, 0)]]]);
    assert.ok(Math.abs(r.gradNorm - Math.hypot(step, 1)) < 1e-12, `step ${step}: ${r.gradNorm}`);
  }
  trainer.dispose();
});

test('a tensor frozen with setTrainable gets no update; the norm counts only what trains', async () => {
  const g = new Graph();
  const a = g.param('a', [2]), b = g.param('b', [2]), x = g.input('x', [2]);
  const trainer = await Trainer.create({ graph: g, loss: F.sum(F.mul(F.add(a, b), x)), trainable: [a, b], backend: createJsBackend({ precision: 'f64' }), optimizer: { lr: 0.1 } });
  trainer.session.set(a, Float64Array.of(1, 1));
  trainer.session.set(b, Float64Array.of(5, 5));
  trainer.setTrainable(['a']);
  const r = await trainer.step([[x, Float32Array.of(3, -4)]]);
  // a's gradient (3, −4) alone: norm 5.
  assert.is(r.gradNorm, 5);
  assert.equal(Array.from(await trainer.session.get(b)), [5, 5]);
  const a1 = await trainer.session.get(a);
  assert.ok(Math.abs(a1[0]! - 0.9) < 1e-8 && Math.abs(a1[1]! - 1.1) < 1e-8, `a = ${Array.from(a1)}`);
  trainer.dispose();
});

test.run();
