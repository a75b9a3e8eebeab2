// Poly / MHR on stories260K: one skill and one split is LoRA with scaling 1/r (same initial A, logits within
// 1e-6); gradients of A, B and the router against finite differences (float64, 1e-6 relative to the largest
// probed gradient), at eval and through the relaxed Bernoulli routing of training; save → load → save gives
// the same bytes, with PEFT's key names, shapes and config fields; MHR-μ and per-task LoRA exports equal
// Poly at eval (1e-5); two tasks train from their "task" field; MHR-z moves only the new task's routing; bad
// task ids are refused before any work; js, wasm and webgpu give the same logits (2e-4 relative).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type Adapter, AdaptedModel } from '../../src/adapters/adapted-model.js';
import { loadPeft, savePeft } from '../../src/adapters/peft.js';
import { parsePolyConfig } from '../../src/adapters/poly/config.js';
import { polyLinear } from '../../src/adapters/poly/layer.js';
import { attachPolyAsLora, reusePoly } from '../../src/adapters/poly/reuse.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { heroStories } from '../../src/data/builtin-task.js';
import { jsonlExamples, pack } from '../../src/data/dataset.js';
import * as F from '../../src/graph/api.js';
import { Graph, type Tensor } from '../../src/graph/graph.js';
import { uniformAt } from '../../src/graph/ops/elementwise.js';
import { TASK_ID_INPUT } from '../../src/model/names.js';
import { Session } from '../../src/scheduler/session.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { fineTune } from '../../src/train/finetune.js';
import { otherBackends } from '../backends/backends.js';
import { maxRelErr, randn, rejection } from '../helpers.js';
import { evalLoss, forwardLogits, gradientCheck, greedyBothWays, heroBlocks, hfLayoutGap, randomizeParams, stories } from './helpers.js';

const ckpt = await stories();
const ALL = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const ids = Int32Array.from({ length: 2 * 10 }, (_, i) => (i * 37 + 5) % ckpt.config.vocabSize);
const maxAbs = (a: Float32Array, b: Float32Array): number => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

test('one skill and one split is LoRA with scaling 1/r: the same initial A from the same seed, logits within 1e-6', async () => {
  const p = new AdaptedModel(ckpt), l = new AdaptedModel(ckpt);
  const pa = p.addAdapter('t', 'poly', { r: 4, polySkills: 1, polySplits: 1, targetModules: ALL }, { seed: 3 });
  const la = l.addAdapter('t', 'lora', { r: 4, alpha: 1, targetModules: ALL }, { seed: 3 });
  assert.is(pa.modules.length, la.modules.length);
  let k = 0;
  for (const m of la.modules) {
    const A = la.params.get(`${m.name}.lora_A.weight`)!.data, PA = pa.params.get(`${m.name}.poly_lora_A`)!;
    assert.equal(PA.shape, [1, 1, m.inFeatures, 4]);
    // poly_lora_A[0, 0] [in, r] is LoRA's A [r, in] transposed, value for value.
    for (let i = 0; i < m.inFeatures; i++) for (let j = 0; j < 4; j++) assert.is(PA.data[i * 4 + j], A[j * m.inFeatures + i], `${m.name} A[${j}, ${i}]`);
    assert.ok(pa.params.get(`${m.name}.poly_lora_B`)!.data.every((v) => v === 0), 'B starts at zero');
    // A trained B (random), given to both.
    const B = randn(m.outFeatures * 4, 50 + k++, 0.2);
    la.params.get(`${m.name}.lora_B.weight`)!.data.set(B);
    const PB = pa.params.get(`${m.name}.poly_lora_B`)!.data;
    for (let d = 0; d < m.outFeatures; d++) for (let j = 0; j < 4; j++) PB[j * m.outFeatures + d] = B[d * 4 + j]!;
  }
  const [lp, ll] = [await forwardLogits(p, ids, 2, 10), await forwardLogits(l, ids, 2, 10)];
  const base = await forwardLogits(new AdaptedModel(ckpt), ids, 2, 10);
  assert.ok(maxAbs(ll, base) > 1e-2, 'the LoRA changes the logits');
  const gap = maxAbs(lp, ll);
  assert.ok(gap <= 1e-6, `max |poly − lora| = ${gap}`);
});

test('gradients of A, B and the router match finite differences, at eval and through the relaxed Bernoulli routing', async () => {
  const model = new AdaptedModel(ckpt);
  model.addAdapter('t', 'poly', { r: 3, polyTasks: 3, polySkills: 3, polySplits: 2, initWeights: false, targetModules: ['q_proj', 'k_proj', 'down_proj'] }, { seed: 2 });
  // Router logits of a trained adapter: far enough from zero that the tasks route differently.
  randomizeParams(model, 't', 0.8, (k) => !k.endsWith('module_logits'));
  for (const training of [false, true]) {
    const { worst, keys } = await gradientCheck(model, 't', { tasks: [2, 0], stride: 2, training });
    assert.ok(keys.includes('model.layers.1.self_attn.k_proj.poly_router.module_logits'));
    assert.ok(keys.includes('model.layers.0.mlp.down_proj.poly_lora_B'));
    assert.ok(worst < 1e-6, `${training ? 'training' : 'eval'}: relative error ${worst}`);
  }
});

test('one module against a float64 brute-force reading of PEFT\'s forward: σ routing at eval, relaxed Bernoulli from the step seed in training', async () => {
  const [Bn, T, inF, outF, S, K, r, nTasks] = [3, 2, 8, 6, 2, 3, 2, 4];
  const din = inF / S, dout = outF / S;
  const rnd = (n: number, seed: number, scale: number) => Array.from(randn(n, seed, scale));
  const x = rnd(Bn * T * inF, 1, 1), W = rnd(outF * inF, 2, 0.3), A = rnd(S * K * din * r, 3, 0.5), Bp = rnd(S * K * r * dout, 4, 0.5), Z = rnd(nTasks * S * K, 5, 1.5);
  const tasks = [3, 0, 3], seed = 987654;
  const config = parsePolyConfig({ r, polyTasks: nTasks, polySkills: K, polySplits: S });
  const module = { name: 'm', kind: 'linear' as const, inFeatures: inF, outFeatures: outF };
  for (const training of [false, true]) {
    const g = new Graph();
    const xs = g.input('x', [Bn, T, inF]), w = g.param('w', [outF, inF]), seedIn = g.input('seed', [1], 'i32');
    const params = new Map<string, Tensor>();
    const shapes: Record<string, number[]> = { 'm.poly_lora_A': [S, K, din, r], 'm.poly_lora_B': [S, K, r, dout], 'm.poly_router.module_logits': [nTasks, S * K] };
    let site = 5;
    const y = polyLinear({ graph: g, name: 'm', x: xs, weight: w, inFeatures: inF, outFeatures: outF, base: (v = xs) => F.matmul(v, w, { transB: true }) }, module, config, {
      graph: g, training, seed: seedIn, nextSite: () => site++,
      param: (k) => params.get(k) ?? params.set(k, g.param(k, shapes[k]!)).get(k)!,
    });
    g.markOutput(y);
    const sess = await Session.create(g, createJsBackend({ precision: 'f64' }));
    for (const [k, v] of [['x', x], ['w', W], ['m.poly_lora_A', A], ['m.poly_lora_B', Bp], ['m.poly_router.module_logits', Z]] as const) sess.set(k, Float64Array.from(v));
    sess.set('seed', Int32Array.of(seed));
    sess.set(TASK_ID_INPUT, Int32Array.from(tasks));
    await sess.run();
    const got = await sess.get(y);
    sess.dispose();
    // PEFT: RelaxedBernoulli(1, Z[t]).rsample() = σ(Z[t] + log u − log(1 − u)) in training, σ(Z[t]) at eval;
    // weights z / (Σ_skills z + 1e-12) per split; A_t, B_t mixed per split; y = xWᵀ + x·A_t·B_t / r.
    const want: number[] = [];
    for (let b = 0; b < Bn; b++) {
      const wts: number[] = [];
      for (let q = 0; q < S; q++) {
        const zs = Array.from({ length: K }, (_, s) => {
          const l = Z[tasks[b]! * S * K + q * K + s]!, u = uniformAt(seed + 5, b * S * K + q * K + s);
          return 1 / (1 + Math.exp(-(training ? l + Math.log(u) - Math.log(1 - u) : l)));
        });
        const sum = zs.reduce((a, v) => a + v, 0);
        wts.push(...zs.map((v) => v / (sum + 1e-12)));
      }
      for (let t = 0; t < T; t++) {
        const xv = x.slice((b * T + t) * inF, (b * T + t + 1) * inF);
        const h = Array.from({ length: r }, (_, j) => xv.reduce((acc, xi, i) => {
          const q = Math.floor(i / din);
          return acc + xi * Array.from({ length: K }, (_, s) => wts[q * K + s]! * A[((q * K + s) * din + (i % din)) * r + j]!).reduce((a2, v) => a2 + v, 0);
        }, 0));
        for (let o = 0; o < outF; o++) {
          const q = Math.floor(o / dout);
          let v = xv.reduce((acc, xi, i) => acc + xi * W[o * inF + i]!, 0);
          for (let j = 0; j < r; j++) v += (h[j]! / r) * Array.from({ length: K }, (_, s) => wts[q * K + s]! * Bp[((q * K + s) * r + j) * dout + (o % dout)]!).reduce((a2, u2) => a2 + u2, 0);
          want.push(v);
        }
      }
    }
    const err = maxRelErr(got, want);
    assert.ok(err < 1e-12, `${training ? 'training' : 'eval'}: relative error ${err}`);
  }
});

test('save → load → save gives the same bytes; PEFT key names, shapes and config fields; Hugging Face rotary order', async () => {
  const model = new AdaptedModel(ckpt);
  model.addAdapter('t', 'poly', { r: 2, polyTasks: 3, polySkills: 4, polySplits: 2, targetModules: ['q_proj', 'k_proj', 'up_proj'], layersToTransform: [1, 3] }, { seed: 5 });
  randomizeParams(model, 't', 0.3);
  const files = savePeft(model, 't');
  const fresh = new AdaptedModel(ckpt);
  loadPeft(fresh, 't', files, 'rt');
  const again = savePeft(fresh, 't');
  assert.is(again.config, files.config);
  assert.ok(again.weights.length === files.weights.length && again.weights.every((b, i) => b === files.weights[i]), 'weights bytes differ');
  const config = JSON.parse(files.config) as Record<string, unknown>;
  // PolyConfig's fields (PEFT tuners/poly/config.py) and PeftConfig's; nothing else, so PEFT takes it as is.
  const peftFields = ['peft_type', 'task_type', 'base_model_name_or_path', 'revision', 'inference_mode', 'auto_mapping', 'peft_version', 'r', 'target_modules', 'exclude_modules', 'modules_to_save', 'init_weights', 'poly_type', 'n_tasks', 'n_skills', 'n_splits'];
  for (const k of Object.keys(config)) assert.ok(peftFields.includes(k), `config key ${k} is not a PolyConfig field`);
  assert.equal({ type: config.peft_type, r: config.r, tasks: config.n_tasks, skills: config.n_skills, splits: config.n_splits, polyType: config.poly_type, init: config.init_weights }, { type: 'POLY', r: 2, tasks: 3, skills: 4, splits: 2, polyType: 'poly', init: true });
  // PolyConfig has no layers_to_transform: the selected modules are named.
  assert.equal(config.target_modules, [1, 3].flatMap((l) => [`model.layers.${l}.self_attn.q_proj`, `model.layers.${l}.self_attn.k_proj`, `model.layers.${l}.mlp.up_proj`]));
  const header = new DataView(files.weights.buffer, files.weights.byteOffset).getUint32(0, true);
  const tensors = JSON.parse(new TextDecoder().decode(files.weights.subarray(8, 8 + header))) as Record<string, { shape: number[]; dtype: string }>;
  const q = 'base_model.model.model.layers.1.self_attn.q_proj', k = 'base_model.model.model.layers.3.self_attn.k_proj', up = 'base_model.model.model.layers.1.mlp.up_proj';
  assert.equal(tensors[`${q}.poly_lora_A`]!.shape, [2, 4, 32, 2]);
  assert.equal(tensors[`${q}.poly_lora_B`]!.shape, [2, 4, 2, 32]);
  assert.equal(tensors[`${q}.poly_router.module_logits`]!.shape, [3, 8]);
  assert.equal(tensors[`${k}.poly_lora_B`]!.shape, [2, 4, 2, 16]);
  assert.equal(tensors[`${up}.poly_lora_A`]!.shape, [2, 4, 32, 2]);
  assert.is(tensors[`${up}.poly_lora_A`]!.dtype, 'F32');
  assert.is(Object.keys(tensors).filter((n) => n !== '__metadata__').length, 6 * 3);
  // q_proj/k_proj B columns saved in rotate-half order: a Hugging Face-layout base gives the same logits.
  const gap = await hfLayoutGap(model, 't');
  assert.ok(gap < 1e-4, `rotate-half gap ${gap}`);
  // The training state keeps MHR-z's mode (PEFT's file does not).
  assert.is(model.get('t').method.toPeftConfig({ ...(model.get('t').config as object), polyMode: 'z' } as never, ckpt.config).poly_mode, 'z');
});

test('config errors are raised before any work: splits that do not divide, or cut q_proj across heads; bad types', () => {
  const model = new AdaptedModel(ckpt);
  assert.throws(() => model.addAdapter('a', 'poly', { polySplits: 3 }), /3 splits do not divide model\.layers\.0\.self_attn\.q_proj's 64 inputs/);
  assert.throws(() => model.addAdapter('b', 'poly', { polySplits: 16, targetModules: ['q_proj'] }), /not whole heads of 8/);
  assert.throws(() => model.addAdapter('c', 'poly', { polySkills: 0 }), /polySkills' must be an integer ≥ 1/);
  assert.throws(() => model.addAdapter('d', 'poly', { polyMode: 'mu' }), /polyMode' must be one of poly, z/);
  const files = savePeft((() => { const m = new AdaptedModel(ckpt); m.addAdapter('t', 'poly', {}); return m; })(), 't');
  assert.throws(() => loadPeft(new AdaptedModel(ckpt), 't', { ...files, config: files.config.replace('"poly_type": "poly"', '"poly_type": "mlp"') }), /poly_type "mlp" is not supported/);
});

/** An adapter's routing logits set to `f(task, index)` in every module. */
function setLogits(a: Adapter, f: (i: number) => number): void {
  for (const [k, p] of a.params) if (k.endsWith('module_logits')) p.data.set(Float32Array.from({ length: p.data.length }, (_, i) => f(i)));
}

test('MHR-μ: the LoRA of averaged skills equals Poly with equal routing; a task\'s LoRA equals Poly routed by that task', async () => {
  const model = new AdaptedModel(ckpt);
  const a = model.addAdapter('t', 'poly', { r: 3, polyTasks: 2, polySkills: 3, polySplits: 2, initWeights: false, targetModules: ALL }, { seed: 9 });
  // Equal logits: σ(Z)/(Kσ(Z) + ε) = 1/K for every skill, the plain average.
  setLogits(a, () => 0.7);
  const mu = new AdaptedModel(ckpt);
  const lora = attachPolyAsLora(mu, a, 'mu');
  assert.is(lora.method.name, 'lora');
  // Independently: A of q_proj averages the skills' first split into LoRA's columns 0…31, second into 32…63.
  const q = a.modules[0]!, PA = a.params.get(`${q.name}.poly_lora_A`)!.data, LA = lora.params.get(`${q.name}.lora_A.weight`)!.data;
  for (const [split, i, j] of [[0, 5, 1], [1, 20, 2]] as const) {
    const mean = [0, 1, 2].reduce((s, skill) => s + PA[((split * 3 + skill) * 32 + i) * 3 + j]!, 0) / 3;
    assert.ok(Math.abs(LA[j * 64 + split * 32 + i]! - mean) < 1e-7, `A mean at split ${split}`);
  }
  const gapMu = maxAbs(await forwardLogits(mu, ids, 2, 10), await forwardLogits(model, ids, 2, 10, [1, 0]));
  assert.ok(gapMu < 1e-5, `MHR-μ gap ${gapMu}`);
  // Different routing per task: the per-task LoRA matches only its own task.
  const Z = randn(2 * 6 * 14, 77, 1.5);
  let n = 0;
  for (const [k, p] of a.params) if (k.endsWith('module_logits')) p.data.set(Z.subarray(12 * n, 12 * ++n));
  const task1 = new AdaptedModel(ckpt);
  attachPolyAsLora(task1, a, 'task1', { task: 1 });
  const routed = await forwardLogits(model, ids, 2, 10, [1, 1]);
  const gap1 = maxAbs(await forwardLogits(task1, ids, 2, 10), routed);
  assert.ok(gap1 < 1e-5, `task-1 LoRA gap ${gap1}`);
  assert.ok(maxAbs(await forwardLogits(model, ids, 2, 10, [0, 0]), routed) > 1e-3, 'tasks route differently');
  // The export is a plain PEFT LoRA folder with alpha 1.
  const cfg = JSON.parse(savePeft(task1, 'task1').config) as Record<string, unknown>;
  assert.equal([cfg.peft_type, cfg.r, cfg.lora_alpha], ['LORA', 3, 1]);
  assert.throws(() => attachPolyAsLora(new AdaptedModel(ckpt), a, 'x', { task: 2 }), /task 2 is outside the adapter's 2 tasks/);
});

test('two tasks from a "task" field: the held-out loss of each falls; MHR-z then trains only the new task\'s routing', async () => {
  const tok = createTokenizer(ckpt.tokenizer!);
  const lines = (stories: string[], task: number) => stories.map((s) => JSON.stringify({ text: s, task }));
  const renamed = (n: number, seed: number) => heroStories(n, seed).map((s) => s.replaceAll('Pip', 'Zog').replaceAll('dragon', 'robot'));
  const blocks = (text: string[]) => pack(jsonlExamples(text.join('\n'), 'tasks.jsonl', tok, 32), 32);
  const train = blocks([...lines(heroStories(16, 7), 0), ...lines(renamed(16, 8), 1)]);
  const held = [blocks(lines(heroStories(6, 99), 0)), blocks(lines(renamed(6, 98), 1))];
  assert.equal([...new Set(train.tasks)].sort(), [0, 1]);
  const model = new AdaptedModel(ckpt);
  model.addAdapter('t', 'poly', { r: 4, polyTasks: 2, polySkills: 2, polySplits: 2 }, { seed: 1 });
  const backend = createJsBackend();
  const before = [await evalLoss(model, held[0]!, backend), await evalLoss(model, held[1]!, backend)];
  await fineTune({ model, adapter: 't', backend, data: train, steps: 10, batch: 4, lr: 1e-2, decay: 'constant', seed: 1 });
  const after = [await evalLoss(model, held[0]!, backend), await evalLoss(model, held[1]!, backend)];
  for (const t of [0, 1]) assert.ok(after[t]! < before[t]! - 0.05, `task ${t}: held-out loss ${before[t]} → ${after[t]}`);

  // MHR-z: a third task, only the routing trains.
  const z = reusePoly(model, 't', { polyMode: 'z', polyTasks: 3, seed: 4 });
  const frozen = new Map([...z.params].map(([k, p]) => [k, Float32Array.from(p.data)]));
  const third = blocks(lines(heroStories(12, 5).map((s) => s.replaceAll('Pip', 'Kai')), 2));
  // 5 layers × (q_proj, v_proj), each with logits [3 tasks, 2 splits × 2 skills].
  assert.is(model.parameterCount('t'), 10 * 3 * 4);
  const r = await fineTune({ model, adapter: 't', backend, data: third, steps: 6, batch: 4, lr: 5e-2, decay: 'constant', seed: 2 });
  assert.ok(r.losses[5]! < r.losses[0]!, `MHR-z loss ${r.losses[0]} → ${r.losses[5]}`);
  for (const [k, p] of z.params) {
    // Rows of 2 splits × 2 skills: tasks 0 and 1 are the first 8 logits.
    const was = frozen.get(k)!;
    if (!k.endsWith('module_logits')) { assert.ok(p.data.every((v, i) => v === was[i]), `${k} moved`); continue; }
    assert.ok(p.data.subarray(0, 8).every((v, i) => v === was[i]), `${k}: tasks 0 and 1 moved`);
    assert.ok(p.data.subarray(8).some((v, i) => v !== was[8 + i]), `${k}: task 2 did not move`);
  }
});

test('task ids are checked before any work: rows without one, ids out of range; generation needs one with several tasks', async () => {
  const model = new AdaptedModel(ckpt);
  model.addAdapter('t', 'poly', { r: 2, polyTasks: 2 });
  const backend = createJsBackend();
  const plain = heroBlocks(ckpt, 24, 4);
  assert.match((await rejection(fineTune({ model, adapter: 't', backend, data: plain, steps: 1, batch: 2 }))).message, /routes each row by a task id \(2 tasks\), but (\d+) of data's \1 rows have none/);
  const tok = createTokenizer(ckpt.tokenizer!);
  const bad = pack(jsonlExamples(JSON.stringify({ text: 'Tom ran to the park.', task: 2 }), 'x.jsonl', tok, 24), 24);
  assert.match((await rejection(fineTune({ model, adapter: 't', backend, data: bad, steps: 1, batch: 2 }))).message, /task id 2, outside the adapter's 2 tasks/);
  const rt = model.runtime(backend);
  assert.match((await rejection(rt.generate([1], { maxTokens: 2 }))).message, /routes each row by a task id \(2 tasks\): give the task/);
  assert.match((await rejection(rt.generate([1], { maxTokens: 2, task: 2 }))).message, /task id 2 is outside the adapter's 2 tasks/);
  assert.is((await rt.generate([1], { maxTokens: 3, task: 1 })).length, 3);
  rt.dispose();
  const lora = new AdaptedModel(ckpt);
  lora.addAdapter('l', 'lora', {});
  assert.match((await rejection(lora.runtime(backend).generate([1], { maxTokens: 2, task: 0 }))).message, /no active adapter routes by task/);
});

test('KV-cached decoding equals full recomputation (one task: task 0 by default)', async () => {
  const model = new AdaptedModel(ckpt);
  model.addAdapter('t', 'poly', { r: 2, polySkills: 3, polySplits: 2, initWeights: false, targetModules: ALL }, { seed: 6 });
  const { cached, full } = await greedyBothWays(model, [1, 415, 2811], 6);
  assert.equal(cached, full);
});

test('the same logits on js, wasm and webgpu, row by row with their tasks', async () => {
  const model = new AdaptedModel(ckpt);
  model.addAdapter('t', 'poly', { r: 3, polyTasks: 2, polySkills: 3, polySplits: 2, initWeights: false, targetModules: ALL }, { seed: 8 });
  randomizeParams(model, 't', 0.5);
  const want = await model.runtime(createJsBackend()).logits(ids, 2, 10, [1, 0]);
  for (const { name, backend } of await otherBackends()) {
    const rt = model.runtime(backend);
    const err = maxRelErr(await rt.logits(ids, 2, 10, [1, 0]), want);
    rt.dispose();
    backend.dispose();
    assert.ok(err <= 2e-4, `${name}: relative difference ${err}`);
  }
});

test.run();
