// stories260K with compact frozen weights on WebGPU against the js backend on the same compact model:
// the eval loss of each compact type, greedy decoding, and a LoRA run's loss curve on q8_0 and q4_0 bases.
// Tolerance: relative difference ≤ 1e-4 per loss. Both backends read the same exact dequantised values;
// they differ only in f32 summation order (js accumulates in float64), about 1e-6 relative on this model.
// A misread weight moves the loss by far more (the q4_0 model itself differs from the f32 one by ~1e-2).
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { createWebgpuBackend, type WebgpuBackend } from '../../src/backends/webgpu/index.js';
import { pack, textExamples } from '../../src/data/dataset.js';
import { paragraphs } from '../../src/data/text.js';
import { loadCheckpoint } from '../../src/formats/checkpoint.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { COMPACT_DTYPES } from '../../src/quant/index.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { fineTune } from '../../src/train/finetune.js';
import { STORIES_GGUF, TINYSTORIES_VAL } from '../assets.js';
import { compactCopy } from '../helpers.js';

const TOL = 1e-4;
const rel = (a: number, b: number): number => Math.abs(a - b) / Math.max(Math.abs(b), 1e-30);


const base = await loadCheckpoint(STORIES_GGUF);
const tok = createTokenizer(base.tokenizer!);
const text = paragraphs(readFileSync(TINYSTORIES_VAL, 'utf8'));
const evalSeqs = text.slice(0, 4).map((p) => [tok.bosId!, ...tok.encode(p)].slice(0, 40));

let gpu: WebgpuBackend;
let setupError: unknown = null;
test.before(async () => {
  try {
    gpu = await createWebgpuBackend();
    console.log(`# ${gpu.describe()}`);
  } catch (e) {
    setupError = e;
  }
});
test.after(() => { gpu?.dispose(); });

for (const dtype of COMPACT_DTYPES) {
  test(`${dtype} base: eval loss on webgpu equals js within ${TOL} relative`, async () => {
    if (setupError) throw setupError;
    const ckpt = compactCopy(base, dtype);
    const js = await new LlamaRuntime(ckpt, createJsBackend()).evalLoss(evalSeqs);
    const wg = await new LlamaRuntime(ckpt, gpu).evalLoss(evalSeqs);
    assert.ok(rel(wg.loss, js.loss) <= TOL, `webgpu ${wg.loss} vs js ${js.loss}`);
  });
}

test('q4_0 base: greedy generation on webgpu (KV-cached decoding) gives the tokens js gives', async () => {
  if (setupError) throw setupError;
  const ckpt = compactCopy(base, 'q4_0');
  const js = await new LlamaRuntime(ckpt, createJsBackend()).generate([tok.bosId!], { maxTokens: 24 });
  const wg = await new LlamaRuntime(ckpt, gpu).generate([tok.bosId!], { maxTokens: 24 });
  assert.equal(wg, js);
});

for (const dtype of ['q8_0', 'q4_0', 'q4_1'] as const) {
  test(`LoRA on a ${dtype} base: the loss curve on webgpu equals js within ${TOL} relative`, async () => {
    if (setupError) throw setupError;
    const data = pack(textExamples(text.slice(0, 16), tok, 32), 32);
    const curves: number[][] = [];
    for (const backend of [createJsBackend(), gpu]) {
      const model = new AdaptedModel(compactCopy(base, dtype));
      model.addAdapter('default', 'lora', { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'] }, { seed: 3 });
      const r = await fineTune({ model, adapter: 'default', backend, data, steps: 5, batch: 2, lr: 1e-2, decay: 'constant' });
      curves.push(r.losses);
      r.run.trainer.dispose();
    }
    const [js, wg] = curves as [number[], number[]];
    assert.is(wg.length, js.length);
    js.forEach((l, i) => assert.ok(rel(wg[i]!, l) <= TOL, `step ${i}: webgpu ${wg[i]} vs js ${l}`));
    assert.ok(js[js.length - 1]! < js[0]!, `the loss falls: ${js.join(', ')}`);
  });
}

test.run();
