// train --method poly as users run it: task ids from a JSONL "task" field, then MHR-z from the saved folder
// (--poly-from, --poly-mode z, a new task) with a checkpoint whose resumed run equals the uninterrupted one;
// generate refuses a multi-task adapter without --task-id; poly-to-lora writes a plain PEFT LoRA folder;
// eval --task-id equals eval of that task's exported LoRA; --method mhr (the alias) writes PEFT's POLY tensor shapes.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { heroStories } from '../../src/data/builtin-task.js';
import { parseSafetensors, safetensorsTensorToF32 } from '../../src/formats/safetensors.js';
import { STORIES_GGUF } from '../assets.js';
import { cli } from './run.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-poly-'));
const jsonl = (path: string, rows: [string, number][]) => writeFileSync(path, rows.map(([text, task]) => JSON.stringify({ text, task })).join('\n'));
jsonl(join(dir, 'two.jsonl'), [...heroStories(8, 1).map((s) => [s, 0] as [string, number]), ...heroStories(8, 2).map((s) => [s.replaceAll('Pip', 'Zog'), 1] as [string, number])]);
jsonl(join(dir, 'third.jsonl'), heroStories(8, 3).map((s) => [s.replaceAll('Pip', 'Kai'), 2]));
const common = ['--model', STORIES_GGUF, '--batch', '2', '--seq', '32', '--backend', 'wasm', '--threads', '1', '--json'];
const config = (d: string) => JSON.parse(readFileSync(join(d, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
const weights = (d: string) => {
  const f = parseSafetensors(new Uint8Array(readFileSync(join(d, 'adapter_model.safetensors'))));
  return new Map(f.tensors.map((t) => [t.name, Array.from(safetensorsTensorToF32(f, t))]));
};

test('train two tasks, then MHR-z on a third from the saved folder; a resumed MHR-z run equals the uninterrupted one', () => {
  const poly = join(dir, 'poly');
  const r = cli(['train', ...common, '--data', join(dir, 'two.jsonl'), '--method', 'poly', '--poly-tasks', '2', '--poly-skills', '3', '--poly-splits', '2', '--r', '4', '--steps', '3', '--out', poly]);
  assert.is(r.code, 0, r.stderr);
  assert.equal([config(poly).n_tasks, config(poly).n_skills, config(poly).n_splits, config(poly).r], [2, 3, 2, 4]);
  const z = join(dir, 'z'), zArgs = [...common, '--data', join(dir, 'third.jsonl'), '--method', 'poly', '--poly-from', poly, '--poly-mode', 'z', '--poly-tasks', '3', '--steps', '4', '--lr', '0.05'];
  const full = cli(['train', ...zArgs, '--out', z, '--checkpoint-every', '2']);
  assert.is(full.code, 0, full.stderr);
  assert.is(config(z).n_tasks, 3);
  const [before, after] = [weights(poly), weights(z)];
  for (const [name, v] of after) {
    if (name.endsWith('module_logits')) assert.equal(v.slice(0, 12), before.get(name), `${name}: tasks 0 and 1 moved`);
    else assert.equal(v, before.get(name), `${name}: a skill moved`);
  }
  const resumed = cli(['train', ...zArgs, '--out', join(dir, 'z2'), '--resume', join(z, 'checkpoint-2')]);
  assert.is(resumed.code, 0, resumed.stderr);
  for (const [name, v] of after) assert.equal(weights(join(dir, 'z2')).get(name), v, name);
  const refused = cli(['train', ...zArgs, '--poly-skills', '2', '--out', join(dir, 'z3')]);
  assert.is(refused.code, 2);
  assert.match(refused.stderr, /--poly-from keeps the saved adapter's skills and modules; drop --poly-skills/);
});

test('generate needs --task-id with several tasks; poly-to-lora writes a PEFT LoRA (MHR-μ)', () => {
  const poly = join(dir, 'poly');
  const g = cli(['generate', '--model', STORIES_GGUF, '--adapter', poly, '--max-tokens', '4', '--backend', 'js']);
  assert.is(g.code, 1);
  assert.match(g.stderr, /routes each row by a task id \(2 tasks\): give the task \(0 to 1\)/);
  const mu = join(dir, 'mu');
  const r = cli(['poly-to-lora', '--model', STORIES_GGUF, '--adapter', poly, '--out', mu]);
  assert.is(r.code, 0, r.stderr);
  assert.equal([config(mu).peft_type, config(mu).r, config(mu).lora_alpha], ['LORA', 4, 1]);
  assert.ok(weights(mu).has('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'));
});

test('eval --task-id routes by that task: each equals eval of its poly-to-lora --task-id LoRA; an unknown task refused; --method mhr writes the POLY layout', () => {
  const poly = join(dir, 'poly');
  const text = join(dir, 'eval.txt');
  writeFileSync(text, heroStories(4, 9).join('\n\n'));
  const evalArgs = ['eval', '--model', STORIES_GGUF, '--data', text, '--paragraphs', '4', '--max-tokens', '32', '--backend', 'js', '--json'];
  const loss = (extra: string[]) => {
    const r = cli([...evalArgs, ...extra]);
    assert.is(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { loss: number }).loss;
  };
  const base = loss([]);
  const routed: number[] = [];
  for (const task of [0, 1]) {
    const viaPoly = loss(['--adapter', poly, '--task-id', String(task)]);
    const lora = join(dir, `task${task}`);
    const w = cli(['poly-to-lora', '--model', STORIES_GGUF, '--adapter', poly, '--task-id', String(task), '--out', lora]);
    assert.is(w.code, 0, w.stderr);
    assert.is(config(lora).peft_type, 'LORA');
    const viaLora = loss(['--adapter', lora]);
    assert.ok(Math.abs(viaPoly - viaLora) < 1e-5, `task ${task}: Poly ${viaPoly} vs its LoRA ${viaLora}`);
    assert.ok(viaPoly !== base, `task ${task}: the adapter changed nothing`);
    routed.push(viaPoly);
  }
  assert.ok(routed[0] !== routed[1], 'both tasks route alike');
  const bad = cli([...evalArgs, '--adapter', poly, '--task-id', '2']);
  assert.not.equal(bad.code, 0);
  assert.match(bad.stderr, /task id 2 is outside the adapter's 2 tasks \(0 to 1\)/);
  const mhr = join(dir, 'mhr');
  const r = cli(['train', ...common, '--data', join(dir, 'two.jsonl'), '--method', 'mhr', '--poly-tasks', '2', '--poly-skills', '2', '--poly-splits', '4', '--r', '2', '--steps', '2', '--out', mhr]);
  assert.is(r.code, 0, r.stderr);
  assert.equal([config(mhr).peft_type, config(mhr).n_tasks, config(mhr).n_skills, config(mhr).n_splits], ['POLY', 2, 2, 4]);
  const q = 'base_model.model.model.layers.0.self_attn.q_proj';
  const shapes = parseSafetensors(new Uint8Array(readFileSync(join(mhr, 'adapter_model.safetensors')))).tensors;
  const shape = (n: string) => shapes.find((t) => t.name === `${q}.${n}`)?.shape;
  assert.equal([shape('poly_lora_A'), shape('poly_lora_B'), shape('poly_router.module_logits')], [[4, 2, 16, 2], [4, 2, 2, 16], [2, 8]]);
});

test.run();
