// EPT on stories260K: at init it equals prompt tuning with the same short prompt (the low-rank update and
// the projections start as the identity; logits equal to 1e-6); every parameter's gradient against finite
// differences (float64, 1e-6 relative); the held-out loss falls; KV-cache generation equals uncached
// decoding; the saved folder reloads to the same loss.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { parseEptConfig } from '../../src/adapters/ept/config.js';
import { evalLoss, forwardLogits, gradientCheck, greedyBothWays, heroBlocks, randomizeParams, roundTrip, stories, trainHero } from './helpers.js';

test('options are checked by name', () => {
  assert.equal(parseEptConfig({}), { numVirtualTokens: 8, r: 4, numSpaces: 4, spaceRank: 4, targetModules: [] });
  assert.throws(() => parseEptConfig({ r: 0 }), /r/);
  assert.throws(() => parseEptConfig({ numSpaces: 1.5 }), /numSpaces/);
  assert.throws(() => parseEptConfig({ rank: 2 }), /rank/);
});

test('at init EPT is prompt tuning with its short prompt', async () => {
  const ckpt = await stories();
  const a = new AdaptedModel(ckpt), b = new AdaptedModel(ckpt);
  const e = a.addAdapter('t', 'ept', { numVirtualTokens: 5 }, { seed: 4 });
  const p = b.addAdapter('t', 'prompt-tuning', { numVirtualTokens: 5 });
  p.params.get('prompt_embeddings')!.data.set(e.params.get('prompt_embeddings')!.data);
  const ids = Int32Array.from({ length: 16 }, (_, i) => (i * 37 + 5) % ckpt.config.vocabSize);
  const [x, y] = [await forwardLogits(a, ids, 2, 8), await forwardLogits(b, ids, 2, 8)];
  const gap = x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i]!)), 0);
  assert.ok(gap < 1e-6, `logit gap ${gap}`);
  const again = await forwardLogits(a, ids, 2, 8);
  randomizeParams(a, 't', 0.05, (k) => k === 'prompt_embeddings');
  const moved = await forwardLogits(a, ids, 2, 8);
  assert.ok(moved.some((v, i) => Math.abs(v - again[i]!) > 1e-4), 'the update, the gate and the projections change the output');
});

test('every parameter\'s gradient matches finite differences', async () => {
  const model = new AdaptedModel(await stories());
  model.addAdapter('t', 'ept', { numVirtualTokens: 3, r: 2, numSpaces: 2, spaceRank: 2 }, { seed: 2 });
  randomizeParams(model, 't', 0.3);
  const { worst, keys } = await gradientCheck(model, 't');
  assert.equal(keys.sort(), ['ept_gate', 'ept_lora_A', 'ept_lora_B', 'ept_space_U', 'ept_space_V', 'prompt_embeddings']);
  assert.ok(worst < 1e-6, `relative error ${worst}`);
});

test('training lowers the held-out loss; KV-cache generation equals uncached decoding; save → load is exact', async () => {
  const model = new AdaptedModel(await stories());
  model.addAdapter('t', 'ept', {}, { seed: 3 });
  const r = await trainHero(model, 't', { steps: 12, lr: 3e-2 });
  assert.ok(r.after < r.before - 0.05, `held-out loss ${r.before} → ${r.after}`);
  const { cached, full } = await greedyBothWays(model, [403, 407, 261], 6);
  assert.equal(cached, full);
  const rt = roundTrip(model, 't');
  assert.equal(rt.tensors.sort(), ['ept_gate', 'ept_lora_A', 'ept_lora_B', 'ept_space_U', 'ept_space_V', 'prompt_embeddings']);
  assert.is(rt.config.peft_type, 'EPT');
  for (const [k, v] of [['num_virtual_tokens', 8], ['r', 4], ['num_spaces', 4], ['space_rank', 4], ['token_dim', 64]] as const) assert.is(rt.config[k], v, k);
  const held = heroBlocks(model.base, 32, 8, 99);
  assert.is(await evalLoss(rt.model, held), await evalLoss(model, held));
});

test.run();
