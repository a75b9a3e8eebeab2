// TriAdaptLoRA on stories260K: gradients of A, B and the triangular parts of C (with the orthogonality
// regulariser) against finite differences (float64, tolerance 1e-6 relative to the largest probed
// gradient); rank growth only as the threshold schedule allows; merge and round trip of the grown adapter.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { type TriAdaptConfig, growthCount } from '../../src/adapters/triadaptlora/index.js';
import { evalLoss, gradientCheck, heroBlocks, hfLayoutGap, mergeGap, randomizeParams, roundTrip, stories, trainHero } from './helpers.js';

const TOL = 1e-6;

test('gradients of A, B, C_lower, C_upper match finite differences; inactive ranks get none', async () => {
  const model = new AdaptedModel(await stories());
  model.addAdapter('t', 'triadaptlora', { initRank: 3, maxRank: 5, targetModules: ['k_proj', 'down_proj'], orthRegWeight: 0.5 });
  randomizeParams(model, 't', 0.3, (k) => k.includes('.tri_'));
  const { worst, keys } = await gradientCheck(model, 't', { probe: (k) => !k.includes('.tri_') });
  assert.ok(keys.includes('model.layers.2.mlp.down_proj.lora_C_upper'));
  assert.ok(worst < TOL, `relative error ${worst}`);
  // Trainable: A, B and both parts of C at the allocated size (the masks select the active block).
  assert.is(model.parameterCount('t'), 5 * (5 * 64 + 32 * 5 + 2 * 25 + 5 * 172 + 64 * 5 + 2 * 25));
});

test('the threshold schedule: how many modules may grow, linear and exponential', () => {
  const c = { initWarmup: 2, rankGrowth: 'linear' as const };
  assert.equal([3, 7, 12].map((t) => growthCount(t, c, 12, 30)), [3, 15, 30]);
  assert.equal([3, 12].map((t) => growthCount(t, { ...c, rankGrowth: 'exponential' }, 12, 30)), [1, 30]);
  assert.is(growthCount(3, c, 12, 5), 1, 'at least one module grows at a growth step');
});

test('training: ranks grow only at growth steps, by increRankNum, for at most K(t) modules, up to the budget; the loss falls', async () => {
  const model = new AdaptedModel(await stories());
  const a = model.addAdapter('t', 'triadaptlora', { referenceRank: 4, initRank: 1, maxRank: 6, increRankNum: 2, initWarmup: 2, increInterval: 2, orthRegWeight: 0.1 }, { seed: 1 });
  const cfg = a.config as TriAdaptConfig;
  const history: Record<string, number>[] = [{ ...cfg.rankPattern ?? Object.fromEntries(a.modules.map((m) => [m.name, 1])) }];
  const r = await trainHero(model, 't', { steps: 12, lr: 2e-2, onStep: () => history.push({ ...cfg.rankPattern! }) });
  const budget = 4 * 10;
  for (let t = 1; t <= 12; t++) {
    const before = history[t - 1]!, after = history[t]!;
    const used = Object.values(before).reduce((x, y) => x + y, 0);
    const grown = a.modules.filter((m) => after[m.name]! !== before[m.name]!);
    for (const m of grown) {
      const d = after[m.name]! - before[m.name]!;
      assert.ok(d > 0 && d <= 2 && after[m.name]! <= 6, `${m.name} went ${before[m.name]} → ${after[m.name]} at step ${t}`);
    }
    const growthStep = t > 2 && t % 2 === 0 && used < budget;
    assert.ok(growthStep ? grown.length <= growthCount(t, cfg, 12, budget - used) : grown.length === 0, `step ${t}: ${grown.length} modules grew`);
    assert.ok(Object.values(after).reduce((x, y) => x + y, 0) <= budget);
  }
  const final = history[12]!;
  assert.ok(Object.values(final).reduce((x, y) => x + y, 0) > 10, 'ranks grew');
  assert.ok(r.after < r.before - 0.05, `held-out loss ${r.before} → ${r.after}`);

  // Saved at the grown ranks, with the rank pattern; reloading gives the same model.
  const rt = roundTrip(model, 't');
  assert.equal(rt.config.rank_pattern, final);
  const m0 = a.modules[0]!;
  assert.equal(rt.model.get('t').params.get(`${m0.name}.lora_A`)!.shape, [final[m0.name], 64]);
  const held = heroBlocks(model.base, 32, 8, 99);
  const [live, back] = [await evalLoss(model, held), await evalLoss(rt.model, held)];
  assert.ok(Math.abs(live - back) < 1e-6, `${live} live, ${back} reloaded`);
  assert.ok((await mergeGap(model, 't')) < 1e-4);
  const hf = await hfLayoutGap(model, 't');
  assert.ok(hf < 1e-4, `rotate-half gap ${hf}`);
});

test.run();
