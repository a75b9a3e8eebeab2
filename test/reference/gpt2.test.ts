// GPT-2 (`model_type: "gpt2"`): learned positions, LayerNorm with biases, Conv1D projections stored [in, out],
// gelu_new, head tied to wte. A small random model written here directly in Hugging Face layout (Conv1D weights
// [in, out], `transformer.` names, the causal-mask buffers older files carry) against the independent float64
// PyTorch reference (test/reference/gpt2_ref.py, written from modeling_gpt2's equations): logits within 1e-5 on
// float64 js, within 1e-4 of the largest logit on float32 js, wasm and webgpu; greedy tokens (our KV-cache decoder
// against the reference's full recompute) equal. A LoRA on c_attn/c_proj/c_fc (four modules a layer) trains, saves a PEFT folder with
// fan_in_fan_out true that the reference reads with PEFT's formulas (logits 1e-5, greedy tokens equal); merging it
// and writing the model gives the weights of PEFT's merge, W + (s·B·A)ᵀ, within 1e-6, and the merged folder's
// forward equals the adapted one within 1e-5. Files with bare names (`h.0…`) load the same.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { loadPeft } from '../../src/adapters/peft.js';
import { fromPeftTargets } from '../../src/adapters/config-utils.js';
import { modelModules, selectTargets } from '../../src/adapters/targets.js';
import type { TargetConfig } from '../../src/adapters/types.js';
import type { Backend } from '../../src/backends/backend.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { type LlamaCheckpoint, tensorF32 } from '../../src/formats/checkpoint.js';
import { hfModelConfig } from '../../src/formats/hf.js';
import { loadCheckpointFile } from '../../src/formats/node-fs.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import * as F from '../../src/graph/api.js';
import { Graph } from '../../src/graph/graph.js';
import { buildModel } from '../../src/model/families.js';
import { hostKeyValues } from '../../src/model/host-forward.js';
import { checkpointDtypes, uploadWeights } from '../../src/model/runtime.js';
import { Session } from '../../src/scheduler/session.js';
import { fineTune } from '../../src/train/finetune.js';
import { seededRandom } from '../../src/util/random.js';
import { dequantize, quantize } from '../../src/quant/codec.js';
import { writeModel } from '../../src/cli/write-model.js';
import { otherBackends } from '../backends/backends.js';
import { cli } from '../cli/run.js';
import { maxGap } from './ours.js';
import { readF64, requireTorch, runReference, savePeftFolder } from './python.js';

const B = 2, T = 6, GREEDY = 5;
const D = 32, I = 48, L = 2, H = 4, V = 24, P = 32;
const HF_CONFIG = {
  model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], n_embd: D, n_inner: I, n_layer: L, n_head: H, vocab_size: V,
  n_positions: P, n_ctx: P, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new',
};
const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 5 + 1) % V);
const rows = [Array.from(ids.subarray(0, T)), Array.from(ids.subarray(T))];

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-gpt2-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

type Named = [string, { shape: number[]; data: Float32Array }];

/** GPT2LMHeadModel's tensors with Hugging Face shapes (Conv1D [in, out]) and random values; LayerNorm weights near 1. */
function hfTensors(): Named[] {
  const r = seededRandom(21);
  const t = (name: string, shape: number[], center = 0, scale = 0.6): Named =>
    [name, { shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => center + (r() - 0.5) * scale) }];
  const out: Named[] = [t('transformer.wte.weight', [V, D]), t('transformer.wpe.weight', [P, D])];
  for (let l = 0; l < L; l++) {
    const p = `transformer.h.${l}`;
    out.push(
      t(`${p}.ln_1.weight`, [D], 1), t(`${p}.ln_1.bias`, [D], 0, 0.2),
      t(`${p}.attn.c_attn.weight`, [D, 3 * D]), t(`${p}.attn.c_attn.bias`, [3 * D], 0, 0.2),
      t(`${p}.attn.c_proj.weight`, [D, D]), t(`${p}.attn.c_proj.bias`, [D], 0, 0.2),
      t(`${p}.ln_2.weight`, [D], 1), t(`${p}.ln_2.bias`, [D], 0, 0.2),
      t(`${p}.mlp.c_fc.weight`, [D, I]), t(`${p}.mlp.c_fc.bias`, [I], 0, 0.2),
      t(`${p}.mlp.c_proj.weight`, [I, D]), t(`${p}.mlp.c_proj.bias`, [D], 0, 0.2),
    );
    // The causal mask older GPT-2 files carry as a buffer: not a weight.
    out.push([`${p}.attn.bias`, { shape: [1, 1, P, P], data: Float32Array.from({ length: P * P }, (_, i) => (i % P <= Math.floor(i / P) ? 1 : 0)) }]);
  }
  out.push(t('transformer.ln_f.weight', [D], 1), t('transformer.ln_f.bias', [D], 0, 0.2));
  return out;
}

function writeFolder(tensors: Named[], out: string): string {
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'model.safetensors'), writeSafetensors(tensors));
  writeFileSync(join(out, 'config.json'), JSON.stringify(HF_CONFIG));
  return out;
}

function blocks(seq: number, count: number) {
  const all = new Int32Array(count * (seq + 1)), targets = new Int32Array(count * seq);
  for (let r = 0; r < count; r++) {
    for (let t = 0; t <= seq; t++) all[r * (seq + 1) + t] = (r + t * 3) % 7 + 2;
    for (let t = 0; t < seq; t++) targets[r * seq + t] = all[r * (seq + 1) + t + 1]!;
  }
  return { ids: all, targets, rows: count, seq, paddingRatio: 0, naivePaddingRatio: 0 };
}

async function logitsOf(model: AdaptedModel, backend: Backend = createJsBackend({ precision: 'f64' })): Promise<Float64Array> {
  const g = new Graph();
  const { hooks } = model.hooks({ training: false });
  const net = buildModel(g, model.base.config, { batch: B, seq: T, hooks, weightDtype: checkpointDtypes(model.base) });
  // Virtual tokens (prompt tuning) come first and predict nothing.
  const logits = net.virtualTokens ? F.slice(net.logits, 1, net.virtualTokens, net.virtualTokens + T) : net.logits;
  g.markOutput(logits);
  const s = await Session.create(g, backend);
  uploadWeights(s, net.weights, model.effectiveCheckpoint());
  model.uploadAdapterParams(s);
  s.set(net.ids, ids);
  await s.run();
  const out = Float64Array.from(await s.get(logits));
  s.dispose();
  return out;
}

async function greedy(model: AdaptedModel): Promise<number[][]> {
  const rt = model.runtime(createJsBackend());
  const out: number[][] = [];
  for (const r of rows) out.push(await rt.generate(r, { maxTokens: GREEDY, temperature: 0, stopTokens: [] }));
  rt.dispose();
  return out;
}

interface Prepared {
  file: Named[]; folder: string; ckpt: LlamaCheckpoint; model: AdaptedModel; losses: number[]; peft: string;
  ref: Float64Array; refLora: Float64Array; refMerged: Float64Array; refGreedy: number[][]; refGreedyLora: number[][];
  mergeGap: number; mergedModules: number; merged: string;
}
let loaded: Promise<Prepared> | undefined;
function prepare(): Promise<Prepared> {
  loaded ??= (async () => {
    requireTorch();
    const file = hfTensors();
    const folder = writeFolder(file, join(dir, 'hf'));
    const ckpt = await loadCheckpointFile(folder);
    const model = new AdaptedModel(ckpt);
    model.addAdapter('t', 'lora', { r: 2, alpha: 4, targetModules: ['c_attn', 'c_proj', 'c_fc'] }, { seed: 3 });
    const r = await fineTune({ model, adapter: 't', backend: createJsBackend(), data: blocks(8, 4), steps: 8, batch: 4, lr: 5e-2, decay: 'constant', seed: 1 });
    const peft = savePeftFolder(model, 't', join(dir, 'lora'));
    const merging = new AdaptedModel(ckpt);
    loadPeft(merging, 'm', { config: readFileSync(join(peft, 'adapter_config.json'), 'utf8'), weights: readFileSync(join(peft, 'adapter_model.safetensors')) }, peft);
    merging.merge('m');
    const merged = join(dir, 'merged');
    await writeModel(merging.effectiveCheckpoint(), merged, 'safetensors', 'f32');
    const [base, adapted, mergedLogits] = ['base', 'lora', 'merged'].map((n) => join(dir, `${n}.f64`)) as [string, string, string];
    const out = runReference<{ runs: { greedy: number[][] }[]; merge_gap: number; merged_modules: number }>('gpt2_ref.py', {
      model: folder,
      runs: [
        { adapter: null, ids: rows, logits: base, greedy: GREEDY },
        { adapter: peft, ids: rows, logits: adapted, greedy: GREEDY },
      ],
      merge_check: { adapter: peft, merged },
    }, dir);
    runReference('gpt2_ref.py', { model: merged, runs: [{ adapter: null, ids: rows, logits: mergedLogits }] }, dir);
    return {
      file, folder, ckpt, model, losses: r.losses, peft, ref: readF64(base), refLora: readF64(adapted), refMerged: readF64(mergedLogits),
      refGreedy: out.runs[0]!.greedy, refGreedyLora: out.runs[1]!.greedy, mergeGap: out.merge_gap, mergedModules: out.merged_modules, merged,
    };
  })();
  return loaded;
}

test('config.json model_type gpt2 loads; Conv1D weights are held transposed, mask buffers skipped, bare names read the same', async () => {
  const { ckpt, file } = await prepare();
  assert.is(ckpt.config.architecture, 'gpt2');
  assert.is(ckpt.config.tiedEmbeddings, true);
  assert.is(ckpt.config.hiddenDim, I);
  assert.not.ok(ckpt.tensors.has('transformer.h.0.attn.bias'));
  const stored = new Map(file);
  const w = tensorF32(ckpt.tensors.get('transformer.h.1.mlp.c_fc.weight')!), f = stored.get('transformer.h.1.mlp.c_fc.weight')!.data;
  assert.equal(ckpt.tensors.get('transformer.h.1.mlp.c_fc.weight')!.shape, [I, D]);
  for (const [o, i] of [[0, 0], [5, 3], [I - 1, D - 1], [17, 30]] as const) assert.is(w[o * D + i], f[i * I + o]);
  const bare = await loadCheckpointFile(writeFolder(file.map(([k, t]) => [k.replace(/^transformer\./, ''), t] as Named), join(dir, 'bare')));
  assert.equal([...bare.tensors.keys()].sort(), [...ckpt.tensors.keys()].sort());
  for (const [k, t] of ckpt.tensors) assert.equal(Array.from(tensorF32(bare.tensors.get(k)!)), Array.from(tensorF32(t)), k);
});

test('compact base weights (q8_0): Conv1D weights are quantised once, by their held [out, in] rows', async () => {
  const { ckpt, folder, ref } = await prepare();
  const q = await loadCheckpointFile(folder, { baseDtype: 'q8_0' });
  const attn = q.tensors.get('transformer.h.0.attn.c_attn.weight')!, proj = q.tensors.get('transformer.h.1.mlp.c_proj.weight')!;
  assert.is(attn.dtype, 'q8_0');
  assert.equal(attn.shape, [3 * D, D]);
  // Rows of 48 are not whole 32-blocks: f16, as for any such weight.
  assert.is(proj.dtype, 'f16');
  const f32 = tensorF32(ckpt.tensors.get('transformer.h.0.attn.c_attn.weight')!);
  assert.equal(Array.from(tensorF32(attn)), Array.from(dequantize('q8_0', quantize('q8_0', f32), f32.length)));
  const scale = Math.max(...ref.map(Math.abs)), gap = maxGap(await logitsOf(new AdaptedModel(q), createJsBackend()), ref);
  assert.ok(gap < 2e-2 * scale, `q8_0: max |logit difference| ${gap} (largest logit ${scale})`);
});

test('logits match the float64 reference on js (float64) within 1e-5, and greedy tokens agree', async () => {
  const { ckpt, ref, refGreedy } = await prepare();
  const gap = maxGap(await logitsOf(new AdaptedModel(ckpt)), ref);
  assert.ok(gap < 1e-5, `max |logit difference| ${gap}`);
  assert.equal(await greedy(new AdaptedModel(ckpt)), refGreedy);
});

test('logits on js float32, wasm and webgpu match the reference within 1e-4 of the largest logit', async () => {
  const { ckpt, ref } = await prepare();
  const scale = Math.max(...ref.map(Math.abs));
  for (const { name, backend } of [{ name: 'js', backend: createJsBackend() }, ...(await otherBackends())]) {
    const gap = maxGap(await logitsOf(new AdaptedModel(ckpt), backend), ref);
    assert.ok(gap < 1e-4 * scale, `${name}: max |logit difference| ${gap} (largest logit ${scale})`);
  }
});

test('LoRA on c_attn/c_proj/c_fc trains and saves fan_in_fan_out true; the reference (PEFT formulas) agrees', async () => {
  const { model, losses, peft, ref, refLora, refGreedyLora } = await prepare();
  assert.ok(losses[losses.length - 1]! < losses[0]! * 0.9, `loss ${losses[0]} → ${losses[losses.length - 1]}`);
  const cfg = JSON.parse(readFileSync(join(peft, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  assert.is(cfg.fan_in_fan_out, true);
  // PEFT's factor shapes on Conv1D: A [r, in], B [out, r].
  assert.equal(model.get('t').params.get('transformer.h.0.attn.c_attn.lora_A.weight')!.shape, [2, D]);
  assert.equal(model.get('t').params.get('transformer.h.0.attn.c_attn.lora_B.weight')!.shape, [3 * D, 2]);
  assert.equal(model.get('t').params.get('transformer.h.1.mlp.c_proj.lora_A.weight')!.shape, [2, I]);
  assert.ok(maxGap(refLora, ref) > 1e-3, 'the adapter changed nothing');
  const gap = maxGap(await logitsOf(model), refLora);
  assert.ok(gap < 1e-5, `max |logit difference| ${gap}`);
  assert.equal(await greedy(model), refGreedyLora);
});

test('merging the LoRA writes PEFT\'s merge W + (s·B·A)ᵀ into the [in, out] weights; the merged model equals the adapted one', async () => {
  const { mergeGap, mergedModules, refLora, refMerged, merged } = await prepare();
  // c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj (`c_proj` names both) in each layer.
  assert.is(mergedModules, 4 * L);
  assert.ok(mergeGap < 1e-6, `max |merged weight − PEFT merge| ${mergeGap}`);
  assert.ok(maxGap(refMerged, refLora) < 1e-5, `reference on the merged folder vs adapted: ${maxGap(refMerged, refLora)}`);
  const cfg = JSON.parse(readFileSync(join(merged, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.is(cfg.model_type, 'gpt2');
  assert.is(cfg.n_inner, I);
  const back = await loadCheckpointFile(merged);
  assert.ok(maxGap(await logitsOf(new AdaptedModel(back)), refLora) < 1e-5);
});

test('DoRA at initialisation leaves the logits unchanged (per-output magnitudes on the held [out, in] weights)', async () => {
  const { ckpt, ref } = await prepare();
  const model = new AdaptedModel(ckpt);
  model.addAdapter('d', 'lora', { r: 2, alpha: 4, useDora: true, targetModules: ['c_attn', 'c_fc'] }, { seed: 5 });
  assert.equal(model.get('d').params.get('transformer.h.0.mlp.c_fc.lora_magnitude_vector')!.shape, [I]);
  const gap = maxGap(await logitsOf(model), ref);
  assert.ok(gap < 1e-5, `max |logit difference| ${gap}`);
});

test('DoRA and PiSSA on the Conv1D layers: PiSSA starts at the base; trained and merged, both write models whose forward is the adapted one', async () => {
  const { ckpt, ref } = await prepare();
  for (const [name, extra] of [['dora', { useDora: true }], ['pissa', { init: 'pissa' }]] as const) {
    const model = new AdaptedModel(ckpt);
    model.addAdapter(name, 'lora', { r: 2, alpha: 4, targetModules: ['c_attn', 'c_proj', 'c_fc'], ...extra }, { seed: 8 });
    if (name === 'pissa') assert.ok(maxGap(await logitsOf(model), ref) < 1e-5, 'PiSSA changed the starting logits');
    await fineTune({ model, adapter: name, backend: createJsBackend(), data: blocks(8, 4), steps: 3, batch: 4, lr: 5e-2, decay: 'constant', seed: 1 });
    const adapted = await logitsOf(model);
    assert.ok(maxGap(adapted, ref) > 1e-3, `${name}: training changed nothing`);
    model.merge(name);
    const out = join(dir, `merged-${name}`);
    await writeModel(model.effectiveCheckpoint(), out, 'safetensors', 'f32');
    const gap = maxGap(await logitsOf(new AdaptedModel(await loadCheckpointFile(out))), adapted);
    assert.ok(gap < 1e-5, `${name}: merged model vs adapted: ${gap}`);
  }
});

test('bottleneck adapters sit after the attn and mlp blocks and train; all-linear names the Conv1D layers; prompt tuning starts from wte rows', async () => {
  const { ckpt } = await prepare();
  const model = new AdaptedModel(ckpt);
  const a = model.addAdapter('b', 'bottleneck', { reductionFactor: 8 }, { seed: 2 });
  assert.equal(a.modules.map((m) => m.name), ['transformer.h.0.attn', 'transformer.h.0.mlp', 'transformer.h.1.attn', 'transformer.h.1.mlp']);
  const r = await fineTune({ model, adapter: 'b', backend: createJsBackend(), data: blocks(8, 4), steps: 6, batch: 4, lr: 2e-2, decay: 'constant', seed: 1 });
  assert.ok(r.losses[r.losses.length - 1]! < r.losses[0]!, `loss ${r.losses[0]} → ${r.losses[r.losses.length - 1]}`);
  // PEFT's all-linear (in an adapter_config.json): every Conv1D projection (c_attn, attn.c_proj, c_fc, mlp.c_proj),
  // not the tied head or wte; GPT-2's layers_pattern "h" is its layer list.
  const peftSelect = (j: Record<string, unknown>) => selectTargets(fromPeftTargets(j, []) as unknown as TargetConfig, modelModules(ckpt.config)).map((m) => m.name);
  const all = peftSelect({ target_modules: 'all-linear' });
  assert.equal(all.slice(4), ['transformer.h.1.attn.c_attn', 'transformer.h.1.attn.c_proj', 'transformer.h.1.mlp.c_fc', 'transformer.h.1.mlp.c_proj']);
  assert.is(all.length, 4 * L);
  assert.equal(peftSelect({ target_modules: ['c_attn'], layers_pattern: 'h', layers_to_transform: [1] }), ['transformer.h.1.attn.c_attn']);
  const p = new AdaptedModel(ckpt).addAdapter('p', 'prompt-tuning', { numVirtualTokens: 3, promptInit: 'vocab' }, { seed: 4 });
  const prompt = [...p.params.values()][0]!.data, wte = tensorF32(ckpt.tensors.get('transformer.wte.weight')!);
  for (let v = 0; v < 3; v++) {
    const row = Array.from(prompt.subarray(v * D, v * D + D));
    assert.ok(Array.from({ length: V }, (_, t) => t).some((t) => row.every((x, j) => x === wte[t * D + j])), `virtual token ${v} is no wte row`);
  }
});

test('prompt tuning (wpe over virtual and real tokens) and prefix tuning (positions from P): the reference agrees, greedy tokens too', async () => {
  const { ckpt } = await prepare();
  for (const [method, config] of [['prompt-tuning', { numVirtualTokens: 3 }], ['prefix-tuning', { numVirtualTokens: 4, prefixInit: 'random', initStd: 0.5 }]] as const) {
    const model = new AdaptedModel(ckpt);
    model.addAdapter('a', method, config, { seed: 6 });
    const folder = savePeftFolder(model, 'a', join(dir, method));
    const out = join(dir, `${method}.f64`);
    const r = runReference<{ runs: { greedy: number[][] }[] }>('gpt2_ref.py', { model: join(dir, 'hf'), runs: [{ adapter: folder, ids: rows, logits: out, greedy: GREEDY }] }, dir);
    const gap = maxGap(await logitsOf(model), readF64(out));
    assert.ok(gap < 1e-5, `${method}: max |logit difference| ${gap}`);
    assert.equal(await greedy(model), r.runs[0]!.greedy, method);
  }
  // Prefix tuning's default init runs the model on the host, which is written for Llama-shaped models.
  assert.throws(() => hostKeyValues(ckpt, [1, 2]), /computed for Llama-shaped, Gemma and Phi-3 decoders only, not gpt2; use a random initialisation/);
});

test('adaptkit train adapts the Conv1D projections by default (c_attn, c_proj, c_fc: 4 modules a layer)', async () => {
  const { folder } = await prepare();
  const r = cli(['train', '--dry-run', '--model', folder, '--backend', 'js', '--seq', '16', '--batch', '2']);
  assert.is(r.code, 0, r.stderr);
  // r = 8: c_attn 8·(32 + 96), attn.c_proj 8·(32 + 32), c_fc 8·(32 + 48), mlp.c_proj 8·(48 + 32), in 2 layers.
  assert.match(r.stdout + r.stderr, new RegExp(`${(2 * 8 * (128 + 64 + 80 + 80)).toLocaleString('en')} trainable parameters`));
});

test('unsupported GPT-2 options and too long sequences are refused by name; merge writes GGUF too', async () => {
  const { ckpt } = await prepare();
  assert.throws(() => hfModelConfig({ ...HF_CONFIG, scale_attn_by_inverse_layer_idx: true }), /scale_attn_by_inverse_layer_idx is not supported/);
  assert.throws(() => hfModelConfig({ ...HF_CONFIG, activation_function: 'relu' }), /activation_function "relu" is not supported/);
  assert.throws(() => hfModelConfig({ ...HF_CONFIG, scale_attn_weights: false }), /scale_attn_weights false/);
  assert.throws(() => hfModelConfig({ ...HF_CONFIG, n_embd: 30 }), /n_embd 30 is not a multiple of n_head 4/);
  assert.throws(() => buildModel(new Graph(), ckpt.config, { batch: 1, seq: P + 1 }), /33 positions exceeds GPT-2's 32 learned positions/);
  // GGUF as llama.cpp's gpt2 architecture (test/formats/gguf-families.test.ts checks its layout and logits).
  assert.equal(await writeModel(ckpt, join(dir, 'both'), 'both', 'f32'), ['model.safetensors', 'config.json', 'model.gguf']);
  assert.equal((await loadCheckpointFile(join(dir, 'both', 'model.gguf'))).config, ckpt.config);
});

test.run();
