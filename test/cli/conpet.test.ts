// train --method conpet: a two-task stream from a JSONL "task" field; the JSON lines report each task's
// held-out loss and routing after every task and the forgetting (last loss minus the loss after its own
// task); each task's module is saved as a PEFT LoRA folder; lines without a task are refused.
import { mkdtempSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { heroStories } from '../../src/data/builtin-task.js';
import { paragraphs } from '../../src/data/text.js';
import { STORIES_GGUF, TINYSTORIES_VAL } from '../assets.js';
import { cli } from './run.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-conpet-'));
const lines = [...heroStories(12, 3).map((text) => ({ text, task: 0 })), ...paragraphs(readFileSync(TINYSTORIES_VAL, 'utf8')).slice(0, 12).map((text) => ({ text, task: 1 }))];
writeFileSync(join(dir, 'stream.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n'));
const common = ['--model', STORIES_GGUF, '--backend', 'js', '--batch', '4', '--seq', '64', '--steps', '3'];

test('the stream trains a module per task and reports routing and forgetting', () => {
  const out = join(dir, 'out');
  const r = cli(['train', ...common, '--method', 'conpet', '--data', join(dir, 'stream.jsonl'), '--replay-size', '4', '--json', '--out', out]);
  assert.is(r.code, 0, r.stderr);
  const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; heldOutLoss?: number[]; routedToOwn?: number[]; forgetting?: number[]; loss?: number[][] });
  const tasks = events.filter((e) => e.event === 'task');
  assert.equal(tasks.map((t) => t.heldOutLoss!.length), [1, 2]);
  const f = events.find((e) => e.event === 'forgetting')!;
  assert.ok(Math.abs(f.forgetting![0]! - (f.loss![1]![0]! - f.loss![0]![0]!)) < 1e-12);
  assert.equal(f.loss![0], tasks[0]!.heldOutLoss);
  for (const t of ['task-0', 'task-1']) assert.ok(existsSync(join(out, t, 'adapter_model.safetensors')), t);
});

test('lines without a task are refused before training', () => {
  writeFileSync(join(dir, 'plain.jsonl'), '{"text":"a story"}\n{"text":"another"}');
  const r = cli(['train', ...common, '--method', 'conpet', '--data', join(dir, 'plain.jsonl'), '--out', join(dir, 'x')]);
  assert.is(r.code, 2);
  assert.match(r.stderr, /needs every line to have an integer "task" field/);
});

test.run();
