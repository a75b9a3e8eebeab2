// The same seeded training runs on every backend give the same loss curve (relative difference ≤ 1e-4
// at every step): the MLP and the one-block transformer for 50 steps, and LoRA on stories260K.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { pack, textExamples } from '../../src/data/dataset.js';
import { heroStories } from '../../src/data/builtin-task.js';
import { loadCheckpoint } from '../../src/formats/checkpoint.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { trainMlp, trainTransformerBlock } from '../../src/toy/tasks.js';
import { fineTune } from '../../src/train/finetune.js';
import { LLAMA_PROJECTIONS } from '../../src/model/llama.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { STORIES_GGUF } from '../assets.js';
import { curveDiff, js, otherBackends } from './backends.js';

const TOL = 1e-4;
const others = await otherBackends();

test('MLP, 50 steps: same loss curve on every backend', async () => {
  const ref = (await trainMlp(js(), { steps: 50 })).losses;
  for (const { name, backend } of others) {
    const { losses, trainer } = await trainMlp(backend, { steps: 50 });
    trainer.dispose();
    const d = curveDiff(losses, ref);
    assert.ok(d <= TOL, `${name}: relative difference ${d}`);
  }
});

test('one-block transformer, 50 steps: same loss curve on every backend', async () => {
  const ref = (await trainTransformerBlock(js(), { steps: 50 })).losses;
  assert.ok(ref[49]! < ref[0]! * 0.7);
  for (const { name, backend } of others) {
    const { losses, trainer } = await trainTransformerBlock(backend, { steps: 50 });
    trainer.dispose();
    const d = curveDiff(losses, ref);
    assert.ok(d <= TOL, `${name}: relative difference ${d}`);
  }
});

test('LoRA on stories260K (all seven projections, dropout 0.1): same loss curve on every backend; greedy generation and eval agree', async () => {
  const ckpt = await loadCheckpoint(STORIES_GGUF);
  const tok = createTokenizer(ckpt.tokenizer!);
  const data = pack(textExamples(heroStories(16), tok, 48), 48);
  const run = async (backend: Parameters<typeof fineTune>[0]['backend']) => {
    const model = new AdaptedModel(ckpt);
    model.addAdapter('default', 'lora', { r: 4, alpha: 8, dropout: 0.1, targetModules: [...LLAMA_PROJECTIONS] }, { seed: 2 });
    const { losses } = await fineTune({ model, adapter: 'default', backend, data, steps: 8, batch: 2, lr: 1e-2, seed: 4 });
    return losses;
  };
  const ref = await run(js());
  assert.ok(ref[7]! < ref[0]!);
  for (const { name, backend } of others) {
    const d = curveDiff(await run(backend), ref);
    assert.ok(d <= TOL, `${name}: relative difference ${d}`);
    const rt = new LlamaRuntime(ckpt, backend), rj = new LlamaRuntime(ckpt, js());
    assert.equal(await rt.generate([1], { maxTokens: 40 }), await rj.generate([1], { maxTokens: 40 }), `${name}: greedy tokens differ`);
    rt.dispose(); rj.dispose();
  }
});

test.run();
