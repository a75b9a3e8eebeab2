// Augmentation (src/objectives/augment): the token-level operations' invariants; Beta(α, α) draws with the
// right moments; mixup over identical rows is plain fine-tuning (1e-5 relative, any λ); the contrastive term
// equals InfoNCE computed in float64 from the hidden states read back (1e-9), and with weight 0 training is
// plain fine-tuning; the same curves on js, wasm and webgpu (1e-4).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { batchAt, type PackedBlocks } from '../../src/data/dataset.js';
import * as F from '../../src/graph/api.js';
import { uploadWeights } from '../../src/model/runtime.js';
import { augmentExamples, augmentTokens } from '../../src/objectives/augment/tokens.js';
import { seededRandom as seeded } from '../../src/util/random.js';
import { augmentedFeed, betaSample, buildAugmentedGraph, trainAugmented } from '../../src/objectives/augment/train.js';
import { Session } from '../../src/scheduler/session.js';
import { fineTune } from '../../src/train/finetune.js';
import { curveDiff, js, otherBackends } from '../backends/backends.js';
import { heroBlocks, stories } from '../methods/helpers.js';

const ids = Array.from({ length: 21 }, (_, i) => 100 + i);
const parity = (xs: readonly number[]) => Uint8Array.from(xs, (x) => x % 2);

test('token augmentation: swap permutes, insert repeats the example\'s own tokens, delete keeps order; BOS stays; flags move with their tokens', () => {
  const r = seeded(4);
  const swapped = augmentTokens(ids, parity(ids), { swap: 0.2 }, r);
  assert.is(swapped.ids[0], 100);
  assert.equal([...swapped.ids].sort(), [...ids].sort());
  assert.not.equal(swapped.ids, ids);
  assert.equal(Array.from(swapped.target), Array.from(parity(swapped.ids)));
  const inserted = augmentTokens(ids, parity(ids), { insert: 0.2 }, r);
  assert.is(inserted.ids.length, ids.length + 4);
  assert.ok(inserted.ids.every((x) => ids.includes(x)));
  assert.equal(Array.from(inserted.target), Array.from(parity(inserted.ids)));
  const deleted = augmentTokens(ids, parity(ids), { delete: 0.5 }, r);
  assert.ok(deleted.ids.length < ids.length && deleted.ids[0] === 100);
  let at = 0;
  for (const x of deleted.ids) { at = ids.indexOf(x, at); assert.ok(at >= 0, 'a subsequence'); }
  assert.is(augmentTokens(ids, parity(ids), { delete: 1 }, r).ids.length, 2, 'one token besides BOS survives');
  assert.equal(augmentTokens(ids, parity(ids), {}, r).ids, ids);
  const ex = [{ ids, target: parity(ids) }];
  const a = augmentExamples(ex, { swap: 0.1, delete: 0.1, copies: 3, seed: 7 });
  assert.is(a.length, 4);
  assert.equal(a, augmentExamples(ex, { swap: 0.1, delete: 0.1, copies: 3, seed: 7 }), 'deterministic under a seed');
  assert.not.equal(a, augmentExamples(ex, { swap: 0.1, delete: 0.1, copies: 3, seed: 8 }));
  assert.throws(() => augmentExamples(ex, { delete: 1.5 }), /delete must be in \[0, 1\]/);
  assert.throws(() => augmentExamples(ex, { copies: -1 }), /copies/);
});

test('Beta(α, α) draws: mean 1/2 and variance 1/(4(2α + 1))', () => {
  for (const a of [0.2, 2]) {
    const r = seeded(11), xs = Array.from({ length: 20000 }, () => betaSample(a, r));
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length, v = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length;
    assert.ok(xs.every((x) => x >= 0 && x <= 1));
    assert.ok(Math.abs(mean - 0.5) < 0.01 && Math.abs(v - 1 / (4 * (2 * a + 1))) < 0.01, `α ${a}: mean ${mean}, variance ${v}`);
  }
});

async function setup() {
  const model = new AdaptedModel(await stories());
  model.addAdapter('t', 'lora', { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'] }, { seed: 1 });
  return model;
}
const common = { steps: 4, batch: 4, lr: 1e-2, decay: 'constant' as const, warmup: 0, seed: 1 };

/** Packed blocks whose rows are all the first row of the hero data. */
function identicalRows(model: AdaptedModel): PackedBlocks {
  const d = heroBlocks(model.base, 24, 8, 7), cap = 25;
  const ids = new Int32Array(4 * cap), targets = new Int32Array(4 * 24);
  for (let r = 0; r < 4; r++) { ids.set(d.ids.subarray(0, cap), r * cap); targets.set(d.targets.subarray(0, 24), r * 24); }
  return { ...d, ids, targets, rows: 4 };
}

test('mixup over identical rows is plain fine-tuning, whatever λ is drawn', async () => {
  const a = await setup(), data = identicalRows(a);
  const mixed = (await trainAugmented({ model: a, adapter: 't', backend: js(), data, mixup: { alpha: 0.4 }, ...common })).steps;
  assert.ok(mixed.some((s) => s.lambda > 0.05 && s.lambda < 0.95), `λ drawn: ${mixed.map((s) => s.lambda)}`);
  const b = await setup();
  const plain = await fineTune({ model: b, adapter: 't', backend: js(), data, ...common });
  const diff = curveDiff(plain.losses, mixed.map((s) => s.loss));
  assert.ok(diff < 1e-5, `${diff}`);
});

test('the contrastive term is InfoNCE over cosine similarities of mean-pooled hidden states (float64)', async () => {
  const model = await setup();
  const data = heroBlocks(model.base, 24, 8, 7);
  const o = { model, adapter: 't', backend: js(), data, contrastive: { weight: 0.7, temperature: 0.1, augment: { delete: 0.2, swap: 0.1 } }, ...common };
  const g = buildAugmentedGraph(o);
  const hidden = g.d.net.hidden;
  g.d.graph.markOutput(g.contrastive!, hidden);
  const s = await Session.create(g.d.graph, createJsBackend({ precision: 'f64' }));
  uploadWeights(s, g.d.net.weights, g.d.weights);
  model.uploadAdapterParams(s);
  const { feed } = augmentedFeed(o, g, batchAt(data, 0, 4), seeded(3));
  for (const [t, v] of feed) s.set(t, v);
  await s.run();
  const H = await s.get(hidden), pool = feed.find(([t]) => t === g.inputs.pool)![1] as Float32Array;
  const B = 4, R = 8, T = 24, D = model.base.config.dim;
  // Mean of each row's real positions, from the hidden states themselves.
  const pooled = Array.from({ length: R }, (_, i) => {
    const n = Array.from({ length: T }, (_, t) => pool[i * R * T + i * T + t]!).filter((w) => w > 0).length;
    return Array.from({ length: D }, (_, k) => { let x = 0; for (let t = 0; t < n; t++) x += H[(i * T + t) * D + k]!; return x / n; });
  });
  const unit = pooled.map((v) => { const n = Math.hypot(...v); return v.map((x) => x / n); });
  let loss = 0;
  for (let i = 0; i < B; i++) {
    const sims = Array.from({ length: B }, (_, j) => unit[i]!.reduce((a, x, k) => a + x * unit[B + j]![k]!, 0) / 0.1);
    const m = Math.max(...sims);
    loss += (m + Math.log(sims.reduce((a, x) => a + Math.exp(x - m), 0)) - sims[i]!) / B;
  }
  const term = (await s.get(g.contrastive!))[0]!;
  assert.ok(Math.abs(term - 0.7 * loss) < 1e-9, `graph ${term}, direct ${0.7 * loss}`);
  assert.ok(loss > 1e-3, 'the views differ, so the term is not trivially zero');
});

test('contrastive weight 0 is plain fine-tuning; with a weight the term is reported and falls', async () => {
  const a = await setup(), data = heroBlocks(a.base, 24, 8, 7);
  const zero = (await trainAugmented({ model: a, adapter: 't', backend: js(), data, contrastive: { weight: 0, augment: { delete: 0.1 } }, ...common })).steps;
  const b = await setup();
  const plain = await fineTune({ model: b, adapter: 't', backend: js(), data, ...common });
  assert.ok(curveDiff(plain.losses, zero.map((s) => s.loss)) < 1e-5);
  const c = await setup();
  const weighted = (await trainAugmented({ model: c, adapter: 't', backend: js(), data, contrastive: { weight: 1, augment: { delete: 0.1 } }, ...common, steps: 6 })).steps;
  assert.ok(weighted.every((s) => Math.abs(s.objective - s.loss - s.terms.contrastive!) < 1e-5), 'objective = loss + contrastive');
  assert.ok(weighted[5]!.terms.contrastive! < weighted[0]!.terms.contrastive!, `contrastive ${weighted.map((s) => s.terms.contrastive)}`);
});

test('the same mixup and contrastive curves on js, wasm and webgpu; bad options refused', async () => {
  const run = async (backend: ReturnType<typeof js>, kind: 'mixup' | 'contrastive') => {
    const m = await setup(), data = heroBlocks(m.base, 24, 8, 7);
    const extra = kind === 'mixup' ? { mixup: { alpha: 0.4 } } : { contrastive: { weight: 0.5, augment: { swap: 0.1, delete: 0.1 } } };
    return (await trainAugmented({ model: m, adapter: 't', backend, data, ...extra, ...common, steps: 3 })).steps.map((s) => s.objective);
  };
  const ref = { mixup: await run(js(), 'mixup'), contrastive: await run(js(), 'contrastive') };
  for (const { name, backend } of await otherBackends()) {
    for (const kind of ['mixup', 'contrastive'] as const) {
      const diff = curveDiff(ref[kind], await run(backend, kind));
      assert.ok(diff < 1e-4, `${name} ${kind}: ${diff}`);
    }
    backend.dispose();
  }
  const m = await setup(), data = heroBlocks(m.base, 24, 8, 7);
  const refused = async (extra: Record<string, unknown>, pattern: RegExp) => {
    try { await trainAugmented({ model: m, adapter: 't', backend: js(), data, ...common, ...extra }); } catch (e) { assert.match((e as Error).message, pattern); return; }
    assert.unreachable('accepted');
  };
  await refused({}, /give mixup or contrastive/);
  await refused({ mixup: { alpha: 0 } }, /alpha must be > 0/);
  await refused({ mixup: { alpha: 1 }, contrastive: { weight: 1, augment: {} } }, /one at a time/);
});

test.run();
