// Every adapter method's forward pass against an independent float64 PyTorch reference
// (test/reference/llama_ref.py, written from the papers and PEFT's formulas). Each adapter is trained a few
// steps on stories260K (GGUF: adjacent-pair rotary rows) so that no factor is still at its zero init, saved
// as a PEFT folder, and read by the reference together with a Hugging Face–layout (rotate-half) copy of the
// model. Tolerances: logits of our graph on the float64 js backend within 1e-5 of the reference (float64
// on both sides: a real mismatch is orders larger); the loss `adaptkit eval --adapter` computes (the folder
// loaded back, float32 js) within 1e-5 relative.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { fineTune } from '../../src/train/finetune.js';
import { heroBlocks, stories } from '../methods/helpers.js';
import { evalFolder, heldOut, logitsF64, maxGap } from './ours.js';
import { readF64, requireTorch, runReference, savePeftFolder, writeHfModel } from './python.js';

const LOGIT_TOL = 1e-5, LOSS_TOL = 1e-5;
const B = 2, T = 16;

interface Case {
  name: string; method: string; config: Record<string, unknown>; steps?: number;
  /** Trainable tensors that may end where they started, as long as one of them moved (AdaLoRA's λ of wholly pruned modules). */
  mayStay?: RegExp;
}
const CASES: Case[] = [
  // α/r = 2, α/√r = 4 and α = 8 all differ, so each scaling is told apart from the others.
  { name: 'lora', method: 'lora', config: { r: 4, alpha: 8, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] } },
  { name: 'rslora', method: 'lora', config: { r: 4, alpha: 8, useRslora: true, targetModules: ['embed_tokens', 'q_proj', 'v_proj', 'down_proj'] } },
  { name: 'dora', method: 'lora', config: { r: 2, alpha: 4, useDora: true, targetModules: ['q_proj', 'k_proj', 'v_proj', 'up_proj'] } },
  { name: 'ia3', method: 'ia3', config: { targetModules: ['q_proj', 'k_proj', 'v_proj', 'down_proj'] } },
  // Four steps: full budget, two pruning steps, then the target budget: the saved ranks differ per module.
  { name: 'adalora', method: 'adalora', config: { initR: 4, targetR: 2, loraAlpha: 6, tinit: 1, tfinal: 1, deltaT: 1, targetModules: ['q_proj', 'k_proj', 'v_proj', 'down_proj'] }, steps: 4, mayStay: /\.lora_E$/ },
  // Ranks grow from 1 by one per step after the first: the saved ranks differ per module.
  { name: 'triadaptlora', method: 'triadaptlora', config: { referenceRank: 3, initRank: 1, maxRank: 4, increRankNum: 1, initWarmup: 1, increInterval: 1, loraAlpha: 6, targetModules: ['q_proj', 'k_proj', 'v_proj', 'up_proj'] }, steps: 4 },
  { name: 'hydra', method: 'hydra', config: { r: 2, scale: 0.5, targetModules: ['q_proj', 'k_proj', 'gate_proj', 'down_proj'] } },
  { name: 'lamda', method: 'lamda', config: { r: 3, scale: 2, freezeSteps: 2, targetModules: ['q_proj', 'k_proj', 'v_proj', 'up_proj'] } },
  { name: 'ssf', method: 'ssf', config: { initStd: 0.05 } },
  { name: 'bottleneck', method: 'bottleneck', config: { placement: 'houlsby', connection: 'sequential', reductionFactor: 8 } },
  { name: 'compacter', method: 'compacter', config: { placement: 'houlsby', connection: 'parallel', residual: true, activation: 'silu', reductionFactor: 8, phmDim: 2, phmRank: 2, sharedPhmRule: false } },
  { name: 'compacter-shared', method: 'compacter', config: { placement: 'pfeiffer', reductionFactor: 8, phmDim: 4 } },
  { name: 'prompt-tuning', method: 'prompt-tuning', config: { numVirtualTokens: 4 } },
  // Reparameterised while training; saved (as PEFT in inference mode) as the MLP's output.
  { name: 'prefix-tuning', method: 'prefix-tuning', config: { numVirtualTokens: 3, projection: true, initStd: 0.3 } },
];

interface Ours { logits: Float64Array; loss: number; tokens: number; changed: string[]; unchanged: string[] }
type Ref = Reference['runs'][number] & { logits: Float64Array };
interface Reference { runs: { name: string; loss: number; tokens: number }[] }

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-reference-'));
let prepared: Promise<{ ours: Map<string, Ours>; ref: Map<string, Ref>; base: Float64Array }> | undefined;

/** Train and save every case, compute our numbers, then run the reference once on all folders. */
function prepare() {
  prepared ??= (async () => {
    requireTorch();
    const ckpt = await stories();
    const train = heroBlocks(ckpt, T, 12, 7), { ids, rows, targets } = heldOut(ckpt, B, T);
    const modelDir = writeHfModel(ckpt, join(dir, 'hf-model'));
    const ours = new Map<string, Ours>();
    // The base model alone first: the reference's Llama itself (RMSNorm, rotate-half RoPE, GQA, SwiGLU).
    const runs: { name: string; adapter: string | null; ids: number[][]; targets: number[][]; logits: string }[] = [
      { name: 'base', adapter: null, ids: rows, targets, logits: join(dir, 'base.logits.f64') },
    ];
    for (const c of CASES) {
      const model = new AdaptedModel(ckpt);
      const a = model.addAdapter('t', c.method, c.config, { seed: 3 });
      await fineTune({ model, adapter: 't', backend: createJsBackend(), data: train, steps: c.steps ?? 3, batch: 2, lr: 2e-2, decay: 'constant', seed: 1 });
      const changed: string[] = [], unchanged: string[] = [];
      for (const [k, p] of a.params) {
        if (!model.isTrainable('t', k)) continue;
        const init = a.initial.get(k)!.data;
        (p.data.some((v, i) => v !== init[i]) ? changed : unchanged).push(k);
      }
      const folder = savePeftFolder(model, 't', join(dir, c.name));
      const ev = await evalFolder(ckpt, folder, rows, targets);
      ours.set(c.name, { logits: await logitsF64(model, ids, B, T), loss: ev.loss, tokens: ev.tokens, changed, unchanged });
      runs.push({ name: c.name, adapter: folder, ids: rows, targets, logits: join(dir, `${c.name}.logits.f64`) });
    }
    const out = runReference<Reference>('llama_ref.py', { model: modelDir, runs }, dir);
    const ref = new Map(out.runs.map((r, i) => [r.name, { ...r, logits: readF64(runs[i]!.logits) }]));
    return { ours, ref, base: await logitsF64(new AdaptedModel(ckpt), ids, B, T) };
  })();
  return prepared;
}

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('the base model without an adapter matches the reference (RMSNorm, rotate-half RoPE, GQA, SwiGLU)', async () => {
  const { ref, base } = await prepare();
  const r = ref.get('base')!;
  assert.is(r.logits.length, base.length);
  const gap = maxGap(r.logits, base);
  assert.ok(gap < LOGIT_TOL, `max |logit difference| ${gap}`);
});

for (const c of CASES) {
  test(`${c.name}: trained, saved and read by the reference, logits and eval loss match`, async () => {
    const { ours, ref } = await prepare();
    const o = ours.get(c.name)!, r = ref.get(c.name)!;
    const stuck = o.unchanged.filter((k) => !c.mayStay?.test(k));
    assert.equal(stuck, [], `trainable tensors still at their initial values: ${stuck.join(', ')}`);
    if (c.mayStay) assert.ok(o.changed.some((k) => c.mayStay!.test(k)), `no tensor matching ${c.mayStay} trained`);
    assert.is(r.logits.length, o.logits.length);
    const gap = maxGap(r.logits, o.logits);
    assert.ok(gap < LOGIT_TOL, `max |logit difference| ${gap}`);
    assert.is(o.tokens, r.tokens);
    assert.ok(Math.abs(o.loss - r.loss) <= LOSS_TOL * r.loss, `eval loss ${o.loss}, reference ${r.loss}`);
  });
}

test.run();
