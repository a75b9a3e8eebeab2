// EVA (Paischer et al. 2024) on the real stories260K model: A's rows are the principal components of each
// module's inputs on a data sample. Checked against a one-shot SVD of the centred activation matrix of the
// rows EVA read (|cos| ≥ 0.999), the incremental PCA against the exact PCA on data of low rank, the rank
// budget, the model at init (B = 0: the base model's logits), and the saved PEFT folder.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { initSampleFromBlocks } from '../../src/adapters/init-sample.js';
import { parseLoraConfig } from '../../src/adapters/lora/config.js';
import { IncrementalPca, distributeRanks, evaInit } from '../../src/adapters/lora/eva/eva.js';
import { loadPeft, savePeft } from '../../src/adapters/peft.js';
import { modelModules, selectTargets } from '../../src/adapters/targets.js';
import { svd } from '../../src/linalg/svd.js';
import { hostLinearInputs } from '../../src/model/host-forward.js';
import { forwardLogits, heroBlocks, stories } from '../methods/helpers.js';
import { peftConfigErrors } from './peft-rules.js';

const ckpt = await stories();
const blocks = heroBlocks(ckpt, 24, 40);
const V = ckpt.config.vocabSize;
const ids = Int32Array.from({ length: 2 * 8 }, (_, i) => (i * 37 + 11) % V);
const options = { r: 2, alpha: 8, init: 'eva', targetModules: ['q_proj', 'v_proj', 'down_proj'], layersToTransform: [0, 3] };

/** |cos| between row q of a and row q of b ([k, d] each). */
function absCos(a: ArrayLike<number>, b: ArrayLike<number>, qa: number, qb: number, d: number): number {
  let ab = 0, aa = 0, bb = 0;
  for (let j = 0; j < d; j++) { const x = a[qa * d + j]!, y = b[qb * d + j]!; ab += x * y; aa += x * x; bb += y * y; }
  return Math.abs(ab) / Math.sqrt(aa * bb);
}

test('incremental PCA over batches equals the PCA of all rows at once on data of rank ≤ k', () => {
  // Rows = mean + 3 random directions with decreasing weights: rank 3 after centring, so keeping k = 4
  // components loses nothing and the merged result is exact.
  const d = 10, n = 60, k = 4;
  let seed = 5;
  const rand = () => { seed = (seed * 16807) % 2147483647; return seed / 2147483647 - 0.5; };
  const dirs = Array.from({ length: 3 }, () => Array.from({ length: d }, rand)), mean = Array.from({ length: d }, rand);
  const x = new Float64Array(n * d);
  for (let t = 0; t < n; t++) {
    const c = [4 * rand(), 2 * rand(), rand()];
    for (let j = 0; j < d; j++) x[t * d + j] = mean[j]! + c[0]! * dirs[0]![j]! + c[1]! * dirs[1]![j]! + c[2]! * dirs[2]![j]!;
  }
  const p = new IncrementalPca(d, k);
  for (let b = 0; b < n; b += 12) p.partialFit(x.slice(b * d, (b + 12) * d), 12);
  const mu = new Float64Array(d);
  for (let t = 0; t < n; t++) for (let j = 0; j < d; j++) mu[j]! += x[t * d + j]! / n;
  const centred = x.map((v, i) => v - mu[i % d]!);
  const ref = svd(centred, n, d);
  for (let q = 0; q < 3; q++) {
    assert.ok(absCos(p.components, ref.vt, q, q, d) > 1 - 1e-9, `component ${q}: |cos| ${absCos(p.components, ref.vt, q, q, d)}`);
    assert.ok(Math.abs(p.singularValues[q]! - ref.s[q]!) < 1e-9 * ref.s[0]!, `singular value ${q}`);
  }
  let total = 0;
  for (const v of centred) total += v * v;
  const ratio = p.explainedVarianceRatio();
  assert.ok(Math.abs(ratio[0]! - ref.s[0]! ** 2 / total) < 1e-12, 'explained variance ratio');
});

test('rank distribution: the largest ratios win the budget; a module left with none takes one back', () => {
  const r = distributeRanks([['a', Float64Array.of(0.5, 0.3, 0.1)], ['b', Float64Array.of(0.4, 0.05, 0.01)]], 4);
  assert.equal([...r], [['a', 3], ['b', 1]]);
  const starved = distributeRanks([['a', Float64Array.of(0.9, 0.8)], ['b', Float64Array.of(0.01, 0.01)]], 2);
  assert.equal([...starved], [['a', 1], ['b', 1]]);
});

test('EVA on one batch: components are the top right-singular vectors of the centred activation matrix; ranks sum to r × modules', () => {
  const c = parseLoraConfig({ ...options, r: 4, targetModules: ['q_proj', 'o_proj', 'down_proj'], evaUseLabelMask: false });
  const modules = selectTargets(c, modelModules(ckpt.config));
  const sample = initSampleFromBlocks(blocks, { batchRows: 3, rows: 3 });
  const model = new AdaptedModel(ckpt);
  const e = evaInit(c, modules, sample, (row, visit) => hostLinearInputs(model.effectiveCheckpoint(), row, visit));
  assert.is(e.batches, 1);
  let total = 0;
  for (const m of modules) {
    const rank = e.ranks.get(m.name)!;
    assert.ok(rank >= 1 && rank <= Math.round(c.r * c.eva.rho), `${m.name}: rank ${rank}`);
    total += rank;
  }
  assert.is(total, c.r * modules.length);
  assert.ok([...e.ranks.values()].some((v) => v !== c.r), 'the ranks moved between modules');
  // The reference: every token position of the three rows, through the same host forward, centred, one SVD.
  for (const m of modules) {
    const rowsOf: number[][] = [];
    for (let row = 0; row < 3; row++) {
      const len = sample.present[row]!.lastIndexOf(1) + 1;
      hostLinearInputs(ckpt, Array.from(sample.rows[row]!.subarray(0, len)), (names, x, n, d) => {
        if (names.includes(m.name)) for (let t = 0; t < n; t++) rowsOf.push(Array.from(x.subarray(t * d, (t + 1) * d)));
      });
    }
    const d = m.inFeatures, n = rowsOf.length, mu = new Float64Array(d);
    for (const r of rowsOf) for (let j = 0; j < d; j++) mu[j]! += r[j]! / n;
    const ref = svd(Float64Array.from(rowsOf.flatMap((r) => r.map((v, j) => v - mu[j]!))), n, d);
    const a = e.a.get(m.name)!;
    for (let q = 0; q < e.ranks.get(m.name)!; q++) assert.ok(absCos(a, ref.vt, q, q, d) >= 0.999, `${m.name} component ${q}: |cos| ${absCos(a, ref.vt, q, q, d)}`);
  }
});

test('EVA over several batches stops once consecutive components agree, and matches the PCA of the rows read', () => {
  const c = parseLoraConfig({ ...options, evaTau: 0.9, evaUseLabelMask: false });
  const modules = selectTargets(c, modelModules(ckpt.config));
  const sample = initSampleFromBlocks(blocks, { batchRows: 2 });
  const e = evaInit(c, modules, sample, (row, visit) => hostLinearInputs(ckpt, row, visit));
  assert.ok(e.batches >= 2, `${e.batches} batches`);
  assert.ok(e.converged && e.batches * 2 < sample.rows.length, `stopped after ${e.batches} batches of ${sample.rows.length / 2}, converged ${e.converged}`);
  // With tau = 0.9 the top component of the incremental estimate must be the exact top direction of the rows read.
  const m = modules[0]!, rowsOf: number[][] = [];
  for (let row = 0; row < e.batches * 2; row++) {
    const len = sample.present[row]!.lastIndexOf(1) + 1;
    hostLinearInputs(ckpt, Array.from(sample.rows[row]!.subarray(0, len)), (names, x, n, d) => {
      if (names.includes(m.name)) for (let t = 0; t < n; t++) rowsOf.push(Array.from(x.subarray(t * d, (t + 1) * d)));
    });
  }
  const d = m.inFeatures, n = rowsOf.length, mu = new Float64Array(d);
  for (const r of rowsOf) for (let j = 0; j < d; j++) mu[j]! += r[j]! / n;
  const ref = svd(Float64Array.from(rowsOf.flatMap((r) => r.map((v, j) => v - mu[j]!))), n, d);
  assert.ok(absCos(e.a.get(m.name)!, ref.vt, 0, 0, d) >= 0.999, `|cos| ${absCos(e.a.get(m.name)!, ref.vt, 0, 0, d)}`);
});

test('an EVA adapter: the model at init is the base; saved with rank_pattern / alpha_pattern, it reloads', async () => {
  const base = await forwardLogits(new AdaptedModel(ckpt), ids, 2, 8);
  const model = new AdaptedModel(ckpt);
  const a = model.addAdapter('t', 'lora', { ...options, evaWhiten: true }, { sample: initSampleFromBlocks(blocks, { batchRows: 4, rows: 8 }) });
  const got = await forwardLogits(model, ids, 2, 8);
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - base[i]!));
  assert.ok(worst <= 1e-6, `max |Δlogit| ${worst}`);
  const files = savePeft(model, 't', { baseModel: 'stories260K' });
  const cfg = JSON.parse(files.config);
  assert.is(cfg.init_lora_weights, 'eva');
  assert.equal(peftConfigErrors(cfg), [], 'PEFT loads the config as written');
  assert.equal(cfg.eva_config, { rho: 2, tau: 0.99, use_label_mask: true, label_mask_value: -100, whiten: true, adjust_scaling_factors: true });
  let total = 0;
  for (const m of a.modules) {
    const rank = cfg.rank_pattern[m.name];
    total += rank;
    assert.is(a.params.get(`${m.name}.lora_A.weight`)!.shape[0], rank);
    // adjust_scaling_factors: alpha_m / r_m = alpha / r.
    assert.ok(Math.abs(cfg.alpha_pattern[m.name] / rank - 8 / 2) < 1e-12, `${m.name}: alpha ${cfg.alpha_pattern[m.name]} for rank ${rank}`);
  }
  assert.is(total, 2 * a.modules.length);
  // Reloaded as a plain LoRA with the same ranks and factors; training the factors moves both the same way.
  for (const [k, p] of a.params) if (k.endsWith('lora_B.weight')) p.data.set(p.data.map((_, i) => Math.sin(i + 1) * 0.05));
  const files2 = savePeft(model, 't');
  const again = new AdaptedModel(ckpt);
  const b = loadPeft(again, 't', files2);
  for (const [k, p] of a.params) assert.equal(Array.from(b.params.get(k)!.data), Array.from(p.data), k);
  const want = await forwardLogits(model, ids, 2, 8), have = await forwardLogits(again, ids, 2, 8);
  let gap = 0, moved = 0;
  for (let i = 0; i < want.length; i++) { gap = Math.max(gap, Math.abs(want[i]! - have[i]!)); moved = Math.max(moved, Math.abs(want[i]! - base[i]!)); }
  assert.ok(gap <= 1e-5 && moved > 1e-3, `reloaded gap ${gap}, adapter effect ${moved}`);
});

test('EVA and CorDA options: bad values refused by name; no sample refused before any work', () => {
  const model = new AdaptedModel(ckpt);
  for (const [opt, value] of [['evaRho', 0.5], ['evaTau', 0], ['evaTau', 1.5], ['cordaMode', 'both'], ['init', 'evas']] as const) {
    assert.throws(() => model.addAdapter('x', 'lora', { ...options, [opt]: value }), (e: Error) => e.message.includes(opt), `${opt} ${value}`);
  }
  for (const init of ['eva', 'corda']) assert.throws(() => model.addAdapter('x', 'lora', { ...options, init }), /needs a data sample/);
  assert.throws(() => model.addAdapter('x', 'lora', { ...options, r: 20, evaRho: 4 }, { sample: initSampleFromBlocks(blocks, { batchRows: 2 }) }), /round\(r·rho\) = 80 components/);
  assert.is(model.adapters.size, 0);
});

test.run();
