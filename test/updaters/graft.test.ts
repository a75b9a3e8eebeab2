// Grafting through trainBaseWeights on stories260K (js). The run's first step moves every mask logit by
// −η·∂L/∂s / rms(∂L/∂s), with ∂L/∂s = ∂L/∂θ ⊙ (θ_ft − θ₀) ⊙ σ(s)(1 − σ(s)) taken from an autodiff gradient of
// the soft graft built apart from the trainer, itself checked against central finite differences of the loss
// along two directions. All-open masks rebuild the fine-tuned model and all-closed ones the base; the kept graft
// beats the base on held-out stories; its delta folder reloads and merges into the same model. Bad input is
// refused by name before training.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createJsBackend } from '../../src/backends/js/index.js';
import { batchAt, type PackedBlocks } from '../../src/data/dataset.js';
import type { LlamaCheckpoint } from '../../src/formats/checkpoint.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { fullUpdater } from '../../src/updaters/full/index.js';
import { graftUpdater, loadFineTuned } from '../../src/updaters/graft/index.js';
import { roundedGraft, sigmoid, softGraft } from '../../src/updaters/graft/mask.js';
import { applyDeltaToCheckpoint, loadDeltaFolder, saveDeltaFolder } from '../../src/updaters/sparse/folder.js';
import { trainBaseWeights } from '../../src/updaters/train.js';
import type { UpdaterContext } from '../../src/updaters/types.js';
import { baseGradients, storyData, valuesOf } from './helpers.js';

const backend = createJsBackend();
let cached: { ckpt: LlamaCheckpoint; tuned: LlamaCheckpoint; train: PackedBlocks; held: PackedBlocks } | undefined;

/** stories260K and a fine-tuned copy (6 full AdamW steps on the hero stories). */
async function models() {
  if (cached) return cached;
  const { ckpt, train, held } = await storyData();
  const ft = await trainBaseWeights(fullUpdater(), { checkpoint: ckpt, backend, data: train, steps: 6, batch: 4, lr: 1e-3, decay: 'constant', seed: 1 });
  cached = { ckpt, tuned: ft.checkpoint, train, held };
  return cached;
}

async function heldOut(model: LlamaCheckpoint, held: PackedBlocks): Promise<number> {
  const rt = new LlamaRuntime(model, backend);
  const b = batchAt(held, 0, held.rows), T = held.seq;
  const rows = Array.from({ length: held.rows }, (_, i) => Array.from(b.ids.subarray(i * T, (i + 1) * T)));
  const tgs = Array.from({ length: held.rows }, (_, i) => Array.from(b.targets.subarray(i * T, (i + 1) * T)));
  const loss = (await rt.evalTargets(rows, tgs, { batch: 4, seq: T })).loss;
  rt.dispose();
  return loss;
}

test('the first step moves the logits by −η·∂L/∂s / rms, ∂L/∂s checked by finite differences', async () => {
  const { ckpt, tuned, train } = await models();
  const u = graftUpdater({ from: tuned, sparsity: 0.05, init: 2 });
  const start = await u.start!(ckpt);
  const s0 = new Map([...u.logits].map(([n, s]) => [n, Float32Array.from(s)]));
  const names = [...s0.keys()];
  const base = valuesOf(ckpt), ft = valuesOf(tuned), at = valuesOf(start);
  // The start is the soft graft.
  for (const n of names) assert.equal([...at.get(n)!], [...softGraft(base.get(n)!, ft.get(n)!, s0.get(n)!)], n);
  const b = batchAt(train, 0, 4);
  const { loss, grads } = await baseGradients(ckpt, at, names, b.ids, b.targets, 4, train.seq);
  const gS = new Map(names.map((n) => {
    const th = grads.get(n)!, s = s0.get(n)!, bb = base.get(n)!, t = ft.get(n)!;
    return [n, Float64Array.from(s, (x, i) => { const p = sigmoid(x); return th[i]! * (t[i]! - bb[i]!) * p * (1 - p); })] as [string, Float64Array];
  }));
  // Central differences of L(s) along ∂L/∂s itself and along a ±1 pattern.
  const lossAt = async (dir: Map<string, Float64Array>, eps: number) => {
    const v = new Map(at);
    for (const n of names) {
      const s = s0.get(n)!, d = dir.get(n)!;
      v.set(n, softGraft(base.get(n)!, ft.get(n)!, Float32Array.from(s, (x, i) => x + eps * d[i]!)));
    }
    return (await baseGradients(ckpt, v, [], b.ids, b.targets, 4, train.seq)).loss;
  };
  let norm = 0;
  for (const g of gS.values()) for (const x of g) norm += x * x;
  const signs = new Map(names.map((n, k) => [n, Float64Array.from(gS.get(n)!, (_, i) => ((i * 7 + k) % 3 === 0 ? 1 : -1))] as [string, Float64Array]));
  let along = 0;
  for (const n of names) { const g = gS.get(n)!, d = signs.get(n)!; for (let i = 0; i < g.length; i++) along += g[i]! * d[i]!; }
  for (const [dir, want, eps] of [[gS, norm, 0.5 / Math.sqrt(norm)], [signs, along, 0.05]] as const) {
    const fd = ((await lossAt(dir, eps)) - (await lossAt(dir, -eps))) / (2 * eps);
    assert.ok(Math.abs(fd - want) < 0.03 * Math.abs(want), `directional derivative: finite differences ${fd}, analytic ${want}`);
  }
  const eta = 0.1;
  const r = await trainBaseWeights(u, { checkpoint: ckpt, backend, data: train, steps: 1, batch: 4, lr: eta, decay: 'constant', seed: 1 });
  assert.ok(Math.abs(r.losses[0]! - loss) < 1e-5 * loss, `the first step runs at the soft graft: ${r.losses[0]} vs ${loss}`);
  const rms = Math.sqrt(norm / names.reduce((a, n) => a + s0.get(n)!.length, 0));
  let worst = 0, biggest = 0;
  for (const n of names) {
    const s1 = u.logits.get(n)!, s = s0.get(n)!, g = gS.get(n)!;
    for (let i = 0; i < s.length; i++) {
      const want = -eta * g[i]! / rms;
      biggest = Math.max(biggest, Math.abs(want));
      worst = Math.max(worst, Math.abs(s1[i]! - s[i]! - want));
    }
  }
  assert.ok(biggest > 0.1, `the step moves some logit visibly (${biggest})`);
  assert.ok(worst < 1e-3 * biggest, `logit steps differ from −η·∂L/∂s / rms by ${worst} (largest step ${biggest})`);
  // The parameter the next step sees is the soft graft of the new logits.
  const after = valuesOf(r.checkpoint);
  for (const n of names) {
    const want = softGraft(base.get(n)!, ft.get(n)!, u.logits.get(n)!), got = after.get(n)!;
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= 1e-6 * Math.max(1, Math.abs(want[i]!)), `${n}[${i}]`);
  }
});

test('all-open masks rebuild the fine-tuned model, all-closed ones the base', async () => {
  const { ckpt, tuned, train, held } = await models();
  const base = valuesOf(ckpt), ft = valuesOf(tuned);
  for (const [n, b] of base) {
    const t = ft.get(n)!;
    assert.equal([...roundedGraft(b, t, new Float32Array(b.length).fill(30))], [...t], `${n}: open`);
    assert.equal([...roundedGraft(b, t, new Float32Array(b.length).fill(-30))], [...b], `${n}: closed`);
    // σ(±30) rounds to 1 and 0 within one f32 rounding of θ₀ + σ·(θ_ft − θ₀).
    const open = softGraft(b, t, new Float32Array(b.length).fill(30)), closed = softGraft(b, t, new Float32Array(b.length).fill(-30));
    for (let i = 0; i < b.length; i++) {
      assert.ok(Math.abs(open[i]! - t[i]!) <= 2 ** -23 * Math.abs(t[i]!), `${n}[${i}] open`);
      assert.ok(Math.abs(closed[i]! - b[i]!) <= 2 ** -23 * Math.abs(b[i]!), `${n}[${i}] closed`);
    }
  }
  // Through the run: sparsity 1 starts at the fine-tuned model; its rounded mask scores the fine-tuned model's held-out loss.
  const u = graftUpdater({ from: tuned, sparsity: 1, init: 30 });
  const r = await trainBaseWeights(u, { checkpoint: ckpt, backend, data: train, evalData: held, steps: 1, batch: 4, lr: 0.1, decay: 'constant', seed: 1 });
  const b = batchAt(train, 0, 4);
  const ftLoss = (await baseGradients(ckpt, ft, [], b.ids, b.targets, 4, train.seq)).loss;
  assert.ok(Math.abs(r.losses[0]! - ftLoss) < 1e-5 * ftLoss, `first step at the fine-tuned model: ${r.losses[0]} vs ${ftLoss}`);
  const want = await heldOut(tuned, held);
  assert.ok(Math.abs(u.checks[0]!.loss! - want) < 1e-6 * want, `rounded all-open: ${u.checks[0]!.loss} vs fine-tuned ${want}`);
});

test('the kept graft beats the base on held-out stories; its delta folder reloads and merges', async () => {
  const { ckpt, tuned, train, held } = await models();
  const u = graftUpdater({ from: tuned, sparsity: 0.01, checkEvery: 2 });
  const lines: string[] = [];
  let ctx: UpdaterContext | undefined;
  const inner = u.afterStep!;
  u.afterStep = async (c) => { ctx = c; return inner(c); };
  const r = await trainBaseWeights(u, { checkpoint: ckpt, backend, data: train, evalData: held, steps: 6, batch: 4, lr: 0.1, decay: 'constant', seed: 1, log: (l) => lines.push(l) });
  const baseLoss = await heldOut(ckpt, held), tunedLoss = await heldOut(tuned, held);
  const best = u.best()!;
  assert.equal(u.checks.map((c) => c.step), [0, 2, 4, 6]);
  assert.is(best.loss, Math.min(...u.checks.map((c) => c.loss!)));
  assert.ok(best.loss! < baseLoss - 0.05, `kept graft ${best.loss} vs base ${baseLoss} (fine-tuned ${tunedLoss})`);
  assert.ok(best.loss! < u.checks[0]!.loss!, `training the mask improves on the top-1% graft: ${best.loss} vs ${u.checks[0]!.loss}`);
  assert.is(r.summary.graftBestLoss, best.loss);
  assert.ok(lines.some((l) => /^graft: step 6: rounded mask \d+ weights/.test(l)), lines.join('\n'));
  const delta = await u.sparseDelta!(ctx!);
  assert.is([...delta.values()].reduce((a, d) => a + d.indices.length, 0), best.entries);
  const dir = mkdtempSync(join(tmpdir(), 'adaptkit-graft-'));
  await saveDeltaFolder(dir, delta, { method: 'graft' });
  const back = (await loadDeltaFolder(dir)).delta;
  assert.equal([...back.keys()].sort(), [...delta.keys()].sort());
  for (const [n, d] of delta) {
    assert.equal([...back.get(n)!.indices], [...d.indices], n);
    assert.equal([...back.get(n)!.values], [...d.values], n);
  }
  const merged = applyDeltaToCheckpoint(ckpt, back);
  const got = await heldOut(merged, held);
  assert.ok(Math.abs(got - best.loss!) < 1e-5 * best.loss!, `merged delta scores ${got}, the kept graft ${best.loss}`);
  // Merged: the fine-tuned value on the kept entries (within one rounding of θ₀ + (θ_ft − θ₀)), the base elsewhere.
  const base = valuesOf(ckpt), ft = valuesOf(tuned), m = valuesOf(merged);
  for (const [n, b] of base) {
    const keep = new Set(delta.get(n)?.indices ?? []), x = m.get(n)!, t = ft.get(n)!;
    for (let i = 0; i < b.length; i++) {
      if (keep.has(i)) assert.ok(Math.abs(x[i]! - t[i]!) <= 2 ** -23 * Math.max(Math.abs(t[i]!), Math.abs(b[i]!)), `${n}[${i}]`);
      else assert.ok(Object.is(x[i], b[i]), `${n}[${i}] off the mask`);
    }
  }
});

test('bad input is refused by name before training', async () => {
  const { ckpt, tuned } = await models();
  assert.throws(() => graftUpdater({ from: tuned, sparsity: 0 }), /sparsity must be in \(0, 1\]/);
  assert.throws(() => graftUpdater({ from: tuned, sparsity: 1.5 }), /sparsity must be in \(0, 1\]/);
  assert.throws(() => graftUpdater({ from: tuned, init: -1 }), /initial logit/);
  const missing = join(tmpdir(), 'adaptkit-graft-no-such-model');
  let e = await graftUpdater({ from: missing }).start!(ckpt).catch((x: Error) => x);
  assert.match(String(e), /the fine-tuned model .*adaptkit-graft-no-such-model does not exist/);
  const tensors = new Map(tuned.tensors);
  const [name, t] = [...tuned.tensors].find(([, x]) => x.shape.length === 2)!;
  tensors.set(name, { shape: [t.shape[1]!, t.shape[0]!], data: new Float32Array(t.shape[0]! * t.shape[1]!) });
  e = await loadFineTuned({ ...tuned, tensors }, ckpt).catch((x: Error) => x);
  if (t.shape[0] !== t.shape[1]) assert.match(String(e), new RegExp(`${name.replace(/\./g, '\\.')} is \\[${t.shape[1]}, ${t.shape[0]}\\] in the fine-tuned model`));
  e = await loadFineTuned({ ...tuned, config: { ...tuned.config, dim: tuned.config.dim * 2 } }, ckpt).catch((x: Error) => x);
  assert.match(String(e), /has dim \d+, the base .* \d+; it was not fine-tuned from this base/);
  e = await graftUpdater({ from: ckpt }).start!(ckpt).catch((x: Error) => x);
  assert.match(String(e), /equals the base .*nothing to graft/);
});

test.run();
