// The encoder classifiers' training gradients against central finite differences of the loss, on float64 js:
// padded batches (masked keys), the erf GELU, LayerNorm, the BERT pooler's tanh (a fresh, trained pooler),
// DistilBERT's ReLU head and token classification with unscored positions; LoRA's A and B and the head's
// tensors. Tolerance 1e-5 relative to the largest gradient entry probed (eps 1e-3: truncation ~1e-7).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createJsBackend } from '../../src/backends/js/index.js';
import { loadEncoderFolder } from '../../src/model/encoders/checkpoint.js';
import { EncoderClassifier, type EncodedExample } from '../../src/model/encoders/classifier.js';
import type { EncoderKind, EncoderTask } from '../../src/model/encoders/config.js';
import { gaussian, seededRandom } from '../../src/util/random.js';
import { DIMS, writeEncoder } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-enc-grad-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const f64 = createJsBackend({ precision: 'f64' });

function batch(task: EncoderTask, labels: number): EncodedExample[] {
  const random = seededRandom(8);
  return [6, 3, 5].map((n, r) => {
    const ids = Array.from({ length: n }, () => 2 + Math.floor(random() * (DIMS.vocab - 2)));
    return { ids, labels: task === 'seq-cls' ? [r % labels] : ids.map((_, t) => (t === 0 || t === n - 1 ? -100 : (t + r) % labels)) };
  });
}

for (const [kind, task] of [['bert', 'seq-cls'], ['distilbert', 'seq-cls'], ['roberta', 'token-cls']] as [EncoderKind, EncoderTask][]) {
  test(`${kind} ${task}: gradients match finite differences`, async () => {
    const ckpt = await loadEncoderFolder(writeEncoder(join(dir, `${kind}-${task}`), kind, { seed: 6 }));
    // No pooler in the base: BERT's is then fresh and trained, so the tanh's gradient is checked too.
    for (const k of [...ckpt.tensors.keys()]) if (k.includes('pooler')) ckpt.tensors.delete(k);
    const targets = kind === 'distilbert' ? ['q_lin', 'v_lin', 'lin1'] : ['query', 'value', 'intermediate.dense'];
    const cls = EncoderClassifier.create(ckpt, task, ['a', 'b', 'c'], 'lora', { r: 2, alpha: 4, targetModules: targets }, { seed: 4 });
    const random = seededRandom(12), a = cls.adapterState;
    for (const [k, p] of a.params) if (k.includes('lora_B')) for (let i = 0; i < p.data.length; i++) p.data[i] = 0.3 * gaussian(random);
    const data = batch(task, 3);
    const { gradients } = await cls.lossGradients(f64, data);
    const probes: [string, Float32Array][] = [];
    for (const [k, p] of a.params) if (/layer\.[01]\..*(query|q_lin|intermediate)/.test(k)) probes.push([k, p.data]);
    for (const m of cls.headModules) probes.push([`${m}.weight`, (a.baseOverrides.get(`${m}.weight`) as { data: Float32Array }).data]);
    if (kind === 'bert') assert.ok(cls.headModules.includes('bert.pooler.dense'));
    let worst = 0, largest = 0;
    for (const [name, values] of probes) {
      const grad = gradients.get(name)!;
      assert.ok(grad, `no gradient for ${name}`);
      for (const i of [0, Math.floor(values.length / 2), values.length - 1]) {
        const x = values[i]!;
        values[i] = x + 1e-3; const up = values[i]!;
        const lossUp = (await cls.lossGradients(f64, data)).loss;
        values[i] = x - 1e-3; const down = values[i]!;
        const lossDown = (await cls.lossGradients(f64, data)).loss;
        values[i] = x;
        const fd = (lossUp - lossDown) / (up - down);
        worst = Math.max(worst, Math.abs(fd - grad[i]!));
        largest = Math.max(largest, Math.abs(grad[i]!));
      }
    }
    assert.ok(largest > 1e-3, `gradients vanish (${largest})`);
    assert.ok(worst < 1e-5 * largest, `max |fd − gradient| ${worst} (largest gradient ${largest})`);
  });
}

test.run();
