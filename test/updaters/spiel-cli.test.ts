// adaptkit train --method spiel saves a sparse-delta folder; eval --adapter DIR applies it to --model (the loss of
// the library's trained model), merge writes a full model with the same loss, compose writes the sum of two
// deltas; refusals (a delta for another model, a bad density) are named before any work.
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
import { spielUpdater } from '../../src/updaters/spiel/index.js';
import { applySparseDelta, composeSparseDeltas, writeSparseDelta } from '../../src/updaters/sparse/delta.js';
import { loadDeltaFolder, saveDeltaFolder } from '../../src/updaters/sparse/folder.js';
import { trainBaseWeights } from '../../src/updaters/train.js';
import { STORIES_GGUF, TINYSTORIES_VAL } from '../assets.js';
import { cli } from '../cli/run.js';
import { maxAbsDiff, valuesOf } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-spiel-'));
const spiel = ['--spiel-density', '0.02', '--spiel-interval', '2', '--spiel-accumulate', '1', '--spiel-rate', '0.5'];
const common = ['--model', STORIES_GGUF, '--steps', '4', '--batch', '4', '--seq', '32', '--lr', '3e-3', '--warmup', '0', '--backend', 'js', ...spiel];
const evalArgs = ['eval', '--model', STORIES_GGUF, '--data', TINYSTORIES_VAL, '--paragraphs', '8', '--max-tokens', '64', '--backend', 'js', '--json'];
const lossOf = (r: { code: number; stdout: string; stderr: string }): number => {
  assert.is(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!).loss as number;
};

test('train --method spiel saves a delta folder; eval, merge and compose use it', async () => {
  const out = join(dir, 'a');
  const r = cli(['train', '--method', 'spiel', ...common, '--out', out]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /spiel: step 2: \d+ of \d+ active entries dropped and regrown/);
  for (const f of ['adapter_model.safetensors', 'adapter_config.json']) assert.ok(existsSync(join(out, f)), f);
  assert.ok(!existsSync(join(out, 'model.safetensors')), 'no full model written');
  const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
  assert.is(cfg.peft_type, 'SFT');
  // The folder reloads byte for byte.
  const { delta } = await loadDeltaFolder(out);
  assert.equal(writeSparseDelta(delta), new Uint8Array(readFileSync(join(out, 'adapter_model.safetensors'))));
  // The same run in this process.
  const base = await loadCheckpoint(STORIES_GGUF);
  const tok = createTokenizer(base.tokenizer!);
  const data = pack(textExamples(heroStories(96), tok, 32), 32, 0);
  const trained = await trainBaseWeights(spielUpdater({ density: 0.02, interval: 2, accumulate: 1, rate: 0.5, steps: 4 }), { checkpoint: base, backend: createJsBackend(), data, steps: 4, batch: 4, lr: 3e-3, warmup: 0, maxGradNorm: 1, seed: 1 });
  const paras = paragraphs(readFileSync(TINYSTORIES_VAL, 'utf8')).slice(0, 8);
  const seqs = paras.map((p) => tok.encode(p, { bos: true }).slice(0, 65));
  const rt = new LlamaRuntime(trained.checkpoint, createJsBackend());
  const want = (await rt.evalLoss(seqs, { batch: 8 })).loss;
  rt.dispose();
  const got = lossOf(cli([...evalArgs, '--adapter', out]));
  assert.ok(Math.abs(got - want) < 1e-5, `eval --adapter ${got}, in-process ${want}`);
  const plain = lossOf(cli(evalArgs));
  assert.ok(Math.abs(plain - got) > 1e-4, `the delta changes the model (${plain} vs ${got})`);
  const gen = cli(['generate', '--model', STORIES_GGUF, '--adapter', out, '--max-tokens', '8', '--temperature', '0', '--backend', 'js']);
  assert.is(gen.code, 0, gen.stderr);
  assert.ok(gen.stdout.length > 0, 'generate --adapter DELTA_DIR prints text');
  const an = cli(['analyze', '--model', STORIES_GGUF, '--adapter', out, '--k', '2']);
  assert.is(an.code, 0, an.stderr);
  assert.match(an.stderr, /sparse delta .* added to/);
  // merge: a full model with the same loss.
  const merged = join(dir, 'merged');
  const m = cli(['merge', '--model', STORIES_GGUF, '--adapter', out, '--out', merged, '--format', 'safetensors']);
  assert.is(m.code, 0, m.stderr);
  const mergedLoss = lossOf(cli([...evalArgs, '--adapter', merged]));
  assert.ok(Math.abs(mergedLoss - got) < 1e-5, `merged ${mergedLoss}, delta ${got}`);
  // compose: a second delta (another seed), the composed folder equals the sum applied.
  const out2 = join(dir, 'b');
  assert.is(cli(['train', '--method', 'spiel', ...common, '--seed', '7', '--out', out2]).code, 0);
  const both = join(dir, 'ab');
  const c = cli(['compose', '--model', STORIES_GGUF, '--delta', out, '--delta', out2, '--out', both]);
  assert.is(c.code, 0, c.stderr);
  const d2 = (await loadDeltaFolder(out2)).delta, sum = (await loadDeltaFolder(both)).delta;
  assert.equal(writeSparseDelta(sum), writeSparseDelta(composeSparseDeltas([delta, d2])));
  const vals = valuesOf(base);
  const seq = applySparseDelta(applySparseDelta(vals, delta), d2), once = applySparseDelta(vals, sum);
  for (const [n, t] of once) assert.ok(maxAbsDiff(t, seq.get(n)!) <= 1e-6, `${n}: composed differs from applying both`);
  // Overlapping indices add: the composed entry count is the size of the union.
  for (const [n, t] of sum) assert.ok(t.indices.length <= (delta.get(n)?.indices.length ?? 0) + (d2.get(n)?.indices.length ?? 0));
});

test('refusals: a delta for another model shape, a bad density, a single --delta', async () => {
  const bad = join(dir, 'bad');
  const base = await loadCheckpoint(STORIES_GGUF);
  const name = 'model.layers.0.self_attn.q_proj.weight';
  const size = base.tensors.get(name)!.shape.reduce((a, b) => a * b, 1);
  await import('node:fs/promises').then((fs) => fs.mkdir(bad, { recursive: true }));
  await saveDeltaFolder(bad, new Map([[name, { indices: Int32Array.of(size + 3), values: Float32Array.of(1) }]]));
  const e = cli([...evalArgs, '--adapter', bad]);
  assert.is.not(e.code, 0);
  assert.match(e.stderr, /q_proj\.weight has index \d+, outside the model's tensor of shape/);
  const c = cli(['compose', '--model', STORIES_GGUF, '--delta', bad, '--delta', bad, '--out', join(dir, 'x')]);
  assert.is.not(c.code, 0);
  assert.match(c.stderr, /--delta .*bad: model\.layers\.0\.self_attn\.q_proj\.weight has index/);
  assert.ok(!existsSync(join(dir, 'x')), 'nothing written');
  const one = cli(['compose', '--model', STORIES_GGUF, '--delta', bad, '--out', join(dir, 'y')]);
  assert.match(one.stderr, /at least two --delta/);
  const d = cli(['train', '--method', 'spiel', ...common, '--spiel-density', '1.5', '--out', join(dir, 'z')]);
  assert.is.not(d.code, 0);
  assert.match(d.stderr, /--spiel-density must be/);
  assert.ok(!existsSync(join(dir, 'z')), 'nothing written');
  const fmt = cli(['train', '--method', 'spiel', ...common, '--save-format', 'gguf', '--out', join(dir, 'v')]);
  assert.match(fmt.stderr, /--save-format does not apply to --method spiel/);
  assert.ok(!existsSync(join(dir, 'v')), 'nothing written');
  const acc = cli(['train', '--method', 'spiel', ...common, '--spiel-accumulate', '3', '--out', join(dir, 'w')]);
  assert.match(acc.stderr, /--spiel-accumulate 3 exceeds --spiel-interval 2/);
});

test.run();
