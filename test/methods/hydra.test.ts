// Hydra on stories260K: gradients of both branches against finite differences (float64, tolerance 1e-6
// relative to the largest probed gradient), a short hero-task fine-tune, merge and round trip.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { evalLoss, gradientCheck, heroBlocks, hfLayoutGap, mergeGap, randomizeParams, roundTrip, stories, trainHero } from './helpers.js';

const TOL = 1e-6;

test('gradients of the parallel and sequential branches match finite differences', async () => {
  const model = new AdaptedModel(await stories());
  model.addAdapter('t', 'hydra', { r: 3, targetModules: ['k_proj', 'o_proj', 'up_proj', 'down_proj'] });
  randomizeParams(model, 't', 0.1);
  const { worst, keys } = await gradientCheck(model, 't', { stride: 3 });
  assert.ok(keys.includes('model.layers.1.mlp.down_proj.hydra_seq_A.weight'));
  assert.ok(worst < TOL, `relative error ${worst}`);
});

test('a fresh adapter is the identity; training lowers the held-out hero-task loss', async () => {
  const model = new AdaptedModel(await stories());
  const held = heroBlocks(model.base, 32, 8, 99);
  const base = await evalLoss(model, held);
  model.addAdapter('t', 'hydra', { r: 4 }, { seed: 3 });
  assert.is(await evalLoss(model, held), base);
  // q_proj 64→64 and v_proj 64→32: parallel r·(in + out), sequential r·(out + out).
  assert.is(model.parameterCount('t'), 5 * (4 * (64 + 64) + 4 * (64 + 64) + 4 * (64 + 32) + 4 * (32 + 32)));
  const r = await trainHero(model, 't', { steps: 12, lr: 1e-2 });
  assert.ok(r.after < r.before - 0.05, `held-out loss ${r.before} → ${r.after}`);
});

test('merged (W₀ + B_pA_p + B_sA_sW₀) and unmerged logits agree; save → load is exact, also onto a rotate-half base', async () => {
  const model = new AdaptedModel(await stories());
  const a = model.addAdapter('t', 'hydra', { r: 2, targetModules: ['q_proj', 'k_proj', 'v_proj', 'gate_proj'] });
  randomizeParams(model, 't', 0.1);
  const gap = await mergeGap(model, 't');
  assert.ok(gap < 1e-4, `merge gap ${gap}`);
  const rt = roundTrip(model, 't');
  assert.is(rt.config.peft_type, 'HYDRA');
  assert.ok(rt.tensors.includes('base_model.model.model.layers.0.self_attn.k_proj.hydra_seq_A.weight'));
  for (const [k, p] of a.params) assert.equal(Array.from(rt.model.get('t').params.get(k)!.data), Array.from(p.data), k);
  const held = heroBlocks(model.base, 32, 8, 99);
  assert.is(await evalLoss(rt.model, held), await evalLoss(model, held));
  const hf = await hfLayoutGap(model, 't');
  assert.ok(hf < 1e-4, `rotate-half gap ${hf}`);
});

test.run();
