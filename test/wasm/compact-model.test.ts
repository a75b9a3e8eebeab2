// stories260K with a compact base on the wasm backend: eval and greedy decoding equal its dequantised
// float32 copy exactly (dequantisation is exact and the kernels then do the same float32 arithmetic),
// and LoRA on a q8_0 or q4_0 base follows the js backend's loss curve within 1e-4 relative (the two
// backends differ only in float32 summation order).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { createWasmBackend } from '../../src/backends/wasm/index.js';
import { paragraphs } from '../../src/data/text.js';
import { pack, textExamples } from '../../src/data/dataset.js';
import { type LlamaCheckpoint, loadCheckpoint, tensorF32 } from '../../src/formats/checkpoint.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { COMPACT_DTYPES } from '../../src/quant/types.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { fineTune } from '../../src/train/finetune.js';
import { STORIES_GGUF, TINYSTORIES_VAL } from '../assets.js';

/** The float32 checkpoint holding exactly the values a compact one stores. */
const dequantisedCopy = (ckpt: LlamaCheckpoint): LlamaCheckpoint =>
  ({ ...ckpt, tensors: new Map([...ckpt.tensors].map(([k, t]) => [k, { shape: t.shape, data: tensorF32(t) }])) });

const tok = createTokenizer((await loadCheckpoint(STORIES_GGUF)).tokenizer!);
const text = paragraphs(readFileSync(TINYSTORIES_VAL, 'utf8'));
const evalSeqs = text.slice(0, 6).map((p) => [tok.bosId!, ...tok.encode(p)].slice(0, 48));
const wasm = await createWasmBackend({ threads: 2 });

for (const dtype of COMPACT_DTYPES) {
  test(`${dtype} base on wasm: eval and greedy equal its dequantised float32 copy exactly`, async () => {
    const compact = await loadCheckpoint(STORIES_GGUF, { baseDtype: dtype });
    assert.ok([...compact.tensors.values()].some((t) => 'bytes' in t && t.dtype === dtype), `no ${dtype} tensor loaded`);
    const rtC = new LlamaRuntime(compact, wasm), rtD = new LlamaRuntime(dequantisedCopy(compact), wasm);
    try {
      const [c, d] = [await rtC.evalLoss(evalSeqs), await rtD.evalLoss(evalSeqs)];
      assert.is(c.loss, d.loss);
      assert.equal(await rtC.generate([tok.bosId!], { maxTokens: 24 }), await rtD.generate([tok.bosId!], { maxTokens: 24 }));
    } finally {
      rtC.dispose();
      rtD.dispose();
    }
  });
}

for (const dtype of ['q8_0', 'q4_0', 'q4_1'] as const) {
  test(`LoRA on a ${dtype} base: the wasm loss curve follows js within 1e-4 relative, and falls`, async () => {
    const data = pack(textExamples(text.slice(0, 24), tok, 32), 32);
    const ckpt = await loadCheckpoint(STORIES_GGUF, { baseDtype: dtype });
    const curves: number[][] = [];
    for (const backend of [createJsBackend(), wasm]) {
      const model = new AdaptedModel(ckpt);
      model.addAdapter('default', 'lora', { r: 4, alpha: 8, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] }, { seed: 3 });
      const r = await fineTune({ model, adapter: 'default', backend, data, steps: 6, batch: 4, lr: 1e-2, decay: 'constant' });
      curves.push(r.losses);
      r.run.trainer.dispose();
    }
    const [js, w] = curves as [number[], number[]];
    js.forEach((l, i) => assert.ok(Math.abs(w[i]! - l) <= 1e-4 * Math.abs(l), `step ${i}: wasm ${w[i]} vs js ${l}`));
    assert.ok(w[5]! < w[0]!, w.join(', '));
  });
}

test.after(() => wasm.dispose());

test.run();
