// Compact frozen weights (f16, bf16, q8_0, q4_0, q4_1) in the model graph: the kernels read them directly, and
// a compact model must compute exactly what its dequantised float32 copy computes (dequantisation is
// exact, so on one backend the two runs do the same arithmetic), and within the float32/float64 gap of a
// float64 evaluation. The same on wasm and webgpu: test/wasm/compact-model.test.ts, test/webgpu/compact-model.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { paragraphs } from '../../src/data/text.js';
import { pack, textExamples } from '../../src/data/dataset.js';
import { type LlamaCheckpoint, loadCheckpoint, tensorF32 } from '../../src/formats/checkpoint.js';
import * as F from '../../src/graph/api.js';
import { gradients } from '../../src/graph/autodiff.js';
import { Graph } from '../../src/graph/graph.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { type CompactDType, COMPACT_DTYPES } from '../../src/quant/index.js';
import { planGraph } from '../../src/scheduler/plan.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { fineTune } from '../../src/train/finetune.js';
import { STORIES_GGUF, TINYSTORIES_VAL } from '../assets.js';
import { compactCopy } from '../helpers.js';
import { readFileSync } from 'node:fs';


/** The float32 checkpoint holding exactly the values a compact one stores. */
function dequantisedCopy(ckpt: LlamaCheckpoint): LlamaCheckpoint {
  return { ...ckpt, tensors: new Map([...ckpt.tensors].map(([k, t]) => [k, { shape: t.shape, data: tensorF32(t) }])) };
}

const base = await loadCheckpoint(STORIES_GGUF);
const tok = createTokenizer(base.tokenizer!);
const evalSeqs = paragraphs(readFileSync(TINYSTORIES_VAL, 'utf8')).slice(0, 6).map((p) => [tok.bosId!, ...tok.encode(p)].slice(0, 48));

for (const dtype of COMPACT_DTYPES) {
  test(`${dtype} base: eval and greedy equal its dequantised float32 copy exactly, and a float64 evaluation within 1e-3 (js)`, async () => {
    const compact = compactCopy(base, dtype), deq = dequantisedCopy(compact);
    const rtC = new LlamaRuntime(compact, createJsBackend());
    const rtD = new LlamaRuntime(deq, createJsBackend());
    const rt64 = new LlamaRuntime(deq, createJsBackend({ precision: 'f64' }));
    const [c, d, d64] = [await rtC.evalLoss(evalSeqs), await rtD.evalLoss(evalSeqs), await rt64.evalLoss(evalSeqs)];
    assert.is(c.loss, d.loss);
    assert.ok(Math.abs(c.loss - d64.loss) <= 1e-3, `${c.loss} vs float64 ${d64.loss}`);
    // The quantisation changes the model: q4_0 visibly, f16 barely; all stay close to the float32 file.
    const f32 = await new LlamaRuntime(base, createJsBackend()).evalLoss(evalSeqs);
    assert.ok(Math.abs(c.loss - f32.loss) < 0.2, `${dtype} eval ${c.loss} vs float32 ${f32.loss}`);
    const gc = await rtC.generate([tok.bosId!], { maxTokens: 24 });
    const gd = await rtD.generate([tok.bosId!], { maxTokens: 24 });
    assert.equal(gc, gd);
    // The weights are stored compact in the graph, not expanded.
    assert.ok([...compact.tensors.values()].some((t) => 'bytes' in t));
  });
}

test('LoRA on a q8_0 base trains exactly as on its dequantised float32 copy (js), and the loss falls', async () => {
  const data = pack(textExamples(paragraphs(readFileSync(TINYSTORIES_VAL, 'utf8')).slice(0, 24), tok, 32), 32);
  const losses: number[][] = [];
  for (const ckpt of [compactCopy(base, 'q8_0'), dequantisedCopy(compactCopy(base, 'q8_0'))]) {
    const model = new AdaptedModel(ckpt);
    model.addAdapter('default', 'lora', { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'] }, { seed: 3 });
    const r = await fineTune({ model, adapter: 'default', backend: createJsBackend(), data, steps: 6, batch: 4, lr: 1e-2, decay: 'constant' });
    losses.push(r.losses);
    r.run.trainer.dispose();
  }
  assert.equal(losses[0], losses[1]);
  assert.ok(losses[0]![5]! < losses[0]![0]!, losses[0]!.join(', '));
});

test('DoRA reads a compact weight through dequantize', async () => {
  const model = new AdaptedModel(compactCopy(base, 'q4_0'));
  model.addAdapter('default', 'lora', { r: 2, alpha: 4, targetModules: ['q_proj'], useDora: true }, { seed: 1 });
  const deqModel = new AdaptedModel(dequantisedCopy(compactCopy(base, 'q4_0')));
  deqModel.addAdapter('default', 'lora', { r: 2, alpha: 4, targetModules: ['q_proj'], useDora: true }, { seed: 1 });
  const a = await model.runtime(createJsBackend()).evalLoss(evalSeqs.slice(0, 2));
  const b = await deqModel.runtime(createJsBackend()).evalLoss(evalSeqs.slice(0, 2));
  assert.is(a.loss, b.loss);
});

test('graph rules: compact weights are frozen, read only where a kernel can, and need whole 32-blocks for q types', () => {
  const g = new Graph();
  const w = g.param('w', [8, 32], 'q8_0');
  const x = g.input('x', [3, 32]);
  assert.equal(F.matmul(x, w, { transB: true }).shape, [3, 8]);
  assert.throws(() => F.add(w, w), /compact q8_0 weight, which add cannot read; convert it with dequantize/);
  assert.equal(F.add(F.dequantize(w), F.dequantize(w)).shape, [8, 32]);
  assert.throws(() => F.matmul(F.transpose(x, [1, 0]), w, { transA: true, transB: true }), /compact q8_0 B must be 2-D, with A not transposed/);
  assert.throws(() => g.param('bad', [4, 48], 'q4_0'), /multiple of 32/);
  assert.throws(() => gradients(F.sum(F.matmul(x, w, { transB: true })), [w]), /only f32 values can have gradients/);
  // The activation gradient through a compact weight is allowed (dy·W), the weight's is not.
  const loss = F.sum(F.matmul(x, w, { transB: true }));
  const d = gradients(loss, [x]).get(x);
  assert.equal(d.shape, [3, 32]);
});

test('weights live outside the arena: the planned arena does not grow with the weights', () => {
  const arena = (rows: number, dtype: 'f32' | CompactDType) => {
    const g = new Graph();
    const x = g.input('x', [4, 64]);
    const w = g.param('w', [rows, 64], dtype);
    const y = F.matmul(x, w, { transB: true });
    g.markOutput(y);
    const plan = planGraph(g);
    assert.equal(plan.weights, [{ value: w.id, bytes: dtype === 'f32' ? rows * 64 * 4 : dtype === 'q4_0' ? rows * 64 * (0.5 + 0.125) : rows * 64 * 2 }]);
    assert.is(plan.offsets[w.id], -1);
    return plan.arenaElems;
  };
  // The arena holds x and y only: y grows with rows, the weight does not count.
  assert.is(arena(64, 'f32'), arena(64, 'q4_0'));
  assert.ok(arena(1024, 'f32') < 4 * 64 + 4 * 1024 + 2 * 64);
  assert.is(arena(64, 'f16'), arena(64, 'f32'));
});

test.run();
