// `adaptkit search` end to end on stories260K with a tiny budget: per-rung progress, the front and its plot on
// stdout, search.json whose front is checked by brute force, chosen.json whose trainArgs `train` accepts, and
// the saved adapter that `eval --adapter` reads giving the held-out loss the search reported. Bad options are
// refused by name before any work (nothing written, no rung run).
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { STORIES_GGUF, TINYSTORIES_VAL } from '../assets.js';
import { cli } from '../cli/run.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-search-'));
const stories = readFileSync(TINYSTORIES_VAL, 'utf8').split(/\n\s*\n/);
const trainFile = join(dir, 'train.txt'), heldFile = join(dir, 'held.txt');
writeFileSync(trainFile, stories.slice(0, 30).join('\n\n'));
writeFileSync(heldFile, stories.slice(30, 36).join('\n\n'));
const base = ['search', '--model', STORIES_GGUF, '--backend', 'wasm', '--threads', '1', '--seq', '32', '--batch', '4', '--min-steps', '3', '--eta', '2', '--rungs', '2'];

interface Point { loss: number; params: number; front: boolean; candidate: { method: string } }

test('search: rungs, the front with its plot, search.json, chosen.json and the adapter', () => {
  const out = join(dir, 'out');
  const r = cli([...base, '--data', trainFile, '--eval-data', heldFile, '--budget', '48', '--methods', 'lora,ia3', '--ranks', '2,4', '--targets', 'q_proj,v_proj/all', '--layers', 'all/3,4', '--seed', '3', '--out', out]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /rung 1\/2: \d+ candidates × 3 steps/);
  assert.match(r.stdout, /rung 2\/2: \d+ candidates × 6 steps/);
  assert.match(r.stdout, /Pareto front over \(held-out loss, trainable parameters\)/);
  assert.match(r.stdout, /trainable parameters \(log scale\)/);
  const all = JSON.parse(readFileSync(join(out, 'search.json'), 'utf8')) as { points: Point[]; front: number[]; chosen: number; stepsUsed: number };
  assert.ok(all.stepsUsed <= 48);
  const dom = (a: Point, b: Point): boolean => a.loss <= b.loss && a.params <= b.params && (a.loss < b.loss || a.params < b.params);
  all.points.forEach((p, k) => {
    const dominated = all.points.some((q) => dom(q, p));
    assert.is(p.front, !dominated, `point ${k}`);
    assert.is(all.front.includes(k), !dominated);
  });
  const chosen = JSON.parse(readFileSync(join(out, 'chosen.json'), 'utf8')) as { trainArgs: string[]; loss: number; params: number };
  assert.is(chosen.loss, all.points[all.chosen]!.loss);
  // The saved adapter gives the reported held-out loss (each held-out story is one row of its first 33 tokens, as eval --max-tokens 32 reads it; 1e-6).
  const ev = cli(['eval', '--model', STORIES_GGUF, '--adapter', join(out, 'adapter'), '--data', heldFile, '--backend', 'wasm', '--json', '--max-tokens', '32']);
  assert.is(ev.code, 0, ev.stderr);
  const evLoss = (JSON.parse(ev.stdout) as { loss: number }).loss;
  assert.ok(Math.abs(evLoss - chosen.loss) <= 1e-6, `eval ${evLoss} vs search ${chosen.loss}`);
  // `train` takes the chosen configuration's flags.
  const t = cli(['train', '--model', STORIES_GGUF, '--data', trainFile, ...chosen.trainArgs, '--steps', '2', '--seq', '32', '--batch', '4', '--backend', 'wasm', '--out', join(dir, 'trained'), '--json']);
  assert.is(t.code, 0, t.stderr);
  const trained = JSON.parse(readFileSync(join(dir, 'trained', 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  const saved = JSON.parse(readFileSync(join(out, 'adapter', 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  for (const k of ['peft_type', 'r', 'lora_alpha', 'target_modules', 'layers_to_transform']) assert.equal(trained[k], saved[k], k);
});

test('--json without --eval-data: the last 10% of --data held out; an earlier search is not overwritten without --overwrite', () => {
  const out = join(dir, 'json');
  const args = [...base, '--data', trainFile, '--budget', '30', '--methods', 'ia3', '--targets', 'q_proj,v_proj/all', '--layers', 'all', '--json', '--out', out];
  const r = cli(args);
  assert.is(r.code, 0, r.stderr);
  const o = JSON.parse(r.stdout) as { points: Point[]; front: number[]; chosenConfig: { method: string; trainArgs: string[] } };
  // (IA)³ with two target sets and one layer set: a space of 2, both trained.
  assert.is(o.points.length, 2);
  assert.is(o.chosenConfig.method, 'ia3');
  assert.ok(o.chosenConfig.trainArgs.includes('--feedforward-modules'));
  const again = cli(args);
  assert.is(again.code, 2);
  assert.match(again.stderr, /--out .* already holds a search \(search\.json, chosen\.json, adapter\); pass --overwrite/);
  assert.is(cli([...args, '--overwrite']).code, 0);
});

const refused = (args: string[], pattern: RegExp): void => {
  const out = join(dir, `refused-${Math.random().toString(36).slice(2)}`);
  const r = cli([...base, '--out', out, ...args]);
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, pattern);
  assert.not.match(r.stdout, /rung/);
  assert.not.ok(existsSync(out), 'nothing written');
};

test('bad options are refused by name before any work', () => {
  refused(['--data', trainFile, '--budget', '40', '--methods', ','], /--methods is empty/);
  refused(['--data', trainFile, '--budget', '40', '--methods', 'lora,nosuch'], /--methods: unknown adapter method 'nosuch'/);
  refused(['--data', trainFile, '--budget', '5'], /--budget 5: .*too small: the first rung alone needs 2 candidates × 3 steps/);
  refused(['--budget', '40'], /--data is required/);
  refused(['--data', join(dir, 'missing.txt'), '--budget', '40'], /--data .*missing\.txt: no such file/);
  refused(['--data', trainFile], /--budget is required/);
  refused(['--data', trainFile, '--budget', '40', '--layers', '9'], /--layers: '9' is not a layer of this model/);
  refused(['--data', trainFile, '--budget', '40', '--targets', 'q_proj,nope'], /--targets: 'nope' is not a projection/);
  refused(['--data', trainFile, '--budget', '40', '--seq', '3000'], /--seq 3000 exceeds the model's context of 2048/);
  refused(['--data', trainFile, '--budget', '40', '--ranks', '0'], /--ranks: '0' is not an integer ≥ 1/);
  refused(['--data', trainFile, '--budget', '40', '--ranks', '2,60'], /--ranks: 60 exceeds \d+, the smaller dimension of /);
});

test.run();
