// adaptkit train --method lt-sft: the flags reach the method (its phase switch is logged) and bad values are
// refused by name before anything is written.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { STORIES_GGUF } from '../assets.js';
import { cli } from '../cli/run.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-ltsft-'));
const common = ['--model', STORIES_GGUF, '--steps', '3', '--batch', '4', '--seq', '32', '--lr', '1e-3', '--warmup', '0', '--backend', 'js'];

test('train --method lt-sft runs both phases with the flags given', () => {
  const r = cli(['train', '--method', 'lt-sft', ...common, '--ltsft-phase1', '2', '--ltsft-count', '300', '--ltsft-l1', '0.01', '--out', join(dir, 'ok')]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /lt-sft: step 1 l1 \d/);
  assert.match(r.stderr, /lt-sft: step 2: kept the top 300 \|θ₁ − θ₀\| entries/);
});

test('without --ltsft-phase1 the run is split in half (3 steps: 1 + 2)', () => {
  const r = cli(['train', '--method', 'lt-sft', ...common, '--ltsft-density', '0.001', '--out', join(dir, 'half')]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /lt-sft: step 1: kept the top \d+ \|θ₁ − θ₀\| entries/);
  assert.not.match(r.stderr, / l1 /);
});

test('bad lt-sft flags are refused by name before any work', () => {
  const cases: [string[], RegExp][] = [
    [['--ltsft-density', '2'], /--ltsft-density/],
    [['--ltsft-density', '0'], /--ltsft-density/],
    [['--ltsft-l1', '-1'], /--ltsft-l1/],
    [['--ltsft-count', '0'], /--ltsft-count/],
    [['--ltsft-phase1', '0'], /--ltsft-phase1/],
    [['--ltsft-phase1', '3'], /--ltsft-phase1 3 leaves no phase-2 step/],
  ];
  for (const [flags, re] of cases) {
    const out = join(dir, `bad-${flags.join('')}`);
    const r = cli(['train', '--method', 'lt-sft', ...common, ...flags, '--out', out]);
    assert.is(r.code, 2, `${flags.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.not.ok(existsSync(join(out, 'model.safetensors')), 'nothing written');
  }
  const help = cli(['train', '--help']);
  for (const flag of ['--ltsft-phase1', '--ltsft-density', '--ltsft-count', '--ltsft-l1']) assert.ok(help.stdout.includes(flag), flag);
});

test.run();
