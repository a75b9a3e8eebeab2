// Compacter on stories260K: the PHM weight equals Σ Aᵢ ⊗ (sᵢtᵢ) computed directly; gradients (the shared
// slow matrices collect them from every layer) against finite differences (float64, tolerance 1e-6
// relative to the largest probed gradient); a short hero-task fine-tune; the saved folder.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { phmWeight } from '../../src/adapters/compacter/index.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { buildGraph, randn, runOnce } from '../helpers.js';
import { evalLoss, gradientCheck, heroBlocks, randomizeParams, roundTrip, stories, trainHero } from './helpers.js';

const TOL = 1e-6;

test('the PHM weight is the sum of Kronecker products of the slow rules and the fast factors', async () => {
  const n = 2, p = 3, q = 2, r = 2;
  const [A, S, T] = [randn(n * n * n, 1), randn(n * p * r, 2), randn(n * r * q, 3)];
  const { g, ts, out, data } = buildGraph([
    { name: 'A', shape: [n, n, n], data: A }, { name: 's', shape: [n, p, r], data: S }, { name: 't', shape: [n, r, q], data: T },
  ], ([a, s, t]) => phmWeight(a!, s!, t!));
  const [W] = await runOnce(g, createJsBackend({ precision: 'f64' }), ts, data, [out]);
  for (let a = 0; a < n; a++) for (let x = 0; x < p; x++) for (let b = 0; b < n; b++) for (let y = 0; y < q; y++) {
    let want = 0;
    for (let i = 0; i < n; i++) {
      let bxy = 0;
      for (let k = 0; k < r; k++) bxy += S[(i * p + x) * r + k]! * T[(i * r + k) * q + y]!;
      want += A[(i * n + a) * n + b]! * bxy;
    }
    assert.ok(Math.abs(W![(a * p + x) * (n * q) + b * q + y]! - want) < 1e-12);
  }
});

test('gradients of the shared slow rules and the per-layer fast factors match finite differences', async () => {
  const model = new AdaptedModel(await stories());
  model.addAdapter('t', 'compacter', { phmDim: 2, phmRank: 2, reductionFactor: 8 });
  randomizeParams(model, 't', 0.3);
  const { worst, keys } = await gradientCheck(model, 't', { stride: 3 });
  assert.ok(keys.includes('compacter.phm_rule_down') && keys.includes('compacter.phm_rule_up'));
  assert.ok(worst < TOL, `relative error ${worst}`);
});

test('a fresh Compacter is the identity, trains with far fewer parameters than a bottleneck adapter, and round-trips', async () => {
  const model = new AdaptedModel(await stories());
  const held = heroBlocks(model.base, 32, 8, 99);
  const base = await evalLoss(model, held);
  model.addAdapter('t', 'compacter', { reductionFactor: 8 }, { seed: 4 });
  assert.is(await evalLoss(model, held), base);
  // n = 4, m = 8: shared rules 2·4³; per block, down s [4,2,1] t [4,1,16] bias 8, up s [4,16,1] t [4,1,2] bias 64.
  assert.is(model.parameterCount('t'), 2 * 64 + 10 * (8 + 64 + 8 + 64 + 8 + 64));
  model.addAdapter('dense', 'bottleneck', { reductionFactor: 8 });
  assert.ok(model.parameterCount('t') < model.parameterCount('dense') / 3);
  model.disable('dense');
  const r = await trainHero(model, 't', { steps: 12, lr: 2e-2 });
  assert.ok(r.after < r.before - 0.05, `held-out loss ${r.before} → ${r.after}`);
  const rt = roundTrip(model, 't');
  assert.is(rt.config.peft_type, 'COMPACTER');
  assert.ok(rt.tensors.includes('base_model.model.compacter.phm_rule_up'));
  assert.is(await evalLoss(rt.model, held), await evalLoss(model, held));
});

test.run();
