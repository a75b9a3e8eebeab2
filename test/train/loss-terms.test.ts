// The logged loss is the task loss. A method with a regulariser (AdaLoRA's and TriAdaptLoRA's
// orthogonality terms) reports it by name beside the loss, and the objective the optimizer minimised is
// reported as their sum. Checked on the first step of a real run: its loss must equal an independent
// evaluation of the same batch before any update (1e-5 relative), and loss + terms = objective (1e-6).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { batchAt } from '../../src/data/dataset.js';
import { fineTune } from '../../src/train/finetune.js';
import type { StepResult } from '../../src/train/trainer.js';
import { heroBlocks, randomizeParams, stories } from '../methods/helpers.js';

const SEQ = 32, BATCH = 4;

async function firstSteps(method: string, config: Record<string, unknown>): Promise<{ steps: StepResult[]; evaluated: number }> {
  const model = new AdaptedModel(await stories());
  model.addAdapter('t', method, config, { seed: 1 });
  // Random factors: the orthogonality terms of freshly initialised adapters can be near zero.
  randomizeParams(model, 't', 0.2, (k) => !/\.lora_[ABE]$/.test(k));
  const data = heroBlocks(model.base, SEQ, 8, 7);
  const backend = createJsBackend();
  // The first batch of the run, scored before training by the evaluation path (no regulariser there).
  const first = batchAt(data, 0, BATCH);
  const rows = Array.from({ length: BATCH }, (_, i) => Array.from(first.ids.subarray(i * SEQ, (i + 1) * SEQ)));
  const targets = Array.from({ length: BATCH }, (_, i) => Array.from(first.targets.subarray(i * SEQ, (i + 1) * SEQ)));
  const rt = model.runtime(backend);
  const evaluated = (await rt.evalTargets(rows, targets)).loss;
  rt.dispose();
  const steps: StepResult[] = [];
  await fineTune({ model, adapter: 't', backend, data, steps: 2, batch: BATCH, lr: 1e-2, decay: 'constant', seed: 1, onStep: (r) => steps.push(r) });
  return { steps, evaluated };
}

const close = (a: number, b: number, tol: number) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

for (const [method, config] of [
  ['adalora', { initR: 4, targetR: 2, targetModules: ['q_proj', 'v_proj'], orthRegWeight: 0.5, totalStep: 2 }],
  ['triadaptlora', { initRank: 3, maxRank: 4, targetModules: ['q_proj', 'down_proj'], orthRegWeight: 0.5 }],
] as const) {
  test(`${method}: "loss" is the task loss; orth_reg is reported beside it; they sum to the objective`, async () => {
    const { steps, evaluated } = await firstSteps(method, config);
    const s1 = steps[0]!;
    assert.equal(Object.keys(s1.terms), ['orth_reg']);
    const reg = s1.terms.orth_reg!;
    assert.ok(reg > 1e-4, `the regulariser is ${reg}: too small for the check to tell the loss from the objective`);
    assert.ok(close(s1.loss, evaluated, 1e-5), `step 1 loss ${s1.loss}, evaluated before training ${evaluated}`);
    assert.ok(close(s1.objective, s1.loss + reg, 1e-6), `objective ${s1.objective} vs loss ${s1.loss} + orth_reg ${reg}`);
    for (const s of steps) assert.ok(close(s.objective, s.loss + s.terms.orth_reg!, 1e-6));
  });
}

test('a method without a regulariser: no terms, the objective is the loss', async () => {
  const { steps, evaluated } = await firstSteps('lora', { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj'] });
  assert.equal(steps[0]!.terms, {});
  assert.is(steps[0]!.objective, steps[0]!.loss);
  assert.ok(close(steps[0]!.loss, evaluated, 1e-5), `${steps[0]!.loss} vs ${evaluated}`);
});

test.run();
