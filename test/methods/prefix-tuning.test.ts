// Prefix tuning / P-tuning v2 on stories260K: gradients of the prefix table and of the reparameterisation
// MLP against finite differences (float64, tolerance 1e-6 relative to the largest probed gradient), a short
// hero-task fine-tune, KV-cache generation equal to uncached decoding, and the PEFT folder.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { tanh } from '../../src/adapters/prefix-tuning/index.js';
import { gradCheck } from '../helpers.js';
import { evalLoss, gradientCheck, greedyBothWays, heroBlocks, hfLayoutGap, roundTrip, stories, trainHero } from './helpers.js';

const TOL = 1e-6;

test('the composed tanh has the right values and gradient, and stays finite where e^{2x} overflows', async () => {
  const err = await gradCheck([{ name: 'x', shape: [12], scale: 2 }], ([x]) => tanh(x!));
  assert.ok(err < 1e-7, `tanh gradient error ${err}`);
  const { buildGraph, runOnce } = await import('../helpers.js');
  const { createJsBackend } = await import('../../src/backends/js/index.js');
  const { gradients } = await import('../../src/graph/autodiff.js');
  const F = await import('../../src/graph/api.js');
  const xs = [-300, -3, -0.5, 0, 0.5, 3, 300];
  const { g, ts, out, data } = buildGraph([{ name: 'x', shape: [7], data: xs }], ([x]) => tanh(x!));
  const dx = gradients(F.sum(out), ts).get(ts[0]!);
  const [y, d] = await runOnce(g, createJsBackend(), ts, data, [out, dx]);
  xs.forEach((x, i) => {
    assert.ok(Math.abs(y![i]! - Math.tanh(x)) < 1e-6, `tanh(${x})`);
    assert.ok(Math.abs(d![i]! - (1 - Math.tanh(x) ** 2)) < 1e-6, `tanh'(${x}) = ${d![i]}`);
  });
});

test('gradients of the prefix table, and of the reparameterisation MLP, match finite differences', async () => {
  for (const config of [{ numVirtualTokens: 3 }, { numVirtualTokens: 2, projection: true, encoderHiddenSize: 16 }]) {
    const model = new AdaptedModel(await stories());
    model.addAdapter('t', 'prefix-tuning', config, { seed: 6 });
    const { worst, keys } = await gradientCheck(model, 't');
    assert.ok(keys.length === (config.projection ? 5 : 1));
    assert.ok(worst < TOL, `${JSON.stringify(config)}: relative error ${worst}`);
  }
});

test('training (plain and reparameterised) lowers the held-out hero-task loss', async () => {
  for (const config of [{ numVirtualTokens: 8 }, { numVirtualTokens: 8, projection: true }]) {
    const model = new AdaptedModel(await stories());
    model.addAdapter('t', 'prefix-tuning', config, { seed: 1 });
    const r = await trainHero(model, 't', { steps: 12, lr: 1e-2 });
    assert.ok(r.after < r.before - 0.05, `${JSON.stringify(config)}: held-out loss ${r.before} → ${r.after}`);
  }
});

test('KV-cache generation attends to the prefix and matches uncached decoding; save → load (reparameterised: its output) is exact', async () => {
  const model = new AdaptedModel(await stories());
  // A random prefix (PEFT's init), so that it changes what the model says; the default starts as the base.
  model.addAdapter('t', 'prefix-tuning', { numVirtualTokens: 4, prefixInit: 'random' }, { seed: 3 });
  const { cached, full } = await greedyBothWays(model, [1, 403, 407], 10);
  assert.equal(cached, full);
  model.disable('t');
  const plain = await greedyBothWays(model, [1, 403, 407], 10);
  assert.not.equal(plain.cached, cached, 'the prefix changes what the model says');
  model.addAdapter('p', 'prefix-tuning', { numVirtualTokens: 4, projection: true }, { seed: 3 });
  const rt = roundTrip(model, 'p');
  assert.equal(rt.tensors, ['prompt_embeddings']);
  assert.is(rt.config.peft_type, 'PREFIX_TUNING');
  assert.is(rt.config.token_dim, 32);
  assert.is(rt.config.num_attention_heads, 4);
  const held = heroBlocks(model.base, 32, 8, 99);
  const [live, back] = [await evalLoss(model, held), await evalLoss(rt.model, held)];
  assert.ok(Math.abs(live - back) < 1e-5, `${live} live, ${back} reloaded (the MLP evaluated in float64 once)`);
  // Prefix keys are saved in Hugging Face's rotate-half order: the folder works on a rotate-half base.
  const hf = await hfLayoutGap(model, 'p');
  assert.ok(hf < 1e-4, `rotate-half gap ${hf}`);
});

test.run();
