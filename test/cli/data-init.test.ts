// `adaptkit train --init eva|corda` as users run it: the first --init-batches batches of --data are read
// before training, EVA's ranks fill the budget r × modules and are saved as rank_pattern / alpha_pattern,
// CorDA's adapter is saved as a plain LoRA of rank 2r; bad EVA/CorDA values are refused before any work.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { STORIES_GGUF } from '../assets.js';
import { cli } from './run.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-data-init-'));
const common = ['train', '--model', STORIES_GGUF, '--steps', '2', '--batch', '4', '--seq', '32', '--rank', '4', '--targets', 'q_proj,v_proj,down_proj', '--backend', 'wasm', '--json', '--init-batches', '2'];

test('--init eva: the init event and the saved folder carry ranks summing to r × modules', () => {
  const out = join(dir, 'eva');
  const r = cli([...common, '--init', 'eva', '--eva-rho', '1.5', '--eva-use-label-mask', 'false', '--out', out]);
  assert.is(r.code, 0, r.stderr);
  const init = r.stdout.trim().split('\n').map((l) => JSON.parse(l)).find((e) => e.event === 'init');
  assert.ok(init && init.rows === 8 && init.batches >= 1 && init.batches <= 2, JSON.stringify(init));
  const ranks = Object.values(init.ranks) as number[];
  assert.is(ranks.length, 15);
  assert.is(ranks.reduce((a, b) => a + b, 0), 4 * 15);
  assert.ok(ranks.every((v) => v >= 1 && v <= 6), `ranks ${ranks}`);
  const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
  assert.equal(cfg.rank_pattern, init.ranks);
  assert.is(cfg.init_lora_weights, 'eva');
  assert.is(cfg.eva_config.rho, 1.5);
  assert.is(cfg.eva_config.use_label_mask, false);
});

test('--init corda --corda-mode kpm: saved as a plain LoRA of rank 2r and alpha 2α', () => {
  const out = join(dir, 'corda');
  const r = cli([...common, '--init', 'corda', '--corda-mode', 'kpm', '--alpha', '8', '--out', out]);
  assert.is(r.code, 0, r.stderr);
  const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
  assert.is(cfg.r, 8);
  assert.is(cfg.lora_alpha, 16);
  assert.is(cfg.init_lora_weights, true);
});

test('bad EVA/CorDA values and combinations are refused by name before any output', () => {
  for (const [flags, message] of [
    [['--init', 'eva', '--eva-rho', '0.5'], /evaRho' must be a number ≥ 1/],
    [['--init', 'eva', '--eva-tau', '1.2'], /evaTau' must be in \(0, 1\]/],
    [['--init', 'corda', '--corda-mode', 'both'], /cordaMode' must be one of ipm, kpm/],
    [['--init', 'evas'], /--init/],
    [['--init', 'corda', '--objective', 'dpo'], /--init corda reads the rows of --data as language-model text/],
  ] as const) {
    const out = join(dir, `bad-${flags.join('')}`);
    const r = cli([...common, ...flags, '--out', out]);
    assert.is.not(r.code, 0, flags.join(' '));
    assert.match(r.stderr, message);
    assert.not.ok(existsSync(out), `${flags.join(' ')}: wrote ${out}`);
  }
});

test.run();
