// adaptkit train --method full|lisa|hft: the saved model folder reloads, and eval/generate --adapter use it in
// the model's place (the loss equals the trained checkpoint's, computed in this process); refusals.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createJsBackend } from '../../src/backends/js/index.js';
import { heroStories } from '../../src/data/builtin-task.js';
import { pack, textExamples } from '../../src/data/dataset.js';
import { paragraphs } from '../../src/data/text.js';
import { loadCheckpoint } from '../../src/formats/checkpoint.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { fullUpdater } from '../../src/updaters/full/index.js';
import { trainBaseWeights } from '../../src/updaters/train.js';
import { STORIES_GGUF, TINYSTORIES_VAL } from '../assets.js';
import { cli } from '../cli/run.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-base-'));
const common = ['--model', STORIES_GGUF, '--steps', '3', '--batch', '4', '--seq', '32', '--lr', '1e-3', '--warmup', '0', '--backend', 'js'];

test('train --method full saves a model folder; eval --adapter gives the loss of the model trained in-process', async () => {
  const out = join(dir, 'full');
  const r = cli(['train', '--method', 'full', ...common, '--out', out, '--json']);
  assert.is(r.code, 0, r.stderr);
  for (const f of ['model.safetensors', 'config.json', 'tokenizer.json']) assert.ok(existsSync(join(out, f)), f);
  const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(events.filter((e) => e.step !== undefined).map((e) => e.step), [1, 2, 3]);
  assert.ok(events.every((e) => e.step === undefined || e.trainableFraction === 1));
  assert.ok(events.some((e) => e.event === 'saved'));
  // The same run in this process (same data, schedule and seed on js).
  const base = await loadCheckpoint(STORIES_GGUF);
  const tok = createTokenizer(base.tokenizer!);
  const data = pack(textExamples(heroStories(96), tok, 32), 32, 0);
  const trained = await trainBaseWeights(fullUpdater(), { checkpoint: base, backend: createJsBackend(), data, steps: 3, batch: 4, lr: 1e-3, warmup: 0, maxGradNorm: 1, seed: 1 });
  const paras = paragraphs(readFileSync(TINYSTORIES_VAL, 'utf8')).slice(0, 8);
  const seqs = paras.map((p) => tok.encode(p, { bos: true }).slice(0, 65));
  const rt = new LlamaRuntime(trained.checkpoint, createJsBackend());
  const want = (await rt.evalLoss(seqs, { batch: 8 })).loss;
  rt.dispose();
  const evalArgs = ['eval', '--model', STORIES_GGUF, '--data', TINYSTORIES_VAL, '--paragraphs', '8', '--max-tokens', '64', '--backend', 'js', '--json'];
  const withModel = cli([...evalArgs, '--adapter', out]);
  assert.is(withModel.code, 0, withModel.stderr);
  const got = JSON.parse(withModel.stdout.trim().split('\n').pop()!).loss;
  assert.ok(Math.abs(got - want) < 1e-5, `eval --adapter ${got}, in-process ${want}`);
  const plain = JSON.parse(cli(evalArgs).stdout.trim().split('\n').pop()!).loss;
  assert.ok(Math.abs(plain - got) > 1e-3, `the trained model differs from the base (${plain} vs ${got})`);
  // The folder reloads as a model of its own.
  const reloaded = await loadCheckpoint(out);
  assert.is(reloaded.tensors.size, base.tensors.size);
  const gen = cli(['generate', '--model', STORIES_GGUF, '--adapter', out, '--max-tokens', '8', '--temperature', '0', '--backend', 'js']);
  assert.is(gen.code, 0, gen.stderr);
  assert.ok(gen.stdout.length > 0);
});

test('train --method lisa and hft print their draws and save; refusals name the problem before any work', () => {
  const lisa = cli(['train', '--method', 'lisa', ...common, '--lisa-layers', '1', '--lisa-interval', '2', '--out', join(dir, 'lisa')]);
  assert.is(lisa.code, 0, lisa.stderr);
  assert.match(lisa.stderr, /lisa: step 1: layers \d train/);
  assert.match(lisa.stderr, /lisa: step 3: layers \d train/);
  const hft = cli(['train', '--method', 'hft', ...common, '--hft-stage', '0', '--out', join(dir, 'hft')]);
  assert.is(hft.code, 0, hft.stderr);
  assert.match(hft.stderr, /hft: stage 1 from step 1: trainable fraction 0\.\d{4}/);
  assert.ok(existsSync(join(dir, 'hft', 'model.safetensors')));
  const again = cli(['train', '--method', 'hft', ...common, '--out', join(dir, 'hft')]);
  assert.is(again.code, 2);
  assert.match(again.stderr, /already holds a model \(model\.safetensors, config\.json\); pass --overwrite/);
  const rank = cli(['train', '--method', 'full', ...common, '--rank', '4', '--out', join(dir, 'x')]);
  assert.is(rank.code, 2);
  assert.match(rank.stderr, /--rank does not apply to --method full/);
  const many = cli(['train', '--method', 'lisa', ...common, '--lisa-layers', '6', '--out', join(dir, 'y')]);
  assert.is(many.code, 2);
  assert.match(many.stderr, /--lisa-layers 6: the model has 5 layers/);
  assert.not.ok(existsSync(join(dir, 'x')) || existsSync(join(dir, 'y')), 'nothing written');
  const help = cli(['train', '--help']);
  for (const flag of ['--lisa-layers', '--lisa-interval', '--lisa-keep-moments', '--hft-stage', '--save-format', '--save-dtype']) assert.ok(help.stdout.includes(flag), flag);
});

test.run();
