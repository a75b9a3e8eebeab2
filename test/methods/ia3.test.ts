// (IA)³ on stories260K: gradients against finite differences (float64, tolerance 1e-6 relative to the
// largest probed gradient, as the LoRA check), a short hero-task fine-tune, merge and PEFT round trip.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { randn } from '../helpers.js';
import { evalLoss, forwardLogits, gradientCheck, heroBlocks, hfLayoutGap, mergeGap, roundTrip, stories, trainHero } from './helpers.js';

const TOL = 1e-6;

test('gradients of l_k, l_v, l_ff (and an output-scaled q_proj) match finite differences', async () => {
  const model = new AdaptedModel(await stories());
  const a = model.addAdapter('t', 'ia3', { targetModules: ['q_proj', 'k_proj', 'v_proj', 'down_proj'] });
  // Away from the all-ones start, so every vector matters.
  let k = 0;
  for (const p of a.params.values()) p.data.set(randn(p.data.length, 40 + k++, 0.2).map((v) => 1 + v));
  const { worst, keys } = await gradientCheck(model, 't');
  assert.ok(keys.includes('model.layers.2.mlp.down_proj.ia3_l') && keys.includes('model.layers.0.self_attn.k_proj.ia3_l'));
  assert.equal(a.params.get('model.layers.0.mlp.down_proj.ia3_l')!.shape, [1, 172]);
  assert.equal(a.params.get('model.layers.0.self_attn.v_proj.ia3_l')!.shape, [32, 1]);
  assert.ok(worst < TOL, `relative error ${worst}`);
});

test('a fresh adapter is the identity; training lowers the held-out hero-task loss', async () => {
  const model = new AdaptedModel(await stories());
  const held = heroBlocks(model.base, 32, 8, 99);
  const base = await evalLoss(model, held);
  model.addAdapter('t', 'ia3', {});
  assert.ok(Math.abs((await evalLoss(model, held)) - base) < 1e-6, 'all-ones vectors change nothing');
  assert.is(model.parameterCount('t'), 5 * (32 + 32 + 172));
  const r = await trainHero(model, 't', { steps: 12, lr: 5e-2 });
  assert.ok(r.after < r.before - 0.05, `held-out loss ${r.before} → ${r.after}`);
});

test('merged and unmerged logits agree; PEFT save → load gives the identical eval loss', async () => {
  const model = new AdaptedModel(await stories());
  const a = model.addAdapter('t', 'ia3', { targetModules: ['k_proj', 'v_proj', 'down_proj', 'o_proj'] });
  let k = 0;
  for (const p of a.params.values()) p.data.set(randn(p.data.length, 7 + k++, 0.3).map((v) => 1 + v));
  const gap = await mergeGap(model, 't');
  assert.ok(gap < 1e-4, `merge gap ${gap}`);
  const rt = roundTrip(model, 't');
  assert.is(rt.config.peft_type, 'IA3');
  assert.equal(rt.config.feedforward_modules, ['down_proj']);
  assert.ok(rt.tensors.includes('base_model.model.model.layers.4.self_attn.k_proj.ia3_l'));
  // k_proj's vector is stored in Hugging Face's rotate-half row order and comes back in ours.
  const key = 'model.layers.1.self_attn.k_proj.ia3_l';
  assert.equal(Array.from(rt.model.get('t').params.get(key)!.data), Array.from(a.params.get(key)!.data));
  const held = heroBlocks(model.base, 32, 8, 99);
  assert.is(await evalLoss(rt.model, held), await evalLoss(model, held));
  const hf = await hfLayoutGap(model, 't');
  assert.ok(hf < 1e-4, `rotate-half gap ${hf}`);
});

test('(IA)³ on down_proj composes with LoRA on the same module: its input scaling reaches the LoRA branch', async () => {
  const model = new AdaptedModel(await stories());
  const lora = model.addAdapter('lora', 'lora', { r: 2, targetModules: ['down_proj'] });
  for (const p of lora.params.values()) p.data.set(randn(p.data.length, 3, 0.1));
  const a = model.addAdapter('ia3', 'ia3', { targetModules: ['down_proj'] });
  for (const p of a.params.values()) p.data.set(randn(p.data.length, 5, 0.3).map((v) => 1 + v));
  // Merging both folds W' = (W + s·B·A)·diag(l), which equals the chained graph only if l scales the LoRA input too.
  const ids = Int32Array.from({ length: 16 }, (_, i) => (i * 37 + 5) % 512);
  const chained = await forwardLogits(model, ids, 2, 8);
  model.merge('lora'); model.merge('ia3');
  const merged = await forwardLogits(model, ids, 2, 8);
  const gap = merged.reduce((m, v, i) => Math.max(m, Math.abs(v - chained[i]!)), 0);
  assert.ok(gap < 1e-4, `gap ${gap}`);
});

test.run();
