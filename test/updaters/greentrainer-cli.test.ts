// adaptkit train --method greentrainer: the selections, the operations saved and the measured step time are
// printed and land in the JSON summary; the model folder is written; bad flags are refused before any work.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { STORIES_GGUF } from '../assets.js';
import { cli } from '../cli/run.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-green-'));
const common = ['--model', STORIES_GGUF, '--steps', '5', '--batch', '4', '--seq', '32', '--lr', '1e-3', '--warmup', '0', '--backend', 'js'];

test('train --method greentrainer prints each selection and the operations saved beside the measured step time', () => {
  const out = join(dir, 'green');
  const r = cli(['train', '--method', 'greentrainer', ...common, '--green-rho', '0.6', '--green-interval', '3', '--out', out]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /greentrainer: a full step is \S+ forward \+ \S+ backward operations; ρ = 0\.6 leaves the backward pass \d+\.\d%; \d+ of 47 tensors fit it \(probed every 3 steps\)/);
  // Probes at steps 1 and 4; selections train from steps 2 and 5; step 3 is a selected step after no switch, so it is timed.
  for (const step of [2, 5]) assert.match(r.stderr, new RegExp(`greentrainer: step ${step}: \\d+ tensors train down to model\\.\\S+, \\d+\\.\\d% of a full step's operations \\(\\d+\\.\\d% saved\\)`));
  assert.match(r.stderr, /summary: .*greenOpsSaved 0\.\d{4}.*greenSelectedStepMs \d+\.\d{4}.*stepMs \d/);
  assert.ok(existsSync(join(out, 'model.safetensors')));
  const json = cli(['train', '--method', 'greentrainer', ...common, '--green-interval', '2', '--out', join(dir, 'green-json'), '--json']);
  assert.is(json.code, 0, json.stderr);
  const summary = json.stdout.trim().split('\n').map((l) => JSON.parse(l)).find((e) => e.event === 'summary');
  assert.is(summary.greenRho, 0.5);
  assert.is(summary.greenSelections, 2);
  assert.ok(summary.greenSelectedOpsFraction > 0.05 && summary.greenSelectedOpsFraction <= 0.5, String(summary.greenSelectedOpsFraction));
  assert.ok(summary.greenOpsSaved > 0);
  assert.is(summary.greenSelectedStepMs, undefined, 'with an interval of 2 every selected step follows a switch: none is timed');
});

test('bad options are refused before the model is read, and the flags are in the help', () => {
  for (const [flag, value, msg] of [['--green-rho', '0', /--green-rho must be a number in \(0, 1\] \(got 0\)/], ['--green-rho', '1.2', /--green-rho must be a number in \(0, 1\]/], ['--green-interval', '1', /--green-interval must be an integer ≥ 2 \(got 1\)/]] as const) {
    const r = cli(['train', '--method', 'greentrainer', ...common, flag, value, '--out', join(dir, 'bad')]);
    assert.is(r.code, 2, r.stderr);
    assert.match(r.stderr, msg);
  }
  assert.not.ok(existsSync(join(dir, 'bad')));
  const help = cli(['train', '--help']);
  for (const flag of ['--green-rho', '--green-interval', 'greentrainer']) assert.ok(help.stdout.includes(flag), flag);
});

test.run();
