// Lingo (src/adapters/lingo, rank sampling in src/adapters/adalora/allocator.ts): with p = 0 the run is
// AdaLoRA's exactly (losses and rank patterns equal); with p > 0 the patterns differ from AdaLoRA's by flips,
// re-introduced triplets restart from a zero singular value, runs are reproducible, the folder saves as
// AdaLoRA's; the language prefix goes before every example.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import type { AdaloraConfig } from '../../src/adapters/adalora/index.js';
import { savePeft } from '../../src/adapters/peft.js';
import { withTextPrefix } from '../../src/data/text-prefix.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { stories, trainHero } from './helpers.js';

const base = { initR: 4, targetR: 2, tinit: 2, tfinal: 2, deltaT: 2, targetModules: ['q_proj', 'v_proj', 'down_proj'] };

async function run(method: string, extra: Record<string, unknown>) {
  const model = new AdaptedModel(await stories());
  const a = model.addAdapter('t', method, { ...base, ...extra }, { seed: 1 });
  const patterns: string[] = [];
  const r = await trainHero(model, 't', { steps: 10, lr: 3e-2, onStep: () => patterns.push(JSON.stringify((a.config as AdaloraConfig).rankPattern ?? null)) });
  return { model, a, losses: r.losses, patterns };
}

test('rank sampling 0 is AdaLoRA exactly; p > 0 flips triplets, reproducibly', async () => {
  const ada = await run('adalora', {});
  const zero = await run('lingo', { rankSampling: 0 });
  assert.equal(zero.losses, ada.losses);
  assert.equal(zero.patterns, ada.patterns);
  const [s1, s2] = [await run('lingo', { rankSampling: 0.5 }), await run('lingo', { rankSampling: 0.5 })];
  assert.equal(s1.patterns, s2.patterns, 'seeded by the step');
  assert.not.equal(s1.patterns, ada.patterns, 'p = 0.5 changes the allocation');
  assert.is((s1.a.config as AdaloraConfig).rankSampling, 0.5);
  assert.is(((await run('lingo', {})).a.config as AdaloraConfig).rankSampling, 0.1, 'the method default');
  // Saved as an AdaLoRA folder that PEFT reads unchanged: no key of ours in it.
  const cfg = JSON.parse(savePeft(s1.model, 't').config);
  assert.is(cfg.peft_type, 'ADALORA');
  assert.not.ok('rank_sampling' in cfg || 'rankSampling' in cfg);
});

test('at an allocation, every triplet the budget prunes gets a zero singular value, re-introduced ones included', async () => {
  // Two controllers over the same importance history: AdaLoRA's (p = 0) and Lingo's (p = 0.9).
  const drive = async (p: number) => {
    const model = new AdaptedModel(await stories());
    const a = model.addAdapter('t', 'lingo', { ...base, rankSampling: p, totalStep: 10 }, { seed: 1 });
    const ctl = model.controller('t', 10)!;
    let k = 0;
    const values = new Map<string, Float32Array>([...a.params].map(([key, t]) => [key, Float32Array.from(t.data, () => Math.sin(++k) + 1.5)]));
    const written = new Map<string, Float32Array>();
    const access = {
      values: async (keys: readonly string[]) => new Map(keys.map((key) => [key, values.get(key)!])),
      gradients: async (keys: readonly string[]) => new Map(keys.map((key) => [key, Float32Array.from(values.get(key)!, (_, i) => Math.cos(i + key.length))])),
      write: (key: string, data: Float32Array) => { written.set(key, data); values.set(key, Float32Array.from(data)); },
      setTrainable: () => {},
    };
    // Steps 1–4: importance accumulates; step 4 is the first allocation (t > tinit, t % ΔT = 0).
    for (let step = 1; step <= 4; step++) { await ctl.beforeUpdate!(step, access); await ctl.afterUpdate!(step, access); }
    return { pattern: (a.config as AdaloraConfig).rankPattern!, written };
  };
  const [ada, lingo] = [await drive(0), await drive(0.9)];
  let back = 0;
  for (const [key, keep] of Object.entries(ada.pattern)) {
    const e = lingo.written.get(key)!;
    keep.forEach((kept, q) => {
      if (!kept) assert.is(e[q], 0, `${key}[${q}]: pruned by the budget, so its singular value restarts at 0`);
      if (!kept && lingo.pattern[key]![q]) back++;
    });
  }
  assert.ok(back > 0, 'p = 0.9 brings triplets back');
});

test('the language prefix goes before every text', async () => {
  const tok = createTokenizer((await stories()).tokenizer!);
  const p = withTextPrefix(tok, 'DNA sequence: ');
  assert.equal(p.encode('ACGT', { bos: true }), tok.encode('DNA sequence: ACGT', { bos: true }));
  assert.is(p.decode(p.encode('ACGT')), tok.decode(tok.encode('DNA sequence: ACGT')));
  assert.is(withTextPrefix(tok, ''), tok);
});

test.run();
