// DPO (src/objectives/dpo): the loss against a direct float64 computation from separately evaluated
// sequence log-probabilities (1e-9), its gradient against central finite differences (float64, 1e-6 of the
// largest probed gradient), the endpoints the paper's formula gives (policy = reference → log 2 for any β;
// β → 0: loss → log 2 and a gradient linear in β), the preference data rules, a run whose reward margin
// rises, and the same curve on js, wasm and webgpu (1e-4 relative).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { gradients } from '../../src/graph/autodiff.js';
import { uploadWeights } from '../../src/model/runtime.js';
import { preferenceBatch, preferencePairs } from '../../src/objectives/dpo/data.js';
import { buildDpoGraph, trainDpo } from '../../src/objectives/dpo/train.js';
import { Session } from '../../src/scheduler/session.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { curveDiff, js, otherBackends } from '../backends/backends.js';
import { randomizeParams, stories } from '../methods/helpers.js';

const SEQ = 24;
const PAIRS = [
  { prompt: 'Once upon a time, there was a little', chosen: ' dog named Max.', rejected: ' car that was red.' },
  { prompt: 'Lily liked to play with her', chosen: ' friend in the park.', rejected: ' food on the floor.' },
  { prompt: 'The sun was', chosen: ' warm and bright.', rejected: ' sad and angry.' },
  { prompt: 'Tom saw a big', chosen: ' tree.', rejected: ' box, and he cried.' },
];
const jsonl = PAIRS.map((p) => JSON.stringify(p)).join('\n');

async function setup(randomize: boolean, scale = 0.3) {
  const ckpt = await stories();
  const model = new AdaptedModel(ckpt);
  model.addAdapter('t', 'lora', { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'] }, { seed: 1 });
  if (randomize) randomizeParams(model, 't', scale);
  const data = preferencePairs(jsonl, 'prefs.jsonl', createTokenizer(ckpt.tokenizer!), SEQ);
  return { model, data };
}

/** Summed log-probability of each row under the model as it is (float64 js backend, evaluation path). */
async function logps(model: AdaptedModel, ids: Int32Array, targets: Int32Array, rows: number): Promise<number[]> {
  const rt = model.runtime(createJsBackend({ precision: 'f64' }));
  const out: number[] = [];
  for (let i = 0; i < rows; i++) {
    const r = await rt.evalTargets([Array.from(ids.subarray(i * SEQ, (i + 1) * SEQ))], [Array.from(targets.subarray(i * SEQ, (i + 1) * SEQ))]);
    out.push(-r.loss * r.tokens);
  }
  rt.dispose();
  return out;
}

/** The DPO graph on the float64 js backend, loaded with a batch and the reference's log-probabilities. */
async function dpoSession(model: AdaptedModel, data: ReturnType<typeof preferencePairs>, beta: number, params = false) {
  const B = data.pairs, d = buildDpoGraph(model, 't', B, SEQ, beta);
  const grads = params ? gradients(d.loss, d.trainable) : undefined;
  if (grads) d.graph.markOutput(d.loss, ...d.trainable.map((t) => grads.get(t)!));
  const s = await Session.create(d.graph, createJsBackend({ precision: 'f64' }));
  uploadWeights(s, d.net.weights, d.weights);
  model.uploadAdapterParams(s);
  const batch = preferenceBatch(data, 0, B);
  model.disable('t');
  const ref = await logps(model, batch.ids, batch.targets, 2 * B);
  model.enable('t');
  s.set(d.net.ids, batch.ids); s.set(d.targets, batch.targets); s.set(d.counts, batch.counts);
  s.set(d.reference, Float64Array.from(ref) as unknown as Float32Array); s.set(d.zeroClass, new Int32Array(B));
  return { s, d, batch, ref, grads };
}

test('the loss equals −mean log σ(β·margin) computed from separately evaluated log-probabilities', async () => {
  const { model, data } = await setup(true);
  const beta = 0.5, B = data.pairs;
  const { s, d, batch, ref } = await dpoSession(model, data, beta);
  await s.run();
  const pol = await logps(model, batch.ids, batch.targets, 2 * B);
  let expected = 0;
  const margins: number[] = [];
  for (let i = 0; i < B; i++) {
    const z = beta * ((pol[i]! - ref[i]!) - (pol[B + i]! - ref[B + i]!));
    margins.push(z);
    expected += Math.log1p(Math.exp(-z)) / B;
  }
  const loss = (await s.get(d.loss))[0]!;
  assert.ok(Math.abs(loss - expected) < 1e-9, `graph ${loss}, direct ${expected}`);
  assert.ok(Math.abs(loss - Math.LN2) > 1e-3, 'the adapter moves the policy away from the reference, so the check is not at the trivial point');
  const z = await s.get(d.margins);
  margins.forEach((m, i) => assert.ok(Math.abs(z[i]! - m) < 1e-9, `margin ${i}: ${z[i]} vs ${m}`));
});

test('gradients match central finite differences of the loss (float64)', async () => {
  const { model, data } = await setup(true, 0.1);
  const { s, d, grads } = await dpoSession(model, data, 0.5, true);
  await s.run();
  const analytic = await s.getMany(d.trainable.map((t) => grads!.get(t)!));
  let worst = 0, largest = 0;
  for (const [ti, t] of d.trainable.entries()) {
    if (ti % 2 === 1 && ti > 2) continue;
    const base = Float64Array.from(await s.get(t));
    for (const j of [0, 3, Math.floor(base.length / 2), base.length - 1]) {
      const at = (x: number) => { const v = Float64Array.from(base); v[j] = x; s.set(t, v as unknown as Float32Array); };
      const eps = 1e-5;
      at(base[j]! + eps); await s.run(); const up = (await s.get(d.loss))[0]!;
      at(base[j]! - eps); await s.run(); const down = (await s.get(d.loss))[0]!;
      at(base[j]!);
      const fd = (up - down) / (2 * eps), an = analytic[ti]![j]!;
      largest = Math.max(largest, Math.abs(an));
      worst = Math.max(worst, Math.abs(fd - an));
    }
  }
  assert.ok(largest > 1e-4, `gradients too small to check (${largest})`);
  assert.ok(worst < 1e-6 * Math.max(1, largest), `worst difference ${worst} (largest gradient ${largest})`);
});

test('policy = reference (LoRA B = 0): loss log 2 and zero margins, for any β', async () => {
  for (const beta of [0.01, 0.1, 5]) {
    const { model, data } = await setup(false);
    const { s, d } = await dpoSession(model, data, beta);
    await s.run();
    assert.ok(Math.abs((await s.get(d.loss))[0]! - Math.LN2) < 1e-9);
    for (const z of await s.get(d.margins)) assert.ok(Math.abs(z) < 1e-9);
  }
});

test('β → 0: the loss tends to log 2 and the gradient shrinks linearly with β (every pair weighted alike)', async () => {
  const { model, data } = await setup(true);
  const norms: number[] = [];
  for (const beta of [1e-6, 1e-7]) {
    const { s, d, grads } = await dpoSession(model, data, beta, true);
    await s.run();
    assert.ok(Math.abs((await s.get(d.loss))[0]! - Math.LN2) < 1e-5, 'loss near log 2');
    const g = await s.getMany(d.trainable.map((t) => grads!.get(t)!));
    norms.push(Math.sqrt(g.reduce((a, x) => a + Array.from(x as ArrayLike<number>).reduce((b: number, y: number) => b + y * y, 0), 0)));
  }
  assert.ok(norms[1]! > 0 && Math.abs(norms[0]! / norms[1]! - 10) < 1e-4, `gradient norms ${norms}`);
});

test('preference data: targets only on the response; errors name the line', async () => {
  const ckpt = await stories();
  const tok = createTokenizer(ckpt.tokenizer!);
  const d = preferencePairs(jsonl, 'prefs.jsonl', tok, SEQ);
  assert.is(d.pairs, 4);
  for (const [side, key] of [[d.chosen, 'chosen'], [d.rejected, 'rejected']] as const) {
    for (let p = 0; p < d.pairs; p++) {
      const response = tok.encode(PAIRS[p]!.prompt + PAIRS[p]![key], { bos: true }).length - tok.encode(PAIRS[p]!.prompt, { bos: true }).length;
      const scored = Array.from(side.targets.subarray(p * SEQ, (p + 1) * SEQ)).filter((t) => t !== -100).length;
      assert.is(side.counts[p], scored);
      assert.ok(Math.abs(scored - response) <= 1, `${key} ${p}: ${scored} scored tokens for a response of about ${response}`);
    }
  }
  assert.throws(() => preferencePairs(`${jsonl}\n{"prompt": "a", "chosen": "b"}`, 'p.jsonl', tok, SEQ), /p\.jsonl:5: expected \{"prompt"/);
  assert.throws(() => preferencePairs('{"prompt": "a", "chosen": "b", "rejected": ""}', 'p.jsonl', tok, SEQ), /p\.jsonl:1: the rejected response has no token/);
  assert.throws(() => preferencePairs('not json', 'p.jsonl', tok, SEQ), /p\.jsonl:1: not valid JSON/);
  assert.throws(() => preferencePairs('\n\n', 'p.jsonl', tok, SEQ), /no preference pairs/);
});

test('training raises the reward margin; the same curve on js, wasm and webgpu', async () => {
  // A gentle rate and β keep the loss away from 0, where float32 differences between backends would dominate it.
  const run = async (backend: ReturnType<typeof js>, steps: number) => {
    const { model, data } = await setup(false);
    return (await trainDpo({ model, adapter: 't', backend, data, steps, batch: 4, lr: 2e-3, beta: 0.1, decay: 'constant' })).steps;
  };
  const ref = await run(js(), 10);
  assert.ok(Math.abs(ref[0]!.loss - Math.LN2) < 1e-6 && ref[0]!.margin === 0, 'the first step starts at the reference');
  for (let i = 2; i < 10; i++) assert.ok(ref[i]!.margin > ref[i - 1]!.margin, `margin fell at step ${i + 1}: ${ref.map((s) => s.margin)}`);
  assert.ok(ref[9]!.accuracy === 1 && ref[9]!.loss < 0.3, `step 10: loss ${ref[9]!.loss}, accuracy ${ref[9]!.accuracy}`);
  for (const { name, backend } of await otherBackends()) {
    const other = await run(backend, 4);
    const diff = curveDiff(ref.slice(0, 4).map((s) => s.loss), other.map((s) => s.loss));
    assert.ok(diff < 1e-4, `${name}: loss curve differs by ${diff}`);
    backend.dispose();
  }
});

test('bad options are refused before any work', async () => {
  const { model, data } = await setup(false);
  const refused = async (o: Partial<Parameters<typeof trainDpo>[0]>, pattern: RegExp) => {
    try {
      await trainDpo({ model, adapter: 't', backend: js(), data, steps: 1, batch: 2, ...o });
    } catch (e) {
      assert.match((e as Error).message, pattern);
      return;
    }
    assert.unreachable(`accepted ${JSON.stringify(o)}`);
  };
  await refused({ beta: 0 }, /beta/);
  await refused({ steps: 0 }, /steps/);
  await refused({ batch: 1.5 }, /batch/);
  // A row longer than the context.
  const long = preferencePairs(jsonl, 'p.jsonl', createTokenizer(model.base.tokenizer!), model.base.config.maxSeqLen + 1);
  await refused({ data: long }, /exceed the model's context/);
});

test.run();
