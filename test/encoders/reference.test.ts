// BERT, RoBERTa and DistilBERT classifiers against the float64 PyTorch reference (test/reference/bert_ref.py,
// written from the Hugging Face equations): small random models in Hugging Face layout, right-padded batches
// of different lengths, with the base head and with a LoRA adapter (random nonzero B, perturbed head) saved as
// a PEFT folder that the reference reads. Logits within 1e-4 on js float32, wasm and webgpu, within 1e-9 on js float64.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Backend } from '../../src/backends/backend.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { loadEncoderFolder } from '../../src/model/encoders/checkpoint.js';
import { EncoderClassifier } from '../../src/model/encoders/classifier.js';
import type { EncoderKind, EncoderTask } from '../../src/model/encoders/config.js';
import { gaussian, seededRandom } from '../../src/util/random.js';
import { otherBackends } from '../backends/backends.js';
import { readF64, runReference } from '../reference/python.js';
import { DIMS, writeEncoder } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-enc-ref-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const LABELS = ['neg', 'neu', 'pos'];
const LENGTHS = [7, 4, 9];
const T = Math.max(...LENGTHS);

function rows(kind: EncoderKind): { ids: number[][]; padded: number[][] } {
  const pad = kind === 'roberta' ? 1 : 0, random = seededRandom(5);
  const ids = LENGTHS.map((n) => Array.from({ length: n }, () => 2 + Math.floor(random() * (DIMS.vocab - 2))));
  return { ids, padded: ids.map((r) => [...r, ...Array(T - r.length).fill(pad)]) };
}

/** Our logits of every row, flattened to the reference's layout (token-cls: [B, T, L] with pad rows zero, compared on valid positions). */
async function ours(cls: EncoderClassifier, backend: Backend, ids: number[][]): Promise<Float64Array[]> {
  return cls.logits(backend, ids.map((r) => ({ ids: r })), 8);
}

function gapTo(refAll: Float64Array, got: Float64Array[], task: EncoderTask): number {
  const L = LABELS.length;
  let gap = 0;
  got.forEach((z, b) => {
    const base = task === 'seq-cls' ? b * L : b * T * L;
    for (let i = 0; i < z.length; i++) gap = Math.max(gap, Math.abs(z[i]! - refAll[base + i]!));
  });
  return gap;
}

for (const [kind, task] of [['bert', 'seq-cls'], ['roberta', 'seq-cls'], ['distilbert', 'seq-cls'], ['bert', 'token-cls']] as [EncoderKind, EncoderTask][]) {
  test(`${kind} ${task}: logits match the float64 reference within 1e-4 (padded batch, base head and LoRA)`, async () => {
    const model = writeEncoder(join(dir, `${kind}-${task}`), kind, { seed: 3, labels: LABELS, task });
    const ckpt = await loadEncoderFolder(model);
    const targets = kind === 'distilbert' ? ['q_lin', 'v_lin', 'ffn.lin1'] : ['query', 'value', 'intermediate.dense'];
    const cls = EncoderClassifier.create(ckpt, task, LABELS, 'lora', { r: 2, alpha: 4, targetModules: targets }, { seed: 2 });
    const { ids, padded } = rows(kind);
    const js = createJsBackend();
    const base = await ours(cls, js, ids);
    // A trained-looking adapter: random B (PEFT starts it at zero) and a moved head.
    const random = seededRandom(11), a = cls.adapterState;
    for (const [k, p] of a.params) if (k.includes('lora_B')) for (let i = 0; i < p.data.length; i++) p.data[i] = 0.3 * gaussian(random);
    for (const [, t] of a.baseOverrides) { const d = (t as { data: Float32Array }).data; for (let i = 0; i < d.length; i++) d[i]! += 0.1 * gaussian(random); }
    const files = cls.save();
    const adapter = join(dir, `${kind}-${task}-lora`);
    mkdirSync(adapter, { recursive: true });
    writeFileSync(join(adapter, 'adapter_config.json'), files.config);
    writeFileSync(join(adapter, 'adapter_model.safetensors'), files.weights);
    const adapted = await ours(cls, js, ids);
    const baseRef = join(dir, `${kind}-${task}-base.f64`), loraRef = join(dir, `${kind}-${task}-lora.f64`);
    runReference('bert_ref.py', { model, task, runs: [
      { adapter: null, ids: padded, lengths: LENGTHS, logits: baseRef },
      { adapter, ids: padded, lengths: LENGTHS, logits: loraRef },
    ] }, dir);
    const [rb, rl] = [readF64(baseRef), readF64(loraRef)];
    const g1 = gapTo(rb, base, task), g2 = gapTo(rl, adapted, task);
    assert.ok(g1 < 1e-4, `base: max |logit difference| ${g1}`);
    assert.ok(g2 < 1e-4, `LoRA: max |logit difference| ${g2}`);
    // The adapter changes the logits well beyond the tolerance, so the comparison sees it.
    assert.ok(gapTo(rl, base, task) > 1e-2, 'the adapter made no difference');
    // How much a row is padded does not matter: alone (padded to 8) it gives the logits it has in the batch (padded to 16).
    const alone = await ours(cls, js, [ids[1]!]);
    assert.ok(Math.max(...alone[0]!.map((v, i) => Math.abs(v - adapted[1]![i]!))) < 1e-5, 'padded and unpadded rows differ');
    // The saved folder reloads to the same logits.
    const again = EncoderClassifier.load(ckpt, { ...files }, adapter);
    const reloaded = await ours(again, js, ids);
    assert.ok(gapTo(rl, reloaded, task) < 1e-4, 'reloaded adapter differs');
    // On float64 js the only differences are rounding: the equations are the reference's.
    const g64 = gapTo(rl, await ours(cls, createJsBackend({ precision: 'f64' }), ids), task);
    assert.ok(g64 < 1e-9, `js float64: max |logit difference| ${g64}`);
    for (const { name, backend } of await otherBackends()) {
      const g = gapTo(rl, await ours(cls, backend, ids), task);
      assert.ok(g < 1e-4, `${name}: max |logit difference| ${g}`);
    }
  });
}

test.run();
