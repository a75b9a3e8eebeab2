// Bottleneck adapters on stories260K block outputs: gradients against finite differences (float64,
// tolerance 1e-6 relative to the largest probed gradient) for the sequential/parallel connections, the
// identity start, a short hero-task fine-tune, composition of two adapters, and the saved folder.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { evalLoss, forwardLogits, gradientCheck, heroBlocks, randomizeParams, roundTrip, stories, trainHero } from './helpers.js';

const TOL = 1e-6;

test('gradients match finite differences: Houlsby sequential with residual, Pfeiffer parallel without', async () => {
  for (const config of [{ placement: 'houlsby', connection: 'sequential' }, { placement: 'pfeiffer', connection: 'parallel', activation: 'silu' }]) {
    const model = new AdaptedModel(await stories());
    const a = model.addAdapter('t', 'bottleneck', config);
    assert.is(a.modules.length, config.placement === 'houlsby' ? 10 : 5);
    randomizeParams(model, 't', 0.2);
    const { worst, keys } = await gradientCheck(model, 't', { stride: 2 });
    assert.ok(keys.includes('model.layers.1.mlp.adapter_up.bias'));
    assert.ok(worst < TOL, `${JSON.stringify(config)}: relative error ${worst}`);
  }
});

test('a fresh adapter leaves the model unchanged; training lowers the held-out hero-task loss', async () => {
  const model = new AdaptedModel(await stories());
  const held = heroBlocks(model.base, 32, 8, 99);
  const base = await evalLoss(model, held);
  for (const [name, config] of [['seq', {}], ['par', { connection: 'parallel', placement: 'pfeiffer' }]] as const) {
    model.addAdapter(name, 'bottleneck', config, { seed: 5 });
    assert.is(await evalLoss(model, held), base, name);
    model.disable(name);
  }
  model.addAdapter('t', 'bottleneck', { reductionFactor: 8 }, { seed: 5 });
  // Houlsby: 10 blocks × (8·64 + 8 + 64·8 + 64).
  assert.is(model.parameterCount('t'), 10 * (8 * 64 + 8 + 64 * 8 + 64));
  assert.throws(() => model.merge('t'), /cannot be merged/);
  const r = await trainHero(model, 't', { steps: 12, lr: 1e-2 });
  assert.ok(r.after < r.before - 0.05, `held-out loss ${r.before} → ${r.after}`);
});

test('two active adapters on the same blocks chain; save → load gives the identical eval loss', async () => {
  const model = new AdaptedModel(await stories());
  model.addAdapter('a', 'bottleneck', { placement: 'pfeiffer' }, { seed: 1 });
  randomizeParams(model, 'a', 0.2);
  const ids = Int32Array.from({ length: 16 }, (_, i) => (i * 29 + 7) % 512);
  const onlyA = await forwardLogits(model, ids, 2, 8);
  model.addAdapter('b', 'bottleneck', { placement: 'houlsby', connection: 'parallel', residual: true }, { seed: 2 });
  randomizeParams(model, 'b', 0.2);
  const both = await forwardLogits(model, ids, 2, 8);
  model.disable('a');
  const onlyB = await forwardLogits(model, ids, 2, 8);
  model.enable('a');
  const differs = (x: Float32Array, y: Float32Array) => x.some((v, i) => Math.abs(v - y[i]!) > 1e-3);
  assert.ok(differs(both, onlyA) && differs(both, onlyB));
  const rt = roundTrip(model, 'b');
  assert.is(rt.config.peft_type, 'BOTTLENECK');
  assert.is(rt.config.residual, true);
  assert.ok(rt.tensors.includes('base_model.model.model.layers.3.self_attn.adapter_down.weight'));
  model.disable('a');
  const held = heroBlocks(model.base, 32, 8, 99);
  assert.is(await evalLoss(rt.model, held), await evalLoss(model, held));
});

test.run();
