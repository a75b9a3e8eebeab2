// SSF on stories260K: gradients against finite differences (float64, tolerance 1e-6 relative to the
// largest probed gradient), a short hero-task fine-tune, merge into weight rows and a new bias, round trip.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { evalLoss, gradientCheck, heroBlocks, hfLayoutGap, mergeGap, roundTrip, stories, trainHero } from './helpers.js';

const TOL = 1e-6;

test('gradients of γ and β on every projection match finite differences', async () => {
  const model = new AdaptedModel(await stories());
  model.addAdapter('t', 'ssf', { initStd: 0.2 }, { seed: 4 });
  const { worst, keys } = await gradientCheck(model, 't', { stride: 3 });
  assert.is(keys.length, 5 * 7 * 2);
  assert.ok(keys.includes('model.layers.3.mlp.gate_proj.ssf_shift'));
  assert.ok(worst < TOL, `relative error ${worst}`);
});

test('initStd 0 is the identity; training lowers the held-out hero-task loss', async () => {
  const model = new AdaptedModel(await stories());
  const held = heroBlocks(model.base, 32, 8, 99);
  const base = await evalLoss(model, held);
  model.addAdapter('id', 'ssf', { initStd: 0 });
  assert.ok(Math.abs((await evalLoss(model, held)) - base) < 1e-6);
  model.disable('id');
  model.addAdapter('t', 'ssf', {}, { seed: 2 });
  assert.is(model.parameterCount('t'), 5 * 2 * (64 + 32 + 32 + 64 + 172 + 172 + 64));
  const r = await trainHero(model, 't', { steps: 12, lr: 1e-2 });
  assert.ok(r.after < r.before - 0.05, `held-out loss ${r.before} → ${r.after}`);
});

test('merged (scaled rows + a new bias) and unmerged logits agree; save → load gives the identical eval loss', async () => {
  const model = new AdaptedModel(await stories());
  const a = model.addAdapter('t', 'ssf', { targetModules: ['q_proj', 'k_proj', 'o_proj', 'down_proj'], initStd: 0.1 }, { seed: 9 });
  const gap = await mergeGap(model, 't');
  assert.ok(gap < 1e-4, `merge gap ${gap}`);
  model.merge('t');
  const ckpt = model.effectiveCheckpoint();
  assert.ok(ckpt.tensors.has('model.layers.0.self_attn.o_proj.bias') && !ckpt.tensors.has('model.layers.0.self_attn.v_proj.bias'));
  model.unmerge('t');
  const rt = roundTrip(model, 't');
  assert.is(rt.config.peft_type, 'SSF');
  assert.ok(rt.tensors.includes('base_model.model.model.layers.2.self_attn.k_proj.ssf_scale'));
  const key = 'model.layers.2.self_attn.k_proj.ssf_shift';
  assert.equal(Array.from(rt.model.get('t').params.get(key)!.data), Array.from(a.params.get(key)!.data));
  const held = heroBlocks(model.base, 32, 8, 99);
  assert.is(await evalLoss(rt.model, held), await evalLoss(model, held));
  // The loaded adapter merges the same way; the saved one applies to a rotate-half copy of the base.
  assert.ok((await mergeGap(rt.model, 't')) < 1e-4);
  const hf = await hfLayoutGap(model, 't');
  assert.ok(hf < 1e-4, `rotate-half gap ${hf}`);
});

test.run();
