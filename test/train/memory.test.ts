// Knowing before a run: the planned memory against what the wasm backend really takes, and runs that cannot
// fit refused before their first step with settings that would.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { type Backend, OutOfMemoryError } from '../../src/backends/backend.js';
import { createWasmBackend } from '../../src/backends/wasm/index.js';
import type { LlamaConfig } from '../../src/formats/checkpoint.js';
import { syntheticCheckpoint } from '../../src/model/synthetic.js';
import type { PackedBlocks } from '../../src/data/dataset.js';
import { fineTune } from '../../src/train/finetune.js';
import { estimateTraining, MemoryPlanError } from '../../src/train/memory.js';
import { rejection } from '../helpers.js';

const CONFIG: LlamaConfig = {
  dim: 256, hiddenDim: 704, nLayers: 4, nHeads: 8, nKvHeads: 4, vocabSize: 2048, maxSeqLen: 256, normEps: 1e-5,
  ropeTheta: 10000, tiedEmbeddings: false, qkvBias: true, ropeLayout: 'half', architecture: 'qwen2',
};
const BATCH = 4, SEQ = 64;

function randomBlocks(rows: number, seq: number, vocab: number): PackedBlocks {
  const ids = Int32Array.from({ length: rows * seq }, (_, i) => (i * 7919) % vocab);
  const targets = Int32Array.from({ length: rows * seq }, (_, i) => ((i + 1) * 7919) % vocab);
  return { ids, targets, rows, seq } as PackedBlocks;
}

function loraModel(dtype: 'f32' | 'q8_0'): AdaptedModel {
  const model = new AdaptedModel(syntheticCheckpoint(CONFIG, { dtype, seed: 2 }));
  model.addAdapter('default', 'lora', { r: 8, alpha: 16, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] }, { seed: 1 });
  return model;
}

for (const [dtype, checkpointing] of [['f32', false], ['q8_0', true]] as const) {
  {
    test(`the estimate is within 15% of the wasm memory a training step takes (${dtype} base${checkpointing ? ', checkpointing' : ''})`, async () => {
      const backend = await createWasmBackend({ threads: 1 });
      const model = loraModel(dtype);
      const shape = { batch: BATCH, seq: SEQ, checkpointing };
      const e = estimateTraining(model, 'default', backend, shape);
      const memory = await measure(backend, () => fineTune({ model, adapter: 'default', backend, data: randomBlocks(8, SEQ, CONFIG.vocabSize), steps: 1, batch: BATCH, checkpointing }));
      const err = Math.abs(e.totalBytes - memory) / memory;
      assert.ok(err <= 0.15, `estimate ${e.totalBytes} vs measured ${memory} (${(err * 100).toFixed(1)}%)`);
      backend.dispose();
    });
  }
}

/** Growth of the wasm memory while `work` runs: what the backend took for it. */
async function measure(backend: Backend, work: () => Promise<unknown>): Promise<number> {
  const before = backend.memoryInUse!();
  await work();
  return backend.memoryInUse!() - before;
}

test('checkpointing and a compact base shrink the estimate where the issue says they should', async () => {
  const backend = await createWasmBackend({ threads: 1 });
  const plain = estimateTraining(loraModel('f32'), 'default', backend, { batch: BATCH, seq: SEQ });
  const ckpt = estimateTraining(loraModel('f32'), 'default', backend, { batch: BATCH, seq: SEQ, checkpointing: true });
  const q8 = estimateTraining(loraModel('q8_0'), 'default', backend, { batch: BATCH, seq: SEQ });
  assert.ok(ckpt.activationBytes < 0.7 * plain.activationBytes, `${ckpt.activationBytes} vs ${plain.activationBytes}`);
  assert.is(ckpt.weightBytes, plain.weightBytes);
  // q8_0 holds 1.125 bytes per weight element instead of 4 (adapters and norms stay f32).
  assert.ok(q8.weightBytes < 0.35 * plain.weightBytes, `${q8.weightBytes} vs ${plain.weightBytes}`);
  assert.ok(plain.optimizerBytes > 0 && plain.optimizerBytes === q8.optimizerBytes);
  backend.dispose();
});

test('a run that cannot fit is refused before its first step, naming settings that do fit', async () => {
  const wasm = await createWasmBackend({ threads: 1 });
  const model = loraModel('f32');
  const shape = { batch: BATCH, seq: SEQ };
  const need = estimateTraining(model, 'default', wasm, shape);
  // A backend that can hold only 60% of the plan: nothing may be allocated, no step may run.
  const cap = Math.floor(need.totalBytes * 0.6);
  const small: Backend = { ...wasm, memoryCaps: () => ({ totalBytes: cap }), load: () => { throw new Error('load must not be reached'); } };
  let steps = 0;
  const err = await rejection(fineTune({ model, adapter: 'default', backend: small, data: randomBlocks(8, SEQ, CONFIG.vocabSize), steps: 2, batch: BATCH, onStep: () => { steps++; } }));
  assert.instance(err, MemoryPlanError);
  assert.is(steps, 0);
  assert.match(err.message, /does not fit: it needs .* wasm can hold/);
  assert.match(err.message, /would fit: /);
  // Every suggestion really fits under the cap.
  const suggestions = (err as MemoryPlanError).suggestions;
  assert.ok(suggestions.length >= 1, err.message);
  for (const s of suggestions) {
    const batch = Number(/--batch (\d+)/.exec(s)?.[1] ?? BATCH), seq = Number(/--seq (\d+)/.exec(s)?.[1] ?? SEQ);
    const dtype = /--base-dtype (\w+)/.exec(s)?.[1] as 'q8_0' | undefined;
    const m = dtype ? loraModel(dtype) : model;
    const e = estimateTraining(m, 'default', wasm, { batch, seq, checkpointing: s.includes('--checkpointing') });
    assert.ok(e.totalBytes <= cap, `${s}: ${e.totalBytes} > ${cap}`);
  }
  wasm.dispose();
});

test('running out of memory anyway gives the same advice, not a raw allocation failure', async () => {
  const wasm = await createWasmBackend({ threads: 1 });
  const oom: Backend = { ...wasm, memoryCaps: undefined, load: () => { throw new OutOfMemoryError('wasm backend: out of memory: 12.0 MiB more were needed', 'wasm'); } };
  const err = await rejection(fineTune({ model: loraModel('f32'), adapter: 'default', backend: oom, data: randomBlocks(8, SEQ, CONFIG.vocabSize), steps: 1, batch: BATCH }));
  assert.instance(err, MemoryPlanError);
  assert.match(err.message, /ran out of memory/);
  assert.match(err.message, /would fit: .*--checkpointing|--base-dtype|--batch/);
  wasm.dispose();
});

test.run();
