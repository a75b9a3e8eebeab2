// IDPT on stories260K: the instance is the mean base embedding of the context tokens only (never a
// predicted one); the generator's and the prompt's gradients against finite differences (float64, 1e-6
// relative); different inputs get different prompts and the same input the same one; at init (W₂ = 0) it is
// prompt tuning with its static prompt; training lowers the held-out loss; generation's first step equals the
// uncached forward with the prompt as the instance; the saved folder reloads to the same loss.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { instanceFeatures } from '../../src/adapters/idpt/instance.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { evalLoss, forwardLogits, gradientCheck, heroBlocks, randomizeParams, roundTrip, stories, trainHero } from './helpers.js';

test('the instance is the mean embedding of the tokens before the first predicted one', () => {
  const dim = 2, table = Float32Array.from([0, 0, 1, 2, 3, 4, 5, 6, 7, 8]); // 5 tokens
  const ids = [1, 2, 3, 4, 1, 1, 4, 4];
  // Row 0: the first target sits at position 1 → tokens 0 and 1 are context; row 1: no targets → all four.
  const t = [-100, 7, 7, 7, -100, -100, -100, -100];
  assert.equal(Array.from(instanceFeatures(table, dim, ids, t, 2, 4)), [2, 3, 4, 5]);
  // Changing a predicted token (position 2 onwards in row 0) does not change the instance.
  assert.equal(Array.from(instanceFeatures(table, dim, [1, 2, 0, 0, 1, 1, 4, 4], t, 2, 4)), [2, 3, 4, 5]);
  // Without targets every token is context.
  assert.equal(Array.from(instanceFeatures(table, dim, ids, undefined, 2, 4)).slice(0, 2), [4, 5]);
});

test('every parameter\'s gradient matches finite differences', async () => {
  const model = new AdaptedModel(await stories());
  model.addAdapter('t', 'idpt', { numVirtualTokens: 3, generatorHidden: 4 }, { seed: 2 });
  randomizeParams(model, 't', 0.2);
  const { worst, keys } = await gradientCheck(model, 't');
  assert.equal(keys.sort(), ['idpt_generator.b1', 'idpt_generator.b2', 'idpt_generator.w1', 'idpt_generator.w2', 'prompt_embeddings']);
  assert.ok(worst < 1e-6, `relative error ${worst}`);
});

test('the prompt depends on the instance: different prompts differ, the same prompt repeats; at init it is prompt tuning', async () => {
  const ckpt = await stories();
  const a = new AdaptedModel(ckpt), p = new AdaptedModel(ckpt);
  const i = a.addAdapter('t', 'idpt', { numVirtualTokens: 4 }, { seed: 5 });
  p.addAdapter('t', 'prompt-tuning', { numVirtualTokens: 4 }).params.get('prompt_embeddings')!.data.set(i.params.get('prompt_embeddings')!.data);
  const x = Int32Array.from([1, 403, 407, 261, 300, 1, 261, 300, 302, 305]);
  const [init, plain] = [await forwardLogits(a, x, 2, 5), await forwardLogits(p, x, 2, 5)];
  assert.ok(init.every((v, k) => Math.abs(v - plain[k]!) < 1e-5), 'W₂ = 0: prompt tuning');
  randomizeParams(a, 't', 0.3, (k) => k === 'prompt_embeddings');
  // The second row of both batches is the same text; the first differs.
  const y = Int32Array.from([1, 403, 500, 12, 300, 1, 261, 300, 302, 305]);
  const [lx, ly, again] = [await forwardLogits(a, x, 2, 5), await forwardLogits(a, y, 2, 5), await forwardLogits(a, x, 2, 5)];
  // forwardLogits keeps the 4 virtual positions: a row is 9 positions of V logits.
  const V = ckpt.config.vocabSize, row = 9 * V;
  assert.equal(again, lx, 'the same input, the same prompt');
  assert.ok(lx.subarray(row).every((v, k) => v === ly[row + k]), 'a row\'s prompt depends on its own input only');
  // Real position 0 reads only the prompt and BOS: its logits differ only through the generated prompt.
  assert.ok(lx.subarray(4 * V, 5 * V).some((v, k) => Math.abs(v - ly[4 * V + k]!) > 1e-3), 'a different input, a different prompt');
});

test('training lowers the held-out loss; generation starts from the prompt as the instance; save → load is exact', async () => {
  const model = new AdaptedModel(await stories());
  model.addAdapter('t', 'idpt', {}, { seed: 3 });
  const r = await trainHero(model, 't', { steps: 12, lr: 3e-2 });
  assert.ok(r.after < r.before - 0.05, `held-out loss ${r.before} → ${r.after}`);
  randomizeParams(model, 't', 0.05, (k) => k !== 'idpt_generator.w2');
  const prompt = [1, 403, 407, 261];
  const rt = model.runtime(createJsBackend());
  const [first] = await rt.generate(prompt, { maxTokens: 1, stopTokens: [] });
  const logits = await rt.logits(Int32Array.from(prompt), 1, prompt.length);
  rt.dispose();
  const V = model.base.config.vocabSize, last = logits.subarray((prompt.length - 1) * V);
  assert.is(first, last.indexOf(Math.max(...last)));
  const rtt = roundTrip(model, 't');
  assert.is(rtt.config.peft_type, 'IDPT');
  assert.equal([rtt.config.num_virtual_tokens, rtt.config.generator_hidden, rtt.config.token_dim], [8, 32, 64]);
  assert.equal(rtt.tensors.sort(), ['idpt_generator.b1', 'idpt_generator.b2', 'idpt_generator.w1', 'idpt_generator.w2', 'prompt_embeddings']);
  const held = heroBlocks(model.base, 32, 8, 99);
  assert.is(await evalLoss(rtt.model, held), await evalLoss(model, held));
});

test.run();
