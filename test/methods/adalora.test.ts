// AdaLoRA on stories260K: gradients of P, Λ, Q (with the orthogonality regulariser in the loss) against
// finite differences (float64, tolerance 1e-6 relative to the largest probed gradient); the rank allocator
// following the cubic budget schedule step by step; the saved rank_pattern; merge and PEFT round trip.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { adaloraBudget } from '../../src/adapters/adalora/index.js';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { evalLoss, gradientCheck, heroBlocks, hfLayoutGap, mergeGap, randomizeParams, roundTrip, stories, trainHero } from './helpers.js';

const TOL = 1e-6;

test('gradients of lora_A, lora_E, lora_B with the orthogonality regulariser match finite differences', async () => {
  const model = new AdaptedModel(await stories());
  model.addAdapter('t', 'adalora', { initR: 4, targetR: 2, targetModules: ['q_proj', 'v_proj', 'down_proj'], orthRegWeight: 0.5 });
  randomizeParams(model, 't', 0.3);
  const { worst, keys } = await gradientCheck(model, 't', { stride: 2 });
  assert.ok(keys.includes('model.layers.4.mlp.down_proj.lora_E'));
  assert.ok(worst < TOL, `relative error ${worst}`);
});

test('the budget schedule: b(0) through t_i, a cubic decrease to b(T) at T − t_f, allocations every ΔT', () => {
  const c = { tinit: 2, tfinal: 3, deltaT: 2 };
  const seen = Array.from({ length: 12 }, (_, i) => adaloraBudget(i + 1, c, 12, 40, 20));
  const cubic = (t: number) => Math.floor(20 * (1 - (t - 2) / 7) ** 3 + 20);
  assert.equal(seen.map((s) => s.budget), [40, 40, cubic(3), cubic(4), cubic(5), cubic(6), cubic(7), cubic(8), 20, 20, 20, 20]);
  assert.equal(seen.map((s) => s.allocate), [false, false, false, true, false, true, false, true, false, true, true, true]);
  assert.is(cubic(9), 20);
});

test('training: the kept ranks follow the schedule step by step, pruned Λ are zero, the held-out loss falls', async () => {
  const model = new AdaptedModel(await stories());
  const a = model.addAdapter('t', 'adalora', { initR: 4, targetR: 2, tinit: 2, tfinal: 3, deltaT: 2, orthRegWeight: 0.1 }, { seed: 1 });
  assert.is(a.modules.length, 10);
  const kept: (number | undefined)[] = [];
  const cfg = a.config as { rankPattern?: Record<string, boolean[]> };
  const r = await trainHero(model, 't', {
    steps: 12, lr: 2e-2,
    onStep: () => kept.push(cfg.rankPattern ? Object.values(cfg.rankPattern).flat().filter(Boolean).length : undefined),
  });
  const cubic = (t: number) => Math.floor(20 * (1 - (t - 2) / 7) ** 3 + 20);
  // No allocation before step 4 (t_i = 2, ΔT = 2); then the schedule's value at each allocation step,
  // held until the next one; from T − t_f = 9 on, the target budget.
  assert.equal(kept, [undefined, undefined, undefined, cubic(4), cubic(4), cubic(6), cubic(6), cubic(8), 20, 20, 20, 20]);
  const pattern = cfg.rankPattern!;
  for (const m of a.modules) {
    const e = a.params.get(`${m.name}.lora_E`)!.data, keep = pattern[`${m.name}.lora_E`]!;
    keep.forEach((k, q) => { if (!k) assert.is(e[q], 0, `${m.name} triplet ${q} is pruned`); });
  }
  assert.ok(r.after < r.before - 0.05, `held-out loss ${r.before} → ${r.after}`);

  // The saved rank_pattern is the final allocation, and each module keeps exactly those triplets.
  const rt = roundTrip(model, 't');
  assert.equal(rt.config.rank_pattern, pattern);
  assert.is(rt.config.total_step, 12);
  const loaded = rt.model.get('t');
  for (const m of a.modules) {
    const n = pattern[`${m.name}.lora_E`]!.filter(Boolean).length;
    assert.equal(loaded.params.get(`${m.name}.lora_A`)!.shape, [n, m.inFeatures]);
    assert.equal(loaded.params.get(`${m.name}.lora_B`)!.shape, [m.outFeatures, n]);
  }
  assert.ok(rt.tensors.includes('base_model.model.model.layers.0.self_attn.q_proj.lora_E'));
  const held = heroBlocks(model.base, 32, 8, 99);
  const [live, back] = [await evalLoss(model, held), await evalLoss(rt.model, held)];
  assert.ok(Math.abs(live - back) < 1e-6, `eval loss ${live} live, ${back} reloaded`);
  assert.ok((await mergeGap(model, 't')) < 1e-4);
  assert.ok((await mergeGap(rt.model, 't')) < 1e-4);
  const hf = await hfLayoutGap(model, 't');
  assert.ok(hf < 1e-4, `rotate-half gap ${hf}`);
});

test.run();
