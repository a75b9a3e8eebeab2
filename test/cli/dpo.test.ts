// `adaptkit train --objective dpo` as users run it: JSON step lines with the DPO loss, reward margin and
// accuracy; the margin rises; the adapter is saved as a PEFT folder; options DPO does not drive and bad
// data are refused before any work, by name.
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseSafetensors, safetensorsTensorToF32 } from '../../src/formats/safetensors.js';
import { STORIES_GGUF } from '../assets.js';
import { cli } from './run.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-dpo-'));
const prefs = join(dir, 'prefs.jsonl');
writeFileSync(prefs, [
  { prompt: 'Once upon a time, there was a little', chosen: ' dog named Max.', rejected: ' car that was red.' },
  { prompt: 'Lily liked to play with her', chosen: ' friend in the park.', rejected: ' food on the floor.' },
].map((p) => JSON.stringify(p)).join('\n'));
const common = ['--model', STORIES_GGUF, '--data', prefs, '--objective', 'dpo', '--batch', '2', '--seq', '24', '--backend', 'wasm'];

test('DPO training logs loss, margin and accuracy per step, the margin rises, and the adapter is saved', () => {
  const out = join(dir, 'dpo');
  const r = cli(['train', ...common, '--steps', '8', '--lr', '2e-3', '--beta', '0.1', '--warmup', '0', '--decay', 'constant', '--json', '--out', out]);
  assert.is(r.code, 0, r.stderr);
  const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(events[0], { event: 'data', pairs: 2, truncated: 0 });
  const steps = events.filter((e) => e.step !== undefined);
  assert.is(steps.length, 8);
  assert.ok(Math.abs(steps[0].loss - Math.LN2) < 1e-6 && steps[0].margin === 0, JSON.stringify(steps[0]));
  assert.ok(steps[7].margin > steps[1].margin && steps[7].loss < steps[0].loss && steps[7].accuracy === 1, JSON.stringify(steps[7]));
  const f = parseSafetensors(new Uint8Array(readFileSync(join(out, 'adapter_model.safetensors'))));
  const b = f.tensors.find((t) => t.name.endsWith('lora_B.weight'))!;
  assert.ok(safetensorsTensorToF32(f, b).some((x) => x !== 0), 'lora_B trained');
});

test('options DPO does not drive, a non-JSONL file and a bad line are refused before any work', () => {
  let r = cli(['train', ...common, '--checkpointing', '--eval-data', prefs, '--out', join(dir, 'x')]);
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /--eval-data, --checkpointing are not available with --objective dpo/);
  writeFileSync(join(dir, 'prefs.txt'), readFileSync(prefs, 'utf8'));
  r = cli(['train', ...common.map((a) => (a === prefs ? join(dir, 'prefs.txt') : a)), '--out', join(dir, 'y')]);
  assert.match(r.stderr, /preference pairs from a \.jsonl file/);
  const bad = join(dir, 'bad.jsonl');
  writeFileSync(bad, `${readFileSync(prefs, 'utf8')}\n{"prompt": "a", "chosen": "b"}\n`);
  r = cli(['train', ...common.map((a) => (a === prefs ? bad : a)), '--out', join(dir, 'z')]);
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /bad\.jsonl:3: expected \{"prompt": string, "chosen": string, "rejected": string\}/);
  assert.not.ok(existsSync(join(dir, 'z', 'adapter_model.safetensors')));
  r = cli(['train', ...common, '--beta', '0', '--out', join(dir, 'w')]);
  assert.match(r.stderr, /--beta/);
});

test.run();
