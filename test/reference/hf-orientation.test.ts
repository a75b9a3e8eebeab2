// LoRA on q_proj/k_proj of a GGUF model (Q/K rows in adjacent-pair rotary order) saved for Hugging Face PEFT,
// checked by the float64 reference (test/reference/llama_ref.py), which knows only Hugging Face's layout:
// - each saved lora_B equals the rotate-half row permutation, computed in Python, of the GGUF-order B the
//   model trained (exactly: a permutation moves float32 values unchanged), and each lora_A is unchanged;
// - the reference, reading a rotate-half copy of the model and the saved folder, gives the logits of our
//   GGUF-side graph (float64 js, within 1e-5) and the loss of `adaptkit eval --adapter` (within 1e-5 relative).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { fineTune } from '../../src/train/finetune.js';
import { heroBlocks, stories } from '../methods/helpers.js';
import { evalFolder, heldOut, logitsF64, maxGap } from './ours.js';
import { readF64, requireTorch, runReference, savePeftFolder, writeHfModel } from './python.js';

const B = 2, T = 16;

interface Result {
  runs: { name: string; loss: number; tokens: number }[];
  orientation: { key: string; max_abs_diff: number; unpermuted_diff: number }[];
}

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-orientation-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('LoRA on q_proj/k_proj of stories260K.gguf: saved in rotate-half order, and the Hugging Face–layout reference gives our logits', async () => {
  requireTorch();
  const ckpt = await stories();
  assert.is(ckpt.config.ropeLayout, 'pairs');
  const model = new AdaptedModel(ckpt);
  const a = model.addAdapter('t', 'lora', { r: 4, alpha: 8, targetModules: ['q_proj', 'k_proj'] }, { seed: 5 });
  await fineTune({ model, adapter: 't', backend: createJsBackend(), data: heroBlocks(ckpt, T, 12, 7), steps: 4, batch: 2, lr: 2e-2, decay: 'constant', seed: 1 });
  const bs = [...a.params].filter(([k]) => k.endsWith('.lora_B.weight'));
  assert.is(bs.length, 2 * ckpt.config.nLayers);
  for (const [k, p] of bs) assert.ok(p.data.some((v) => Math.abs(v) > 1e-4), `${k} is still (nearly) zero after training`);

  const folder = savePeftFolder(model, 't', join(dir, 'adapter'));
  // The trained tensors as the GGUF-side model holds them, under the names the saved file uses.
  const ggufOrder = join(dir, 'gguf-order.safetensors');
  writeFileSync(ggufOrder, writeSafetensors([...a.params].map(([k, p]) => [`base_model.model.${k}`, { shape: p.shape, data: p.data }] as [string, { shape: number[]; data: Float32Array }])));
  const { ids, rows, targets } = heldOut(ckpt, B, T);
  const c = ckpt.config;
  const out = runReference<Result>('llama_ref.py', {
    model: writeHfModel(ckpt, join(dir, 'hf-model')),
    runs: [{ name: 'lora', adapter: folder, ids: rows, targets, logits: join(dir, 'lora.logits.f64') }],
    orientation: [{ saved: join(folder, 'adapter_model.safetensors'), gguf: ggufOrder, heads: { q_proj: c.nHeads, k_proj: c.nKvHeads }, head_dim: c.dim / c.nHeads }],
  }, dir);

  assert.is(out.orientation.length, 4 * c.nLayers);
  for (const o of out.orientation) {
    assert.is(o.max_abs_diff, 0, `${o.key}: saved tensor differs from the Hugging Face orientation by up to ${o.max_abs_diff}`);
    // The permutation must matter for every B, or the check above proves nothing.
    if (o.key.endsWith('.lora_B.weight')) assert.ok(o.unpermuted_diff > 1e-4, `${o.key}: rotate-half and pair order agree (${o.unpermuted_diff})`);
  }

  const gap = maxGap(readF64(join(dir, 'lora.logits.f64')), await logitsF64(model, ids, B, T));
  assert.ok(gap < 1e-5, `max |logit difference| ${gap}`);
  const ev = await evalFolder(ckpt, folder, rows, targets), ref = out.runs[0]!;
  assert.is(ev.tokens, ref.tokens);
  assert.ok(Math.abs(ev.loss - ref.loss) <= 1e-5 * ref.loss, `eval loss ${ev.loss}, reference ${ref.loss}`);
});

test.run();
