// LoRA and DoRA gradients on the real stories260K model against central finite differences, in float64.
// Tolerance 1e-6 relative to the largest probed gradient: eps 1e-5 on a loss of size ~1 leaves truncation
// error ~1e-10 and rounding ~1e-11, so only a wrong rule exceeds it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { rejection } from '../helpers.js';
import { gradientCheck, randomizeParams, stories } from '../methods/helpers.js';

const TOL = 1e-6;
const ckpt = await stories();

/** An adapter with every parameter random (B starts at zero, which would make A's gradient vanish). */
function adapter(config: Record<string, unknown>): AdaptedModel {
  const model = new AdaptedModel(ckpt);
  model.addAdapter('t', 'lora', config, { seed: 3 });
  randomizeParams(model, 't');
  return model;
}

test('LoRA on all seven projections: gradients match finite differences', async () => {
  const { worst, keys } = await gradientCheck(adapter({ r: 4, alpha: 8, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] }), 't', { stride: 3 });
  assert.ok(keys.includes('model.layers.4.mlp.down_proj.lora_B.weight'));
  assert.ok(worst < TOL, `relative error ${worst}`);
});

// DoRA detaches the weight norm (its §4.3), so only the magnitude's gradient is the full derivative that
// finite differences measure; A and B follow the detached rule by design.
test('DoRA with rsLoRA scaling (magnitude gradients), and LoRA on the embedding: match finite differences', async () => {
  const dora = await gradientCheck(adapter({ r: 2, alpha: 4, useRslora: true, useDora: true, targetModules: ['q_proj', 'down_proj'], layersToTransform: [0, 3] }), 't', { probe: (k) => k.endsWith('lora_magnitude_vector') });
  assert.ok(dora.keys.length === 4 && dora.keys.every((k) => !k.includes('layers.1.')));
  assert.ok(dora.worst < TOL, `relative error ${dora.worst}`);
  const emb = await gradientCheck(adapter({ r: 3, targetModules: ['embed_tokens', 'v_proj'] }), 't', { stride: 3 });
  assert.ok(emb.keys.some((k) => k.endsWith('lora_embedding_A')));
  assert.ok(emb.worst < TOL, `embedding: relative error ${emb.worst}`);
});

test('a freshly initialised LoRA (B = 0, so A\'s gradient is zero) is refused by the gradient check', async () => {
  const model = new AdaptedModel(ckpt);
  model.addAdapter('t', 'lora', { r: 2, targetModules: ['v_proj'], layersToTransform: [1] }, { seed: 3 });
  const e = await rejection(gradientCheck(model, 't'));
  assert.match(e.message, /the gradient of t\/model\.layers\.1\.self_attn\.v_proj\.lora_A\.weight is all zero/);
});

test.run();
