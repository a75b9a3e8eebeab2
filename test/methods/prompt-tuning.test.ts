// Prompt tuning on stories260K: the prompt's gradient against finite differences (float64, tolerance 1e-6
// relative to the largest probed gradient), a short hero-task fine-tune, KV-cache generation equal to
// uncached decoding, and the PEFT folder (bare `prompt_embeddings`).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { evalLoss, gradientCheck, greedyBothWays, heroBlocks, roundTrip, stories, trainHero } from './helpers.js';
import { tensorF32 } from '../../src/formats/checkpoint.js';

const TOL = 1e-6;

test('the gradient of the virtual-token embeddings matches finite differences', async () => {
  const model = new AdaptedModel(await stories());
  model.addAdapter('t', 'prompt-tuning', { numVirtualTokens: 3 }, { seed: 2 });
  const { worst, keys } = await gradientCheck(model, 't');
  assert.equal(keys, ['prompt_embeddings']);
  assert.ok(worst < TOL, `relative error ${worst}`);
});

test('text init copies the text\'s token embeddings; training lowers the held-out hero-task loss', async () => {
  const model = new AdaptedModel(await stories());
  const a = model.addAdapter('t', 'prompt-tuning', { numVirtualTokens: 8, initText: 'a little dragon' });
  const ids = createTokenizer(model.base.tokenizer!).encode('a little dragon', { bos: false });
  const table = tensorF32(model.base.tensors.get('model.embed_tokens.weight')!), P = a.params.get('prompt_embeddings')!.data;
  for (let i = 0; i < 8; i++) assert.equal(Array.from(P.subarray(i * 64, i * 64 + 64)), Array.from(table.subarray(ids[i % ids.length]! * 64, ids[i % ids.length]! * 64 + 64)));
  assert.is(model.parameterCount('t'), 8 * 64);
  const r = await trainHero(model, 't', { steps: 12, lr: 3e-2 });
  assert.ok(r.after < r.before - 0.05, `held-out loss ${r.before} → ${r.after}`);
});

test('KV-cache generation feeds the virtual tokens first and matches uncached decoding; save → load is exact', async () => {
  const model = new AdaptedModel(await stories());
  model.addAdapter('t', 'prompt-tuning', { numVirtualTokens: 6 }, { seed: 3 });
  // "Once upon a" without BOS, so the virtual tokens open the text (after BOS this model ignores what came before).
  const { cached, full } = await greedyBothWays(model, [403, 407, 261], 8);
  assert.equal(cached, full);
  model.disable('t');
  const plain = await greedyBothWays(model, [403, 407, 261], 8);
  assert.not.equal(plain.cached, cached, 'the prompt changes what the model says');
  model.enable('t');
  const rt = roundTrip(model, 't');
  assert.equal(rt.tensors, ['prompt_embeddings']);
  assert.is(rt.config.peft_type, 'PROMPT_TUNING');
  assert.is(rt.config.num_virtual_tokens, 6);
  assert.is(rt.config.token_dim, 64);
  const held = heroBlocks(model.base, 32, 8, 99);
  assert.is(await evalLoss(rt.model, held), await evalLoss(model, held));
});

test.run();
