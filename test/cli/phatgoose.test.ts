// train --method phatgoose --experts DIR: each expert folder's gate trained, one PHATGOOSE folder saved that
// eval --adapter routes (its loss differs from the base's and from each expert's); bad inventories are
// refused by name before any training.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { savePeft } from '../../src/adapters/peft.js';
import { STORIES_GGUF } from '../assets.js';
import { randomizeParams, stories } from '../methods/helpers.js';
import { cli } from './run.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-phatgoose-'));
const model = new AdaptedModel(await stories());
const save = async (name: string, method: string, config: Record<string, unknown>, into = 'inv') => {
  model.addAdapter(name, method, config, { seed: name.length });
  randomizeParams(model, name, 0.2);
  const files = savePeft(model, name);
  await mkdir(join(dir, into, name), { recursive: true });
  await writeFile(join(dir, into, name, 'adapter_config.json'), files.config);
  await writeFile(join(dir, into, name, 'adapter_model.safetensors'), files.weights);
};
await save('alpha', 'lora', { r: 2, targetModules: ['q_proj', 'v_proj'] });
await save('beta', 'lora', { r: 4, targetModules: ['q_proj', 'v_proj'] });
await save('gamma', 'lora', { r: 4, targetModules: ['q_proj', 'v_proj'] });
await save('odd', 'lora', { r: 2, targetModules: ['q_proj'] }, 'mixed');
await save('delta', 'lora', { r: 2, targetModules: ['q_proj', 'v_proj'] }, 'mixed');
await save('epsilon', 'lora', { r: 2, targetModules: ['q_proj', 'v_proj'] }, 'bases');
await save('zeta', 'lora', { r: 2, targetModules: ['q_proj', 'v_proj'] }, 'bases');
for (const [e, base] of [['epsilon', 'one/model'], ['zeta', 'some/other-model']]) {
  const cfg = join(dir, 'bases', e!, 'adapter_config.json');
  writeFileSync(cfg, JSON.stringify({ ...JSON.parse(readFileSync(cfg, 'utf8')) as object, base_model_name_or_path: base }));
}
await save('own', 'lora', { r: 2, targetModules: ['q_proj', 'v_proj'] }, 'owndata');
await save('shared', 'lora', { r: 2, targetModules: ['q_proj', 'v_proj'] }, 'owndata');
writeFileSync(join(dir, 'owndata', 'own', 'gate-data.txt'), 'Tom had a red ball. He liked to play with it in the sun.\n\nThe cat sat on the mat and looked at the bird.');
writeFileSync(join(dir, 'held.txt'), 'Once upon a time there was a little dragon named Pip.\n\nLily went to the park with her mom.');
const common = ['--model', STORIES_GGUF, '--backend', 'js', '--batch', '2', '--seq', '32'];
const evalLoss = (adapter?: string) => {
  const r = cli(['eval', '--model', STORIES_GGUF, '--backend', 'js', '--data', join(dir, 'held.txt'), '--json', ...(adapter ? ['--adapter', adapter] : [])]);
  assert.is(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { loss: number }).loss;
};

test('gates trained per expert, saved as one routed folder that eval uses', () => {
  const out = join(dir, 'pg');
  const r = cli(['train', ...common, '--method', 'phatgoose', '--experts', join(dir, 'inv'), '--gate-steps', '2', '--top-k', '2', '--out', out]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /gate alpha: 2 steps/);
  assert.match(r.stderr, /gate gamma: 2 steps/);
  const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as { peft_type: string; experts: { name: string; r: number }[]; top_k: number };
  assert.is(cfg.peft_type, 'PHATGOOSE');
  assert.equal(cfg.experts.map((e) => [e.name, e.r]), [['alpha', 2], ['beta', 4], ['gamma', 4]]);
  assert.is(cfg.top_k, 2);
  const routed = evalLoss(out), base = evalLoss();
  assert.ok(Number.isFinite(routed) && Math.abs(routed - base) > 1e-4, `routed ${routed}, base ${base}`);
  for (const e of ['alpha', 'beta', 'gamma']) assert.ok(Math.abs(routed - evalLoss(join(dir, 'inv', e))) > 1e-6, `routing is not expert ${e} alone`);
  // --route-top-k overrides the saved k: 3 of 3 routes differently from 2 of 3; 4 and a LoRA folder are refused.
  const all = cli(['eval', '--model', STORIES_GGUF, '--backend', 'js', '--data', join(dir, 'held.txt'), '--json', '--adapter', out, '--route-top-k', '3']);
  assert.is(all.code, 0, all.stderr);
  const allLoss = (JSON.parse(all.stdout.trim().split('\n').pop()!) as { loss: number }).loss;
  assert.ok(Math.abs(allLoss - routed) > 1e-6, `k = 3 ${allLoss}, k = 2 ${routed}`);
  const over = cli(['eval', '--model', STORIES_GGUF, '--backend', 'js', '--data', join(dir, 'held.txt'), '--adapter', out, '--route-top-k', '4']);
  assert.is(over.code, 2);
  assert.match(over.stderr, /--route-top-k 4 exceeds the 3 experts/);
  const lora = cli(['eval', '--model', STORIES_GGUF, '--backend', 'js', '--data', join(dir, 'held.txt'), '--adapter', join(dir, 'inv', 'alpha'), '--route-top-k', '1']);
  assert.match(lora.stderr, /--route-top-k goes with a PHATGOOSE --adapter \(this one is lora\)/);
  const gen = cli(['generate', '--model', STORIES_GGUF, '--backend', 'js', '--prompt', 'Once', '--max-tokens', '4', '--adapter', out, '--route-top-k', '1']);
  assert.is(gen.code, 0, gen.stderr);
});

test('bad inventories and options are refused before any training', () => {
  const none = cli(['train', ...common, '--method', 'phatgoose', '--out', join(dir, 'x')]);
  assert.is(none.code, 2);
  assert.match(none.stderr, /--method phatgoose needs --experts DIR/);
  const k = cli(['train', ...common, '--method', 'phatgoose', '--experts', join(dir, 'inv'), '--top-k', '4', '--out', join(dir, 'x')]);
  assert.match(k.stderr, /--top-k 4 exceeds the 3 experts/);
  const mixed = cli(['train', ...common, '--method', 'phatgoose', '--experts', join(dir, 'mixed'), '--out', join(dir, 'x')]);
  assert.is(mixed.code, 1);
  assert.match(mixed.stderr, /expert 'odd' adapts other modules than 'delta'/);
  const bases = cli(['train', ...common, '--method', 'phatgoose', '--experts', join(dir, 'bases'), '--out', join(dir, 'x')]);
  assert.is(bases.code, 2);
  assert.match(bases.stderr, /experts of different base models \('epsilon' on one\/model, 'zeta' on some\/other-model\)/);
  const empty = cli(['train', ...common, '--method', 'phatgoose', '--experts', join(dir, 'pg'), '--out', join(dir, 'x')]);
  assert.match(empty.stderr, /no PEFT adapter folders in it/);
});

test('an expert folder with gate-data.txt trains its gate on it, the others on --data', () => {
  const common1 = ['--method', 'phatgoose', '--experts', join(dir, 'owndata'), '--gate-steps', '1', '--top-k', '1', '--json'];
  const a = cli(['train', ...common, ...common1, '--data', join(dir, 'held.txt'), '--out', join(dir, 'own-a')]);
  assert.is(a.code, 0, a.stderr);
  assert.match(a.stderr, /gate own: trained on .*own\/gate-data\.txt/);
  assert.match(a.stderr, /gate shared: trained on --data .*held\.txt/);
  // Changing --data changes only the shared expert's gate: the own-data expert's first loss is the same.
  writeFileSync(join(dir, 'other.txt'), 'A big dog ran fast down the hill to find a stick.\n\nMia baked a cake for her friend.');
  const b = cli(['train', ...common, ...common1, '--data', join(dir, 'other.txt'), '--out', join(dir, 'own-b')]);
  assert.is(b.code, 0, b.stderr);
  const first = (r: { stderr: string }, e: string) => Number(new RegExp(`gate ${e}: 1 steps, loss ([0-9.]+)`).exec(r.stderr)![1]);
  assert.is(first(a, 'own'), first(b, 'own'));
  assert.not.equal(first(a, 'shared'), first(b, 'shared'));
});

test.run();
