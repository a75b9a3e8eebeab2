// `adaptkit train --objective dpo|kd|taid` as users run it. DPO: JSON step lines with the loss, reward
// margin and accuracy; the margin rises; the adapter is saved as a PEFT folder. KD and TAID: the KL to the
// teacher's (or the interpolated) target per step, t for TAID. Options an objective does not drive, a
// missing teacher and bad data are refused before any work, by name.
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

test('KD from a teacher: the KL per step falls; TAID logs t; a missing or stray --teacher is refused', () => {
  const data = join(dir, 'stories.txt');
  writeFileSync(data, ['Lily and Tom went to the park. They saw a big dog.', 'The sun was warm. Mia played with her ball all day.', 'Once upon a time there was a little cat who liked milk.'].join('\n\n'));
  const base = ['train', '--model', STORIES_GGUF, '--data', data, '--batch', '2', '--seq', '16', '--backend', 'wasm', '--json', '--warmup', '0', '--decay', 'constant'];
  // The teacher is the model itself and the student starts equal to it (LoRA's B = 0): the KL starts at 0.
  let r = cli([...base, '--objective', 'kd', '--teacher', STORIES_GGUF, '--steps', '2', '--out', join(dir, 'kd')]);
  assert.is(r.code, 0, r.stderr);
  const kd = r.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.step !== undefined);
  assert.ok(Math.abs(kd[0].loss) < 1e-5, JSON.stringify(kd[0]));
  assert.ok(existsSync(join(dir, 'kd', 'adapter_model.safetensors')));
  r = cli([...base, '--objective', 'taid', '--teacher', STORIES_GGUF, '--taid-alpha', '0.1', '--steps', '3', '--out', join(dir, 'taid')]);
  assert.is(r.code, 0, r.stderr);
  const taid = r.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.step !== undefined);
  assert.equal(taid.map((e) => typeof e.t), ['number', 'number', 'number']);
  assert.is(taid[0].t, 0.4);
  r = cli([...base, '--objective', 'kd', '--steps', '1', '--out', join(dir, 'k2')]);
  assert.match(r.stderr, /--objective kd needs --teacher MODEL/);
  r = cli([...base, '--teacher', STORIES_GGUF, '--steps', '1', '--out', join(dir, 'k3')]);
  assert.match(r.stderr, /--teacher needs --objective kd or taid/);
  r = cli([...base, '--objective', 'kd', '--teacher', join(dir, 'nowhere.gguf'), '--steps', '1', '--out', join(dir, 'k4')]);
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /nowhere\.gguf/);
  assert.not.ok(existsSync(join(dir, 'k4')));
});

test('multi-objective training logs each weighted loss by name; --losses is checked', () => {
  const data = join(dir, 'repair.jsonl');
  writeFileSync(data, [
    { prompt: 'Tom had a red ball.', completion: ' He threw it to Lily.', rationale: ' He wanted to play.' },
    { prompt: 'The cat was hungry.', completion: ' It drank some milk.', rationale: ' Milk is good.' },
  ].map((l) => JSON.stringify(l)).join('\n'));
  const base = ['train', '--model', STORIES_GGUF, '--data', data, '--objective', 'multi', '--batch', '2', '--seq', '24', '--backend', 'wasm', '--json'];
  let r = cli([...base, '--losses', 'completion:1,rationale:0.5', '--steps', '3', '--lr', '1e-2', '--out', join(dir, 'multi')]);
  assert.is(r.code, 0, r.stderr);
  const steps = r.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.step !== undefined);
  assert.is(steps.length, 3);
  for (const s of steps) assert.ok(Math.abs(s.loss - (s.losses.completion + 0.5 * s.losses.rationale)) < 1e-5, JSON.stringify(s));
  assert.ok(existsSync(join(dir, 'multi', 'adapter_model.safetensors')));
  r = cli([...base, '--steps', '1', '--out', join(dir, 'm2')]);
  assert.match(r.stderr, /--objective multi needs --losses/);
  r = cli([...base, '--losses', 'completion:-1', '--steps', '1', '--out', join(dir, 'm3')]);
  assert.match(r.stderr, /--losses: "completion:-1" is not FIELD or FIELD:WEIGHT/);
  r = cli([...base, '--losses', 'completion,missing', '--steps', '1', '--out', join(dir, 'm4')]);
  assert.match(r.stderr, /repair\.jsonl:1: the objective field "missing" is missing/);
  assert.not.ok(existsSync(join(dir, 'm4')));
});

test('augmentation options: --augment adds copies, --mixup logs λ, --contrastive logs its term; conflicts refused', () => {
  const data = join(dir, 'stories2.txt');
  writeFileSync(data, ['Lily and Tom went to the park. They saw a big dog.', 'The sun was warm. Mia played with her ball all day.', 'Once upon a time there was a little cat who liked milk.'].join('\n\n'));
  const base = ['train', '--model', STORIES_GGUF, '--data', data, '--batch', '2', '--seq', '16', '--backend', 'wasm', '--json', '--steps', '2'];
  let r = cli([...base, '--augment', 'swap=0.1,delete=0.1,copies=2', '--out', join(dir, 'aug')]);
  assert.is(r.code, 0, r.stderr);
  assert.is(JSON.parse(r.stdout.split('\n')[0]!).examples, 9, 'three examples and two augmented copies of each');
  r = cli([...base, '--mixup', '0.4', '--out', join(dir, 'mix')]);
  assert.is(r.code, 0, r.stderr);
  const mix = r.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.step !== undefined);
  assert.ok(mix.every((e) => e.lambda >= 0 && e.lambda <= 1), JSON.stringify(mix));
  r = cli([...base, '--contrastive', '0.5', '--augment', 'delete=0.2', '--out', join(dir, 'con')]);
  assert.is(r.code, 0, r.stderr);
  const con = r.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.step !== undefined);
  assert.ok(con.every((e) => e.contrastive > 0 && Math.abs(e.objective - e.loss - e.contrastive) < 1e-5), JSON.stringify(con));
  r = cli([...base, '--mixup', '0.4', '--contrastive', '1', '--out', join(dir, 'x1')]);
  assert.match(r.stderr, /separate options; use one at a time/);
  r = cli([...base, '--mixup', '0.4', '--eval-data', data, '--out', join(dir, 'x2')]);
  assert.match(r.stderr, /--eval-data is not available with --mixup/);
  r = cli([...base, '--augment', 'swap=2', '--out', join(dir, 'x3')]);
  assert.match(r.stderr, /--augment: swap must be in \[0, 1\]/);
  r = cli([...base, '--augment', 'shuffle=0.1', '--out', join(dir, 'x4')]);
  assert.match(r.stderr, /"shuffle=0.1" is not insert=R/);
});

test.run();
