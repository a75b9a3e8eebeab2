// An adapter loaded from a PEFT folder with modules_to_save = ["lm_head"] on a tied model replaces the
// output head with the saved one: training must see that head as inference does. The training graph's
// first loss equals the evaluation loss of the same model on the same rows, and differs from the loss with
// the tied head (so the check can fail).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { loadPeft } from '../../src/adapters/peft.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { pack } from '../../src/data/dataset.js';
import { fineTune } from '../../src/train/finetune.js';
import { randn } from '../helpers.js';
import { peftFiles, peftLoraConfig } from '../lora/peft-rules.js';
import { stories } from '../methods/helpers.js';

const base = await stories();
const V = base.config.vocabSize, D = base.config.dim;

test('a saved lm_head (modules_to_save) on a tied model: the first training loss is its evaluation loss', async () => {
  assert.ok(base.config.tiedEmbeddings);
  const A = randn(2 * D, 3, 0.1), head = randn(V * D, 4, 0.3);
  const tensors = {
    'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': { shape: [2, D], data: Float32Array.from(A) },
    'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight': { shape: [D, 2], data: new Float32Array(D * 2) },
    'base_model.model.lm_head.weight': { shape: [V, D], data: Float32Array.from(head) },
  };
  const files = peftFiles(peftLoraConfig({ r: 2, lora_alpha: 4, target_modules: ['q_proj'], layers_to_transform: [0], modules_to_save: ['lm_head'] }), tensors);
  const ids = Array.from({ length: 4 * 17 }, (_, i) => (i * 31 + 7) % V);
  const examples = [0, 1, 2, 3].map((r) => ({ ids: ids.slice(r * 17, r * 17 + 17), target: Uint8Array.from({ length: 17 }, (_, i) => (i ? 1 : 0)) }));
  const data = pack(examples, 16, 0);
  const backend = createJsBackend();
  const evalLoss = async (m: AdaptedModel) => {
    const rt = m.runtime(backend);
    const r = await rt.evalTargets(examples.map((e) => e.ids.slice(0, 16)), examples.map((e) => e.ids.slice(1, 17)));
    rt.dispose();
    return r.loss;
  };
  const model = new AdaptedModel(base);
  loadPeft(model, 'a', files);
  const want = await evalLoss(model);
  const tied = await evalLoss(new AdaptedModel(base));
  assert.ok(Math.abs(want - tied) > 0.1, `the saved head changes nothing (${want} vs ${tied})`);
  const r = await fineTune({ model, adapter: 'a', backend, data, steps: 1, batch: 4, lr: 1e-9 });
  assert.ok(Math.abs(r.losses[0]! - want) <= 1e-5 * want, `training loss ${r.losses[0]} vs evaluation ${want}`);
  r.run.trainer.dispose();
});

test.run();
