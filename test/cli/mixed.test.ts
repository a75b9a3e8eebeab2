// generate/eval --row-adapter NAME=DIR --rows FILE.jsonl: one mixed batch gives each row the text (greedy)
// and the loss it gets with its adapter alone through --adapter; bad rows and clashing flags are refused
// before any work.
import { mkdtempSync, writeFileSync } from 'node:fs';
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

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-mixed-'));
const model = new AdaptedModel(await stories());
model.addAdapter('a', 'lora', { r: 2, targetModules: ['q_proj', 'v_proj'] }, { seed: 1 });
model.addAdapter('b', 'lora', { r: 4, targetModules: ['gate_proj', 'up_proj', 'down_proj'] }, { seed: 2 });
for (const n of ['a', 'b']) {
  randomizeParams(model, n, 0.3);
  const files = savePeft(model, n);
  await mkdir(join(dir, n));
  await writeFile(join(dir, n, 'adapter_config.json'), files.config);
  await writeFile(join(dir, n, 'adapter_model.safetensors'), files.weights);
}
const common = ['--model', STORIES_GGUF, '--backend', 'js', '--row-adapter', `a=${join(dir, 'a')}`, '--row-adapter', `b=${join(dir, 'b')}`];
const rows: [string, string][] = [['Once upon a time', 'a'], ['Once upon a time', '__base__'], ['The little dog', 'b'], ['The little dog', 'a']];

test('generate: every row of the mixed batch continues as with its adapter alone', () => {
  writeFileSync(join(dir, 'g.jsonl'), rows.map(([prompt, adapter]) => JSON.stringify({ prompt, adapter })).join('\n'));
  const r = cli(['generate', ...common, '--rows', join(dir, 'g.jsonl'), '--max-tokens', '8']);
  assert.is(r.code, 0, r.stderr);
  const out = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { adapter: string; prompt: string; text: string });
  assert.equal(out.map((o) => [o.prompt, o.adapter]), rows);
  for (const [i, [prompt, adapter]] of rows.entries()) {
    const one = cli(['generate', '--model', STORIES_GGUF, '--backend', 'js', '--prompt', prompt, '--max-tokens', '8', ...(adapter === '__base__' ? [] : ['--adapter', join(dir, adapter)])]);
    assert.is(one.code, 0, one.stderr);
    assert.is(prompt + out[i]!.text, one.stdout, `row ${i}`);
  }
  assert.not.equal(out[0]!.text, out[1]!.text, 'the adapter changes the text');
});

test('eval: the loss per adapter equals eval --adapter on the same texts', () => {
  const texts: [string, string][] = [['Once upon a time there was a dragon named Pip.', 'a'], ['Lily liked to play with her red ball.', 'b'], ['Tom saw a big tree.', 'a'], ['The sun was hot.', '__base__']];
  writeFileSync(join(dir, 'e.jsonl'), texts.map(([text, adapter]) => JSON.stringify({ text, adapter })).join('\n'));
  const r = cli(['eval', ...common, '--rows', join(dir, 'e.jsonl'), '--json']);
  assert.is(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as { loss: number; tokens: number; byAdapter: Record<string, { loss: number; tokens: number }> };
  let total = 0, tokens = 0;
  for (const name of ['a', 'b', '__base__']) {
    writeFileSync(join(dir, `${name}.txt`), texts.filter(([, a]) => a === name).map(([t]) => t).join('\n\n'));
    const one = cli(['eval', '--model', STORIES_GGUF, '--backend', 'js', '--data', join(dir, `${name}.txt`), '--json', ...(name === '__base__' ? [] : ['--adapter', join(dir, name)])]);
    assert.is(one.code, 0, one.stderr);
    const s = JSON.parse(one.stdout.trim().split('\n').pop()!) as { loss: number; tokens: number };
    assert.is(j.byAdapter[name]!.tokens, s.tokens, name);
    assert.ok(Math.abs(j.byAdapter[name]!.loss - s.loss) < 1e-5, `${name}: ${j.byAdapter[name]!.loss} vs ${s.loss}`);
    total += s.loss * s.tokens; tokens += s.tokens;
  }
  assert.ok(Math.abs(j.loss - total / tokens) < 1e-5, `whole batch ${j.loss} vs ${total / tokens}`);
});

test('unknown adapters, malformed pairs and clashing flags are refused before any work', () => {
  writeFileSync(join(dir, 'bad.jsonl'), '{"prompt":"x","adapter":"c"}\n');
  const r = cli(['generate', ...common, '--rows', join(dir, 'bad.jsonl')]);
  assert.is(r.code, 1);
  assert.match(r.stderr, /bad\.jsonl:1: "adapter" "c" is not one of __base__, a, b/);
  const pair = cli(['generate', '--model', STORIES_GGUF, '--row-adapter', 'nodir', '--rows', join(dir, 'g.jsonl')]);
  assert.is(pair.code, 2);
  assert.match(pair.stderr, /--row-adapter nodir: expected NAME=DIR/);
  const clash = cli(['generate', ...common, '--rows', join(dir, 'g.jsonl'), '--adapter', join(dir, 'a')]);
  assert.is(clash.code, 2);
  assert.match(clash.stderr, /--row-adapter does not combine with --adapter/);
  const none = cli(['eval', ...common]);
  assert.match(none.stderr, /--row-adapter needs --rows FILE\.jsonl/);
});

test.run();
