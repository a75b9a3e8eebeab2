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
  const empty = cli(['train', ...common, '--method', 'phatgoose', '--experts', join(dir, 'pg'), '--out', join(dir, 'x')]);
  assert.match(empty.stderr, /no PEFT adapter folders in it/);
});

test.run();
