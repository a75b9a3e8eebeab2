// adaptkit train --method graft: grafts from a fine-tuned model folder (here: train --method full's) or a
// sparse-delta folder, logs each rounded mask's held-out loss, saves the best as a delta folder that eval and
// merge use (the same loss); bad input (no --graft-from, a missing path, a delta for another model, a sparsity
// outside (0, 1]) is refused by name before anything is written.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { saveDeltaFolder } from '../../src/updaters/sparse/folder.js';
import { STORIES_GGUF, TINYSTORIES_VAL } from '../assets.js';
import { cli } from '../cli/run.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-graft-cli-'));
const common = ['--model', STORIES_GGUF, '--batch', '4', '--seq', '32', '--warmup', '0', '--backend', 'js'];
const evalArgs = ['eval', '--model', STORIES_GGUF, '--data', TINYSTORIES_VAL, '--paragraphs', '8', '--max-tokens', '64', '--backend', 'js', '--json'];
const lossOf = (r: { code: number; stdout: string; stderr: string }): number => {
  assert.is(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!).loss as number;
};
const tuned = join(dir, 'full');

test('train --method graft from a fine-tuned folder saves the best rounded mask; eval and merge use it', () => {
  const ft = cli(['train', '--method', 'full', ...common, '--steps', '3', '--lr', '1e-3', '--out', tuned]);
  assert.is(ft.code, 0, ft.stderr);
  const out = join(dir, 'graft');
  const r = cli(['train', '--method', 'graft', ...common, '--steps', '4', '--graft-from', tuned, '--graft-sparsity', '0.02', '--graft-check-every', '2', '--eval-data', 'builtin', '--out', out]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /lr 0\.1 \(the default for graft\)/);
  for (const s of [0, 2, 4]) assert.match(r.stderr, new RegExp(`graft: step ${s}: rounded mask \\d+ weights \\([\\d.]+%\\), held-out loss \\d`));
  assert.match(r.stderr, /saved the sparse delta to .*: \d+ entries over \d+ tensors/);
  assert.is(JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')).method, 'graft');
  const base = lossOf(cli(evalArgs)), grafted = lossOf(cli([...evalArgs, '--adapter', out]));
  assert.ok(grafted !== base, `the graft changes the base: ${base}, ${grafted}`);
  const merged = join(dir, 'merged');
  const m = cli(['merge', '--model', STORIES_GGUF, '--adapter', out, '--out', merged, '--format', 'safetensors']);
  assert.is(m.code, 0, m.stderr);
  const again = lossOf(cli([...evalArgs, '--adapter', merged]));
  assert.ok(Math.abs(again - grafted) < 1e-5 * grafted, `merged ${again} vs delta ${grafted}`);
  // A sparse-delta folder is a fine-tuned model too: grafting from one at sparsity 1 keeps all of it.
  const twice = join(dir, 'twice');
  const t = cli(['train', '--method', 'graft', ...common, '--steps', '1', '--graft-from', out, '--graft-sparsity', '1', '--graft-init', '20', '--eval-data', 'builtin', '--out', twice]);
  assert.is(t.code, 0, t.stderr);
  const back = lossOf(cli([...evalArgs, '--adapter', twice]));
  assert.ok(Math.abs(back - grafted) < 1e-5 * grafted, `regrafted at sparsity 1: ${back} vs ${grafted}`);
});

test('bad graft input is refused by name before anything is written', async () => {
  const alien = join(dir, 'alien');
  await import('node:fs/promises').then((fs) => fs.mkdir(alien, { recursive: true }));
  await saveDeltaFolder(alien, new Map([['model.norm.weight', { indices: Int32Array.from([1_000_000]), values: Float32Array.from([1]) }]]));
  const cases: [string[], RegExp][] = [
    [[], /--method graft needs --graft-from DIR/],
    [['--graft-from', join(dir, 'no-such')], /--graft-from .*no-such: no such folder/],
    [['--graft-from', tuned, '--graft-sparsity', '0'], /--graft-sparsity/],
    [['--graft-from', tuned, '--graft-sparsity', '1.5'], /--graft-sparsity/],
    [['--graft-from', alien], /model\.norm\.weight has index 1000000, outside the model's tensor/],
  ];
  for (const [flags, re] of cases) {
    const out = join(dir, `bad-${cases.findIndex((c) => c[0] === flags)}`);
    const r = cli(['train', '--method', 'graft', ...common, '--steps', '1', ...flags, '--out', out]);
    assert.is(r.code, 2, `${flags.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.not.ok(existsSync(join(out, 'adapter_model.safetensors')), 'nothing written');
  }
  const help = cli(['train', '--help']);
  for (const flag of ['--graft-from', '--graft-sparsity', '--graft-init', '--graft-check-every']) assert.ok(help.stdout.includes(flag), flag);
});

test.run();
