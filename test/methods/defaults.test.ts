// Every method works with its defaults: each has a default learning rate inside fineTune's range with its
// source written down (in the code, the method's README and the project README); prefix tuning starts from
// real tokens' keys and values, exactly the base model reading that text first, so its initial loss is the
// base's (the random init of PEFT starts nats above); AdaLoRA's schedule scales with the run's length.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { adaloraSchedule } from '../../src/adapters/adalora/allocator.js';
import { getMethod, methodNames } from '../../src/adapters/registry.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { shiftNames } from '../../src/data/builtin-task.js';
import { batchAt, pack, textExamples } from '../../src/data/dataset.js';
import { paragraphs } from '../../src/data/text.js';
import { withRopeLayout } from '../../src/formats/checkpoint.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { FINE_TUNE_RANGES, fineTune } from '../../src/train/finetune.js';
import { inRange } from '../../src/util/ranges.js';
import { TINYSTORIES_VAL } from '../assets.js';
import { hfLayoutGap, stories } from './helpers.js';

const readme = readFileSync('README.md', 'utf8');

for (const name of methodNames()) {
  test(`${name}: a default learning rate in range, with its source in the code, its README and the project README`, () => {
    const m = getMethod(name);
    assert.ok(inRange(m.defaultLr.value, FINE_TUNE_RANGES.lr), `${m.defaultLr.value}`);
    assert.ok(m.defaultLr.source.length > 20, 'the source says where the value comes from');
    const folder = readFileSync(`src/adapters/${name}/README.md`, 'utf8');
    const written = folder.match(/Default learning rate \(`defaultLr`\): ([0-9.e-]+)\. Source: (.+)\.\n/);
    assert.ok(written, `src/adapters/${name}/README.md states the default learning rate`);
    assert.is(Number(written![1]), m.defaultLr.value);
    assert.is(written![2], m.defaultLr.source);
    const row = readme.split('\n').find((l) => l.includes(`\`src/adapters/${name}/\``));
    assert.ok(row?.includes(`| ${written![1]} |`), `the README's table of methods lists ${written![1]} for ${name}`);
  });
}

/** Held-out rows of the names-task, and the mean loss of a model on them. */
async function heldOut() {
  const ckpt = await stories();
  const tok = createTokenizer(ckpt.tokenizer!);
  const paras = paragraphs(readFileSync(TINYSTORIES_VAL, 'utf8')).slice(-12).map(shiftNames);
  const held = pack(textExamples(paras, tok, 64), 64, 0);
  const rows = Array.from({ length: held.rows }, (_, r) => batchAt(held, r, 1));
  const backend = createJsBackend();
  const loss = async (m: AdaptedModel) => {
    const rt = m.runtime(backend);
    const r = await rt.evalTargets(rows.map((b) => Array.from(b.ids)), rows.map((b) => Array.from(b.targets)), { batch: 4, seq: 64 });
    rt.dispose();
    return r.loss;
  };
  return { ckpt, tok, held, loss, backend };
}

test('prefix tuning starts at the base model\'s loss (within 0.1 nats); PEFT\'s random init starts above it by more than 2', async () => {
  const { ckpt, loss } = await heldOut();
  const base = await loss(new AdaptedModel(ckpt));
  const init = new AdaptedModel(ckpt);
  init.addAdapter('p', 'prefix-tuning', {}, { seed: 1 });
  const random = new AdaptedModel(ckpt);
  random.addAdapter('p', 'prefix-tuning', { prefixInit: 'random' }, { seed: 1 });
  const [a, r] = [await loss(init), await loss(random)];
  assert.ok(Math.abs(a - base) < 0.1, `activation init ${a} vs base ${base}`);
  assert.ok(r > base + 2, `random init ${r} vs base ${base}`);
});

test('the initial prefix is the base model reading the init text first: equal losses on text + row and on the row (1e-5), in both rotary layouts', async () => {
  const { ckpt: pairs, tok, held, backend } = await heldOut();
  for (const ckpt of [pairs, withRopeLayout(pairs, 'half')]) {
    const P = 7, text = 'Ruby and Otto went to the park.';
    const model = new AdaptedModel(ckpt);
    model.addAdapter('p', 'prefix-tuning', { numVirtualTokens: P, initText: text }, { seed: 1 });
    const ids = tok.encode(text, { bos: true }).slice(-P);
    const rows = Array.from({ length: 3 }, (_, r) => batchAt(held, r, 1));
    const withPrefix = model.runtime(backend), base = new AdaptedModel(ckpt).runtime(backend);
    for (const b of rows) {
      const a = await withPrefix.evalTargets([Array.from(b.ids)], [Array.from(b.targets)], { seq: 64 });
      const r = await base.evalTargets([[...ids, ...b.ids]], [[...ids.map(() => -100), ...b.targets]], { seq: 64 + P });
      assert.is(a.tokens, r.tokens);
      assert.ok(Math.abs(a.loss - r.loss) < 1e-5 * Math.max(1, r.loss), `${a.loss} vs ${r.loss}`);
    }
    withPrefix.dispose();
    base.dispose();
  }
  // Saved in Hugging Face's orientation, the initial prefix works on a rotate-half base as on this one.
  const m = new AdaptedModel(pairs);
  m.addAdapter('p', 'prefix-tuning', { numVirtualTokens: 5 }, { seed: 1 });
  assert.ok(await hfLayoutGap(m, 'p') < 1e-4);
});

test('a few steps of prefix tuning with its defaults lower the held-out loss below the base', async () => {
  const { ckpt, tok, loss, backend } = await heldOut();
  const paras = paragraphs(readFileSync(TINYSTORIES_VAL, 'utf8')).slice(0, 64).map(shiftNames);
  const data = pack(textExamples(paras, tok, 64), 64, 0);
  const base = await loss(new AdaptedModel(ckpt));
  const model = new AdaptedModel(ckpt);
  model.addAdapter('p', 'prefix-tuning', { numVirtualTokens: 8 }, { seed: 1 });
  await fineTune({ model, adapter: 'p', backend, data, steps: 6, batch: 2, seed: 1 });
  const after = await loss(model);
  assert.ok(after < base, `after ${after} vs base ${base}`);
});

test("AdaLoRA's schedule scales with the run: 10% warmup, 60% final, ΔT 0.1% (≥ 1); set values are kept", () => {
  assert.equal(adaloraSchedule({}, 40), { tinit: 4, tfinal: 24, deltaT: 1 });
  assert.equal(adaloraSchedule({}, 20000), { tinit: 2000, tfinal: 12000, deltaT: 20 });
  assert.equal(adaloraSchedule({ tinit: 0, deltaT: 5 }, 100), { tinit: 0, tfinal: 60, deltaT: 5 });
});

test('an AdaLoRA adapter trained with the defaults records the schedule it used', async () => {
  const ckpt = await stories();
  const model = new AdaptedModel(ckpt);
  const a = model.addAdapter('a', 'adalora', { initR: 4, targetR: 2 }, { seed: 1 });
  const tok = createTokenizer(ckpt.tokenizer!);
  const data = pack(textExamples(['Once upon a time there was a cat named Ruby. She liked to play.'], tok, 16), 16, 0);
  await fineTune({ model, adapter: 'a', backend: createJsBackend(), data, steps: 10, batch: 1, seed: 1 });
  const c = a.config as { tinit?: number; tfinal?: number; deltaT?: number; totalStep?: number };
  assert.equal([c.tinit, c.tfinal, c.deltaT, c.totalStep], [1, 6, 1, 10]);
  const peft = a.method.toPeftConfig(a.config, ckpt.config);
  assert.equal([peft.tinit, peft.tfinal, peft.deltaT, peft.total_step], [1, 6, 1, 10]);
});

test.run();
