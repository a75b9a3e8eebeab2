// LaMDA / LaMDA++ on stories260K: gradients of S and PMB against finite differences (float64, tolerance
// 1e-6 relative to the largest probed gradient); PMB freezing one singular direction at a time and then
// dropping out of the backward pass; LaMDA++'s spectral rank allocation; merge and round trip.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { type LamdaConfig, allocateRanks, frozenColumns } from '../../src/adapters/lamda/index.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { svd } from '../../src/linalg/svd.js';
import { fineTune } from '../../src/train/finetune.js';
import { evalLoss, gradientCheck, heroBlocks, hfLayoutGap, mergeGap, randomizeParams, roundTrip, stories, trainHero } from './helpers.js';
import { tensorF32 } from '../../src/formats/checkpoint.js';

const TOL = 1e-6;

test('gradients of S and PMB match finite differences; PMA gets none', async () => {
  const model = new AdaptedModel(await stories());
  model.addAdapter('t', 'lamda', { r: 3, targetModules: ['q_proj', 'v_proj', 'up_proj', 'down_proj'] });
  randomizeParams(model, 't', 0.2, (k) => k.endsWith('lamda_A.weight'));
  const { worst, keys } = await gradientCheck(model, 't', { stride: 2, probe: (k) => !k.endsWith('lamda_A.weight') });
  assert.ok(keys.includes('model.layers.4.mlp.down_proj.lamda_S.weight'));
  assert.ok(worst < TOL, `relative error ${worst}`);
  assert.is(model.parameterCount('t'), 5 * (9 * 4 + 3 * (64 + 32 + 172 + 64)));
});

test('spectral init: PMA = V_rᵀ, PMB = U_r, S = 0, so the model starts as the base; training lowers the held-out loss', async () => {
  const model = new AdaptedModel(await stories());
  const held = heroBlocks(model.base, 32, 8, 99);
  const base = await evalLoss(model, held);
  const a = model.addAdapter('t', 'lamda', { r: 4 });
  assert.is(await evalLoss(model, held), base);
  const W = model.base.tensors.get('model.layers.2.mlp.down_proj.weight')!;
  const d = svd(tensorF32(W), 64, 172);
  const A = a.params.get('model.layers.2.mlp.down_proj.lamda_A.weight')!.data;
  for (let j = 0; j < 172; j++) assert.ok(Math.abs(A[172 + j]! - d.vt[172 + j]!) < 1e-6);
  const r = await trainHero(model, 't', { steps: 12, lr: 1e-2 });
  assert.ok(r.after < r.before - 0.05, `held-out loss ${r.before} → ${r.after}`);
});

test('PMB freezes one singular direction at a time, then leaves the backward pass; PMA never moves, S keeps training', async () => {
  const ckpt = await stories();
  const data = heroBlocks(ckpt, 24, 16, 7);
  // r = 4, t_i = 4: column j freezes after step j + 1.
  assert.equal([1, 2, 3, 4, 5].map((t) => frozenColumns(t, 4, 4)), [1, 2, 3, 4, 4]);
  const after = async (steps: number) => {
    const model = new AdaptedModel(ckpt);
    const a = model.addAdapter('t', 'lamda', { r: 4, freezeSteps: 4, targetModules: ['v_proj', 'down_proj'] });
    const { run } = await fineTune({ model, adapter: 't', backend: createJsBackend(), data, steps, batch: 2, lr: 2e-2, decay: 'constant', seed: 1 });
    const skipped = run.trainer.skippedSteps;
    run.trainer.dispose();
    return { a, skipped };
  };
  const runs = await Promise.all([1, 2, 4, 6].map(after));
  const [s1, s2, s4, s6] = runs;
  const key = 'model.layers.3.mlp.down_proj', B = (x: typeof s1, c: number) => Array.from({ length: 64 }, (_, i) => x!.a.params.get(`${key}.lamda_B.weight`)!.data[i * 4 + c]!);
  const S = (x: typeof s1) => Array.from(x!.a.params.get(`${key}.lamda_S.weight`)!.data);
  assert.equal(B(s6, 0), B(s1, 0), 'column 0 is fixed from step 1');
  assert.equal(B(s6, 1), B(s2, 1), 'column 1 is fixed from step 2');
  assert.not.equal(B(s2, 3), B(s1, 3), 'column 3 still trains at step 2');
  for (let c = 0; c < 4; c++) assert.equal(B(s6, c), B(s4, c), `column ${c} is fixed from step 4`);
  assert.not.equal(S(s6), S(s4), 'S keeps training');
  assert.equal(Array.from(s6!.a.params.get(`${key}.lamda_A.weight`)!.data), Array.from(s6!.a.initial.get(`${key}.lamda_A.weight`)!.data));
  assert.is(s2!.skipped, 0);
  assert.ok(s6!.skipped > 0, 'after t_i the backward work for PMB is skipped');
});

test('LaMDA++: ranks from the normalised spectra keep the largest energy fractions; merge and round trip', async () => {
  // Allocation: a flat spectrum gets more rank than a steep one.
  assert.equal(allocateRanks([Float64Array.of(1, 1, 1, 1), Float64Array.of(10, 1, 0.1, 0.1)], 4), [3, 1]);
  const model = new AdaptedModel(await stories());
  const a = model.addAdapter('t', 'lamda', { r: 4, adaptiveRank: true, targetModules: ['q_proj', 'k_proj', 'down_proj'] });
  const ranks = (a.config as LamdaConfig).rankPattern!;
  assert.is(Object.values(ranks).reduce((x, y) => x + y, 0), 4 * 15);
  assert.ok(new Set(Object.values(ranks)).size > 1, `ranks ${JSON.stringify(ranks)}`);
  // Every kept energy fraction is at least every dropped one (beyond each module's first direction).
  let keptMin = Infinity, droppedMax = 0;
  for (const m of a.modules) {
    const s = svd(tensorF32(model.base.tensors.get(`${m.name}.weight`)!), m.outFeatures, m.inFeatures).s;
    const total = s.reduce((x, v) => x + v * v, 0);
    s.forEach((v, i) => { if (i === 0) return; const f = (v * v) / total; if (i < ranks[m.name]!) keptMin = Math.min(keptMin, f); else droppedMax = Math.max(droppedMax, f); });
    assert.equal(a.params.get(`${m.name}.lamda_S.weight`)!.shape, [ranks[m.name], ranks[m.name]]);
  }
  assert.ok(keptMin >= droppedMax, `${keptMin} < ${droppedMax}`);
  randomizeParams(model, 't', 0.1, (k) => !k.endsWith('lamda_S.weight'));
  const gap = await mergeGap(model, 't');
  assert.ok(gap < 1e-4, `merge gap ${gap}`);
  const rt = roundTrip(model, 't');
  assert.equal(rt.config.rank_pattern, ranks);
  assert.is(rt.config.peft_type, 'LAMDA');
  const held = heroBlocks(model.base, 32, 8, 99);
  assert.is(await evalLoss(rt.model, held), await evalLoss(model, held));
  const hf = await hfLayoutGap(model, 't');
  assert.ok(hf < 1e-4, `rotate-half gap ${hf}`);
});

test.run();
