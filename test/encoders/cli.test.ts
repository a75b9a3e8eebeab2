// The classification commands as a user runs them: train --task seq-cls on the UCI sentiment sentences with a
// small random BERT, eval's accuracy and macro-F1 against a count over predict's labels, predict --json,
// token-cls through all three commands, and the errors for bad input.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ASSETS, STORIES_GGUF } from '../assets.js';
import { cli } from '../cli/run.js';
import { convertHfFolder } from '../formats/gguf-convert.js';
import { vocabFor, writeSizedEncoder } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-enc-cli-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const lines = readFileSync(`${ASSETS}data/sentiment/imdb_labelled.txt`, 'utf8').split('\n').filter((l) => l.trim());
const trainFile = join(dir, 'train.txt'), evalFile = join(dir, 'eval.jsonl'), textsFile = join(dir, 'texts.txt');
writeFileSync(trainFile, lines.slice(0, 200).join('\n'));
const held = lines.slice(950, 990).map((l) => ({ text: l.split('\t')[0]!.trim(), label: Number(l.split('\t')[1]) }));
// The held-out set as JSON lines with string labels: "0"/"1" are the names train gave the integer labels.
writeFileSync(evalFile, held.map((e) => JSON.stringify({ text: e.text, label: String(e.label) })).join('\n'));
writeFileSync(textsFile, held.map((e) => e.text).join('\n'));
const model = writeSizedEncoder(join(dir, 'distilbert'), 'distilbert', vocabFor(lines.slice(0, 200).map((l) => l.split('\t')[0]!)), { seed: 5 });
const adapter = join(dir, 'sentiment');

test('train --task seq-cls, eval and predict agree; the folder is a PEFT SEQ_CLS adapter', () => {
  const t = cli(['train', '--task', 'seq-cls', '--model', model, '--data', trainFile, '--steps', '20', '--batch', '16', '--lr', '0.01', '--seq', '32', '--rank', '4', '--out', adapter, '--backend', 'js', '--json']);
  assert.is(t.code, 0, t.stderr);
  const events = t.stdout.trim().split('\n').map((l) => JSON.parse(l));
  const losses = events.filter((e) => e.step !== undefined).map((e) => e.loss as number);
  assert.is(losses.length, 20);
  // A fresh head (weights of std 0.02) starts near uniform over the two labels: ln 2.
  assert.ok(Math.abs(losses[0]! - Math.LN2) < 0.05, `first loss ${losses[0]}`);
  assert.ok(losses.every(Number.isFinite));
  const cfg = JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8'));
  assert.is(cfg.task_type, 'SEQ_CLS');
  // PEFT's DistilBERT targets, and its head modules (pre_classifier added, since PEFT would not save it by itself).
  assert.equal([...cfg.target_modules].sort(), ['q_lin', 'v_lin']);
  assert.equal(cfg.modules_to_save, ['classifier', 'score', 'pre_classifier']);
  assert.equal(JSON.parse(readFileSync(join(adapter, 'labels.json'), 'utf8')).labels, ['0', '1']);

  const e = cli(['eval', '--task', 'seq-cls', '--model', model, '--adapter', adapter, '--data', evalFile, '--backend', 'js', '--json']);
  assert.is(e.code, 0, e.stderr);
  const r = JSON.parse(e.stdout.trim());
  const p = cli(['predict', '--model', model, '--adapter', adapter, '--file', textsFile, '--backend', 'js']);
  assert.is(p.code, 0, p.stderr);
  const pred = p.stdout.trim().split('\n').map(Number);
  assert.is(pred.length, held.length);
  const gold = held.map((h) => h.label);
  assert.is(r.accuracy, gold.filter((y, i) => y === pred[i]).length / gold.length);
  let f1 = 0;
  const present = [...new Set([...gold, ...pred])];
  for (const l of present) {
    const tp = gold.filter((y, i) => y === l && pred[i] === l).length, fp = gold.filter((y, i) => y !== l && pred[i] === l).length, fn = gold.filter((y, i) => y === l && pred[i] !== l).length;
    f1 += (2 * tp) / (2 * tp + fp + fn) / present.length;
  }
  assert.ok(Math.abs(r.macroF1 - f1) < 1e-12, `${r.macroF1} vs ${f1}`);
  assert.ok(r.loss > 0 && r.count === held.length);
  const plain = cli(['eval', '--task', 'seq-cls', '--model', model, '--adapter', adapter, '--data', evalFile, '--backend', 'js']);
  assert.match(plain.stdout, /^accuracy \d\.\d{4} {2}macro-F1 \d\.\d{4} {2}loss \d+\.\d{4} {2}\(40 examples\)\n$/);
  const j = cli(['predict', '--model', model, '--adapter', adapter, '--text', held[0]!.text, '--backend', 'js', '--json']);
  assert.is(j.code, 0, j.stderr);
  const one = JSON.parse(j.stdout);
  assert.is(one.label, String(pred[0]));
  assert.ok(Math.abs(one.probs['0'] + one.probs['1'] - 1) < 1e-6);
});

test('token-cls: train, eval and predict on JSON lines', () => {
  const words = ['good', 'bad', 'movie', 'the', 'great', 'plot'];
  const rows = Array.from({ length: 24 }, (_, r) => {
    const tokens = Array.from({ length: 5 }, (_, i) => words[(r * 7 + i * 3) % words.length]!);
    return JSON.stringify({ tokens, labels: tokens.map((w) => (w === 'good' || w === 'great' ? 'POS' : w === 'bad' ? 'NEG' : 'O')) });
  });
  const data = join(dir, 'tags.jsonl'), out = join(dir, 'tags');
  writeFileSync(data, rows.join('\n'));
  const t = cli(['train', '--task', 'token-cls', '--model', model, '--data', data, '--steps', '5', '--batch', '8', '--out', out, '--backend', 'js']);
  assert.is(t.code, 0, t.stderr);
  assert.is(JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')).task_type, 'TOKEN_CLS');
  const e = cli(['eval', '--task', 'token-cls', '--model', model, '--adapter', out, '--data', data, '--backend', 'js', '--json']);
  assert.is(e.code, 0, e.stderr);
  assert.is(JSON.parse(e.stdout).count, 24 * 5);
  const p = cli(['predict', '--model', model, '--adapter', out, '--text', 'the good movie', '--backend', 'js']);
  assert.is(p.code, 0, p.stderr);
  assert.match(p.stdout, /^the\/(POS|NEG|O) good\/(POS|NEG|O) movie\/(POS|NEG|O)\n$/);
});

test('bad input: unknown label at eval, empty data, a decoder model, a missing head, a wrong task', () => {
  const bad = join(dir, 'bad.jsonl');
  writeFileSync(bad, `${JSON.stringify({ text: 'fine', label: 'maybe' })}\n`);
  const u = cli(['eval', '--task', 'seq-cls', '--model', model, '--adapter', adapter, '--data', bad, '--backend', 'js']);
  assert.is(u.code, 1);
  assert.match(u.stderr, /bad\.jsonl:1: unknown label "maybe" \(the classifier's labels: 0, 1\)/);
  const empty = join(dir, 'empty.txt');
  writeFileSync(empty, '\n');
  const m = cli(['train', '--task', 'seq-cls', '--model', model, '--data', empty, '--out', join(dir, 'x'), '--backend', 'js']);
  assert.is(m.code, 1);
  assert.match(m.stderr, /empty\.txt: no examples/);
  const decoder = join(dir, 'decoder');
  mkdirSync(decoder, { recursive: true });
  writeFileSync(join(decoder, 'config.json'), JSON.stringify({ model_type: 'llama' }));
  const d = cli(['train', '--task', 'seq-cls', '--model', decoder, '--data', trainFile, '--out', join(dir, 'y'), '--backend', 'js']);
  assert.is(d.code, 2);
  assert.match(d.stderr, /model_type "llama" is a decoder; --task seq-cls needs a BERT, RoBERTa or DistilBERT encoder/);
  const noHead = join(dir, 'nohead');
  mkdirSync(noHead, { recursive: true });
  writeFileSync(join(noHead, 'adapter_config.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8')), task_type: 'CAUSAL_LM' }));
  writeFileSync(join(noHead, 'adapter_model.safetensors'), readFileSync(join(adapter, 'adapter_model.safetensors')));
  const h = cli(['predict', '--model', model, '--adapter', noHead, '--text', 'hi', '--backend', 'js']);
  assert.is(h.code, 1);
  assert.match(h.stderr, /task_type "CAUSAL_LM" is not a classification adapter/);
  const w = cli(['eval', '--task', 'token-cls', '--model', model, '--adapter', adapter, '--data', evalFile, '--backend', 'js']);
  assert.is(w.code, 2);
  assert.match(w.stderr, /is a seq-cls adapter, not token-cls/);
  const both = cli(['predict', '--model', model, '--adapter', adapter, '--backend', 'js']);
  assert.is(both.code, 2);
  assert.match(both.stderr, /give exactly one of --text and --file/);
  const r = cli(['train', '--task', 'seq-cls', '--model', model, '--data', trainFile, '--objective', 'dpo', '--out', join(dir, 'z'), '--backend', 'js']);
  assert.is(r.code, 2);
  assert.match(r.stderr, /--objective dpo does not apply to --task seq-cls/);
});

test('a GGUF encoder (llama.cpp bert, converted from the folder): train --task seq-cls, eval and predict agree; a decoder GGUF is refused', () => {
  const gguf = join(dir, 'distilbert.gguf');
  writeFileSync(gguf, convertHfFolder(model));
  const out = join(dir, 'from-gguf');
  const t = cli(['train', '--task', 'seq-cls', '--model', gguf, '--data', trainFile, '--steps', '12', '--batch', '16', '--lr', '0.01', '--seq', '32', '--rank', '4', '--out', out, '--backend', 'js', '--json']);
  assert.is(t.code, 0, t.stderr);
  const losses = t.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.step !== undefined).map((e) => e.loss as number);
  assert.is(losses.length, 12);
  // The file has no pre_classifier / classifier: a fresh head starts near ln 2.
  assert.ok(Math.abs(losses[0]! - Math.LN2) < 0.05, `first loss ${losses[0]}`);
  assert.equal(JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')).task_type, 'SEQ_CLS');
  const e = cli(['eval', '--task', 'seq-cls', '--model', gguf, '--adapter', out, '--data', evalFile, '--backend', 'js', '--json']);
  assert.is(e.code, 0, e.stderr);
  const r = JSON.parse(e.stdout.trim());
  const p = cli(['predict', '--model', gguf, '--adapter', out, '--file', textsFile, '--backend', 'js']);
  assert.is(p.code, 0, p.stderr);
  const pred = p.stdout.trim().split('\n').map(Number);
  assert.is(r.accuracy, held.filter((h, i) => h.label === pred[i]).length / held.length);
  const d = cli(['train', '--task', 'seq-cls', '--model', STORIES_GGUF, '--data', trainFile, '--out', join(dir, 'dec'), '--backend', 'js']);
  assert.is(d.code, 2);
  assert.match(d.stderr, /GGUF architecture "llama" is a decoder; --task seq-cls needs an encoder/);
});

test.run();
