// adaptkit train --method galore|q-galore: the saved model folder is what eval --adapter reads (the loss of
// the model trained in this process with the same options); the options reach the method; bad values are
// refused by name before anything is read or written.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createJsBackend } from '../../src/backends/js/index.js';
import { heroStories } from '../../src/data/builtin-task.js';
import { pack, textExamples } from '../../src/data/dataset.js';
import { paragraphs } from '../../src/data/text.js';
import { loadCheckpoint, tensorF32 } from '../../src/formats/checkpoint.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { galoreUpdater } from '../../src/updaters/galore/index.js';
import { qGaLoreUpdater } from '../../src/updaters/q-galore/index.js';
import { trainBaseWeights } from '../../src/updaters/train.js';
import type { Updater } from '../../src/updaters/types.js';
import { STORIES_GGUF, TINYSTORIES_VAL } from '../assets.js';
import { cli } from '../cli/run.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-galore-'));
const common = ['--model', STORIES_GGUF, '--steps', '3', '--batch', '4', '--seq', '32', '--lr', '1e-3', '--warmup', '0', '--backend', 'js'];
const evalArgs = ['eval', '--model', STORIES_GGUF, '--data', TINYSTORIES_VAL, '--paragraphs', '8', '--max-tokens', '64', '--backend', 'js', '--json'];

/** The held-out loss eval reports for a model trained here, in this process, with the CLI's data and schedule. */
async function inProcess(updater: Updater): Promise<number> {
  const base = await loadCheckpoint(STORIES_GGUF);
  const tok = createTokenizer(base.tokenizer!);
  const data = pack(textExamples(heroStories(96), tok, 32), 32, 0);
  const trained = await trainBaseWeights(updater, { checkpoint: base, backend: createJsBackend(), data, steps: 3, batch: 4, lr: 1e-3, warmup: 0, maxGradNorm: 1, seed: 1 });
  const seqs = paragraphs(readFileSync(TINYSTORIES_VAL, 'utf8')).slice(0, 8).map((p) => tok.encode(p, { bos: true }).slice(0, 65));
  const rt = new LlamaRuntime(trained.checkpoint, createJsBackend());
  const loss = (await rt.evalLoss(seqs, { batch: 8 })).loss;
  rt.dispose();
  return loss;
}

const evalLoss = (extra: string[]): number => {
  const r = cli([...evalArgs, ...extra]);
  assert.is(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!).loss;
};

test('train --method galore and q-galore save a model folder; eval --adapter gives the loss of the same training in-process', async () => {
  const plain = evalLoss([]);
  for (const [method, flags, make] of [
    ['galore', ['--galore-rank', '8', '--galore-interval', '2', '--galore-scale', '0.5'], () => galoreUpdater({ rank: 8, interval: 2, scale: 0.5 })],
    ['q-galore', ['--qgalore-rank', '8', '--qgalore-interval', '1', '--qgalore-window', '1', '--qgalore-cos-threshold', '0'], () => qGaLoreUpdater({ rank: 8, interval: 1, window: 1, cosThreshold: 0 })],
  ] as const) {
    const out = join(dir, method);
    const r = cli(['train', '--method', method, ...common, ...flags, '--out', out, '--json']);
    assert.is(r.code, 0, r.stderr);
    for (const f of ['model.safetensors', 'config.json']) assert.ok(existsSync(join(out, f)), `${method}: ${f}`);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(events.filter((e) => e.step !== undefined).map((e) => e.step), [1, 2, 3]);
    // Every weight trains (the projected ones through their subspace).
    assert.ok(events.every((e) => e.step === undefined || e.trainableFraction === 1));
    const summary = events.find((e) => e.event === 'summary');
    if (method === 'galore') {
      assert.is(summary.galoreRank, 8);
      assert.is(summary.galoreProjected, 35);
      // T = 2: SVDs at steps 1 and 3 for each of the 35 projected weights.
      assert.is(summary.galoreSvds, 70);
    } else {
      // T = 1, doubling after every stable comparison (threshold 0, window 1): SVDs at steps 1, 2 (→ T 2), then 4 > 3.
      assert.is(summary.qgaloreSvds, 70);
      assert.is(summary.qgaloreDoublings, 35);
      assert.ok(summary.qgaloreInt8Bytes > 0);
    }
    const got = evalLoss(['--adapter', out]);
    const want = await inProcess(make());
    assert.ok(Math.abs(got - want) < 1e-5, `${method}: eval --adapter ${got}, in-process ${want}`);
    assert.ok(Math.abs(plain - got) > 1e-5, `${method}: the trained model's loss differs from the base's (${plain} vs ${got})`);
    // The projected weights themselves moved (by more than round-off).
    const saved = await loadCheckpoint(out), base = await loadCheckpoint(STORIES_GGUF);
    const name = 'model.layers.2.self_attn.q_proj.weight';
    const a = tensorF32(saved.tensors.get(name)!), b = tensorF32(base.tensors.get(name)!);
    assert.ok(a.some((x, i) => Math.abs(x - b[i]!) > 1e-4), `${method}: ${name} moved`);
  }
});

test('bad option values are refused by name before anything is written; help lists the flags', () => {
  for (const [flags, message] of [
    [['--method', 'galore', '--galore-rank', '0'], /--galore-rank must be/],
    [['--method', 'galore', '--galore-interval', '2.5'], /--galore-interval/],
    [['--method', 'galore', '--galore-scale', '-1'], /--galore-scale must be/],
    [['--method', 'q-galore', '--qgalore-cos-threshold', '1.5'], /--qgalore-cos-threshold must be/],
    [['--method', 'q-galore', '--qgalore-window', '0'], /--qgalore-window must be/],
    [['--method', 'galore', '--rank', '4'], /--rank does not apply to --method galore/],
  ] as const) {
    const out = join(dir, 'refused');
    const r = cli(['train', ...flags, ...common, '--out', out]);
    assert.is(r.code, 2, `${flags.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.not.ok(existsSync(out), 'nothing written');
  }
  const help = cli(['train', '--help']);
  for (const flag of ['--galore-rank', '--galore-interval', '--galore-scale', '--qgalore-rank', '--qgalore-interval', '--qgalore-scale', '--qgalore-cos-threshold', '--qgalore-window']) assert.ok(help.stdout.includes(flag), flag);
});

test.run();
