// PiSSA's initialisation (Meng et al. 2024) leaves the model unchanged: the base becomes the residual
// W_res = W − s·B·A, so W_res + s·B·A = W. With DoRA on top, the magnitude starts at the row norms of
// W_res + s·B·A (PEFT initialises DoRA after PiSSA has replaced the base), so the first forward pass is
// still the base model's. Per-module scaling (alpha_pattern) must be the one PiSSA divides the singular
// values by. Checked on logits against the plain base model (float32, 1e-4 relative).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { tensorF32 } from '../../src/formats/checkpoint.js';
import { maxRelErr } from '../helpers.js';
import { forwardLogits, stories } from '../methods/helpers.js';

const ckpt = await stories();
const V = ckpt.config.vocabSize;
const ids = Int32Array.from({ length: 2 * 8 }, (_, i) => (i * 37 + 11) % V);
const TOL = 1e-4;
const base = await forwardLogits(new AdaptedModel(ckpt), ids, 2, 8);

for (const [label, extra] of [
  ['DoRA', { useDora: true }],
  ['a per-module alpha', { alphaByModule: { v_proj: 2 } }],
  ['DoRA with a per-module alpha', { useDora: true, alphaByModule: { q_proj: 32 } }],
] as const) {
  test(`PiSSA with ${label}: the initialised model computes the base model's logits`, async () => {
    const model = new AdaptedModel(ckpt);
    model.addAdapter('t', 'lora', { r: 4, alpha: 8, init: 'pissa', targetModules: ['q_proj', 'v_proj'], ...extra }, { seed: 3 });
    const got = await forwardLogits(model, ids, 2, 8);
    assert.ok(maxRelErr(got, base) < TOL, `${label}: ${maxRelErr(got, base)}`);
    // s·B·A is W's top-r singular part, orthogonal to the residual: ‖W_res‖² + ‖W − W_res‖² = ‖W‖² (Frobenius).
    // A scaling other than the module's own would make W − W_res a multiple k ≠ 1 of that part, off by 2k(k−1)·‖part‖².
    const eff = model.effectiveCheckpoint();
    for (const name of ['model.layers.3.self_attn.q_proj.weight', 'model.layers.3.self_attn.v_proj.weight']) {
      const W = tensorF32(ckpt.tensors.get(name)!), R = tensorF32(eff.tensors.get(name)!);
      let w2 = 0, r2 = 0, d2 = 0;
      for (let i = 0; i < W.length; i++) { w2 += W[i]! ** 2; r2 += R[i]! ** 2; d2 += (W[i]! - R[i]!) ** 2; }
      assert.ok(d2 > 1e-3 * w2, `${name}: PiSSA took nothing from the base`);
      assert.ok(Math.abs(r2 + d2 - w2) < 1e-4 * w2, `${name}: ‖W_res‖² + ‖s·B·A‖² = ${r2 + d2}, ‖W‖² = ${w2}`);
    }
    // The adapter is not empty: scaling its B moves the logits.
    for (const [k, p] of model.get('t').params) if (k.endsWith('lora_B.weight')) p.data.set(p.data.map((x) => 1.5 * x));
    assert.ok(maxRelErr(await forwardLogits(model, ids, 2, 8), base) > 100 * TOL, 'the adapter does nothing');
  });
}

test.run();
