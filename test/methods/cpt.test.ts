// Context-aware prompt tuning on stories260K: the projection against a planted vector, the gradient of the
// context embeddings against finite differences (float64, tolerance 1e-6 relative), every token within its
// bound after training with labels fixed, the held-out loss falling, KV-cache generation equal to uncached
// decoding, and the PEFT CPT folder (bare `prompt_embeddings`, CPTConfig's keys) reloading exactly.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { parseCptConfig } from '../../src/adapters/cpt/config.js';
import { FIXED_EPSILON, projectRows, tokenEpsilons } from '../../src/adapters/cpt/projection.js';
import { tensorF32 } from '../../src/formats/checkpoint.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { evalLoss, gradientCheck, greedyBothWays, heroBlocks, roundTrip, stories, trainHero } from './helpers.js';

test('the projection scales a too-large change onto the ball and leaves a small one alone', () => {
  const c = parseCptConfig({ cptTokenIds: [1, 2, 3], cptTokensTypeMask: [1, 2, 4], projectionEpsilon: 0.2, projectionFormatEpsilon: 0.05 });
  const dim = 8, eps = tokenEpsilons(c, dim), s = Math.sqrt(dim / 2048);
  assert.equal([...eps], [0.05 * s, 0.2 * s, FIXED_EPSILON]);
  const anchor = Float32Array.from({ length: 3 * dim }, (_, i) => Math.sin(i));
  // Row 0: change of norm 4·ε along a planted direction; row 1: within its ball; row 2 (a label): any change is undone.
  const dir = Float32Array.from({ length: dim }, (_, j) => (j % 2 ? 1 : -1) / Math.sqrt(dim));
  const v = Float32Array.from(anchor);
  for (let j = 0; j < dim; j++) { v[j] += 4 * eps[0]! * dir[j]!; v[dim + j] += 0.5 * eps[1]! * dir[j]!; v[2 * dim + j] += 0.3; }
  const before = Float32Array.from(v);
  projectRows(v, anchor, eps, dim);
  for (let j = 0; j < dim; j++) {
    assert.ok(Math.abs(v[j]! - (anchor[j]! + eps[0]! * dir[j]!)) < 1e-6, 'on the sphere, along the planted direction');
    assert.is(v[dim + j], before[dim + j]);
    assert.ok(Math.abs(v[2 * dim + j]! - anchor[2 * dim + j]!) < 1e-6);
  }
});

test('bad configs are refused by name', () => {
  assert.throws(() => parseCptConfig({}), /context is missing/);
  assert.throws(() => parseCptConfig({ cptTokenIds: [1, 2], cptTokensTypeMask: [1] }), /cptTokensTypeMask has 1 entries for 2/);
  assert.throws(() => parseCptConfig({ cptTokenIds: '1,x' }), /cptTokenIds must be a non-empty list/);
  assert.throws(() => parseCptConfig({ cptTokenIds: [1], projectionEpsilon: -1 }), /projectionEpsilon/);
  assert.equal(parseCptConfig({ cptTokenIds: '4, 5,6' }).cptTokenIds, [4, 5, 6]);
});

test('the context embeddings\' gradient matches finite differences', async () => {
  const model = new AdaptedModel(await stories());
  model.addAdapter('t', 'cpt', { cptTokenIds: [403, 407, 261] }, { seed: 2 });
  const { worst, keys } = await gradientCheck(model, 't');
  assert.equal(keys, ['prompt_embeddings']);
  assert.ok(worst < 1e-6, `relative error ${worst}`);
});

test('a text context starts at its tokens\' embeddings; training keeps every token in its ball and lowers the held-out loss', async () => {
  const model = new AdaptedModel(await stories());
  const a = model.addAdapter('t', 'cpt', { contextText: 'a little dragon found a red ball', projectionEpsilon: 20 });
  const ids = createTokenizer(model.base.tokenizer!).encode('a little dragon found a red ball', { bos: false });
  assert.equal((a.config as { cptTokenIds?: number[] }).cptTokenIds, ids);
  const table = tensorF32(model.base.tensors.get('model.embed_tokens.weight')!), start = Float32Array.from(a.params.get('prompt_embeddings')!.data);
  ids.forEach((id, i) => assert.equal(Array.from(start.subarray(i * 64, i * 64 + 64)), Array.from(table.subarray(id * 64, id * 64 + 64))));
  const r = await trainHero(model, 't', { steps: 12, lr: 3e-2 });
  assert.ok(r.after < r.before - 0.03, `held-out loss ${r.before} → ${r.after}`);
  // The same run with a small bound: each token moves at most ε·√(64/2048), labels not at all.
  const small = new AdaptedModel(model.base);
  const b = small.addAdapter('t', 'cpt', { cptTokenIds: ids, cptTokensTypeMask: ids.map((_, i) => (i === 2 ? 4 : 2)), projectionEpsilon: 0.5 });
  await trainHero(small, 't', { steps: 6, lr: 3e-2 });
  const end = b.params.get('prompt_embeddings')!.data, bound = 0.5 * Math.sqrt(64 / 2048);
  let moved = 0;
  for (let i = 0; i < ids.length; i++) {
    let n2 = 0;
    for (let j = 0; j < 64; j++) n2 += (end[i * 64 + j]! - start[i * 64 + j]!) ** 2;
    const n = Math.sqrt(n2);
    if (i === 2) assert.ok(n < 1e-6, `label token moved ${n}`);
    else { assert.ok(n <= bound * (1 + 1e-5), `token ${i} moved ${n} > ${bound}`); moved = Math.max(moved, n); }
  }
  assert.ok(moved > bound * 0.5, `the tokens train (largest move ${moved})`);
});

test('KV-cache generation equals uncached decoding; the PEFT CPT folder reloads exactly', async () => {
  const model = new AdaptedModel(await stories());
  model.addAdapter('t', 'cpt', { cptTokenIds: [403, 407, 261, 300], cptTokensTypeMask: [1, 2, 3, 4], projectionEpsilon: 5 });
  await trainHero(model, 't', { steps: 3, lr: 3e-2 });
  const { cached, full } = await greedyBothWays(model, [403, 407, 261], 6);
  assert.equal(cached, full);
  const rt = roundTrip(model, 't');
  assert.equal(rt.tensors, ['prompt_embeddings']);
  assert.is(rt.config.peft_type, 'CPT');
  assert.is(rt.config.task_type, 'CAUSAL_LM');
  assert.is(rt.config.num_virtual_tokens, 4);
  assert.equal(rt.config.cpt_token_ids, [403, 407, 261, 300]);
  assert.equal(rt.config.cpt_tokens_type_mask, [1, 2, 3, 4]);
  assert.equal(rt.config.cpt_mask, [1, 1, 1, 1]);
  assert.is(rt.config.opt_projection_epsilon, 5);
  for (const k of ['opt_projection_format_epsilon', 'opt_weighted_loss_type', 'opt_loss_decay_factor', 'token_dim', 'num_layers', 'num_attention_heads']) assert.ok(k in rt.config, k);
  const held = heroBlocks(model.base, 32, 8, 99);
  assert.is(await evalLoss(rt.model, held), await evalLoss(model, held));
});

test.run();
