// Mixed-adapter batches: one forward over rows that each use their own adapter (or the base) gives, row
// for row, the logits of that adapter alone (LoRA of two ranks and targets, (IA)³, a bottleneck adapter on
// the MLP block, and '__base__'), within 1e-5 of the largest logit, on js, wasm and webgpu; mixed greedy
// generation gives each row the tokens of KV-cached generation with its adapter alone; bad setups are
// refused by name.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { generateMixed } from '../../src/adapters/mixed/generate.js';
import type { Backend } from '../../src/backends/backend.js';
import { js, otherBackends } from '../backends/backends.js';
import { rejection } from '../helpers.js';
import { randomizeParams, stories } from '../methods/helpers.js';

const ckpt = await stories();
const NAMES = ['a', 'b', 'c', 'd'];

function fourAdapters(): AdaptedModel {
  const m = new AdaptedModel(ckpt);
  m.addAdapter('a', 'lora', { r: 2, targetModules: ['q_proj', 'v_proj'] }, { seed: 1 });
  m.addAdapter('b', 'lora', { r: 4, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] }, { seed: 2 });
  m.addAdapter('c', 'ia3', {}, { seed: 3 });
  m.addAdapter('d', 'bottleneck', {}, { seed: 4 });
  for (const n of NAMES) randomizeParams(m, n, 0.2);
  return m;
}

const rows = ['b', '__base__', 'a', 'd', 'c', 'a'];
const T = 10, B = rows.length, V = ckpt.config.vocabSize;
const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 97 + 11) % V);

/** Row r's logits with only `name` enabled (or none), one row at a time. */
async function single(m: AdaptedModel, backend: Backend, name: string, r: number): Promise<Float32Array> {
  for (const n of NAMES) if (n === name) m.enable(n); else m.disable(n);
  const rt = m.runtime(backend);
  const out = await rt.logits(ids.subarray(r * T, (r + 1) * T), 1, T);
  rt.dispose();
  return out;
}

test('a mixed batch equals each row run with its adapter alone, on every backend', async () => {
  const backends = [{ name: 'js', backend: js() }, ...(await otherBackends())];
  for (const { name, backend } of backends) {
    const m = fourAdapters();
    m.setRowAdapters(NAMES);
    const rt = m.runtime(backend);
    const mixed = await rt.logits(ids, B, T, m.rowIds(rows));
    rt.dispose();
    m.setRowAdapters(undefined);
    let worst = 0, scale = 0, apart = 0;
    for (let r = 0; r < B; r++) {
      const want = await single(m, backend, rows[r]!, r), got = mixed.subarray(r * T * V, (r + 1) * T * V);
      for (let i = 0; i < want.length; i++) { worst = Math.max(worst, Math.abs(got[i]! - want[i]!)); scale = Math.max(scale, Math.abs(want[i]!)); }
      // The check could fail: the row's adapter changes its logits away from the base's.
      if (rows[r] !== '__base__') {
        const base = await single(m, backend, '__base__', r);
        apart = Math.max(apart, ...Array.from(want, (v, i) => Math.abs(v - base[i]!)));
      }
    }
    assert.ok(worst <= 1e-5 * scale, `${name}: largest difference ${worst} (logits up to ${scale})`);
    assert.ok(apart > 1e-2, `${name}: the adapters move the logits (${apart})`);
  }
});

test('mixed greedy generation gives each row the tokens of its adapter alone (KV-cached)', async () => {
  const m = fourAdapters();
  const prompts = [[1, 403, 407], [1, 403], [1, 261, 300, 302, 305], [1, 403, 407]];
  const who = ['a', '__base__', 'b', 'd'];
  m.setRowAdapters(NAMES);
  const rt = m.runtime(js());
  const got = await generateMixed(rt, prompts, m.rowIds(who), { maxTokens: 6, stopTokens: [] });
  rt.dispose();
  m.setRowAdapters(undefined);
  for (let r = 0; r < prompts.length; r++) {
    for (const n of NAMES) if (n === who[r]) m.enable(n); else m.disable(n);
    const one = m.runtime(js());
    assert.equal(got[r], await one.generate(prompts[r]!, { maxTokens: 6, stopTokens: [] }), `row ${r} (${who[r]})`);
    one.dispose();
  }
  assert.not.equal(got[0], got[3], 'different adapters on the same prompt say different things');
});

test('bad setups are refused by name', async () => {
  const m = fourAdapters();
  assert.throws(() => m.setRowAdapters(['a', 'zz']), /no adapter named 'zz'/);
  assert.throws(() => m.setRowAdapters([]), /no adapters named/);
  assert.throws(() => m.setRowAdapters(['a', 'a']), /named twice/);
  m.addAdapter('p', 'prompt-tuning', { numVirtualTokens: 2 });
  assert.throws(() => m.setRowAdapters(['a', 'p']), /'p' \(prompt-tuning\) adds positions/);
  m.setRowAdapters(['a', 'b']);
  assert.throws(() => m.rowIds(['a', 'c']), /row 1: adapter 'c' is not one of the batch's adapters \(__base__, a, b\)/);
  m.merge('a');
  assert.throws(() => m.setRowAdapters(['a']), /'a' is merged/);
  assert.throws(() => new AdaptedModel(ckpt).rowIds(['a']), /no mixed batch/);
  m.setRowAdapters(['b']);
  const rt = m.runtime(js());
  assert.match((await rejection(rt.logits(ids.subarray(0, T), 1, T, [2]))).message, /task id 2 is outside/);
});

test.run();
