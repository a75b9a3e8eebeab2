// Training encoder classifiers through the library: LoRA (SEQ_CLS) on the UCI sentiment sentences with a
// small random BERT, and token classification on a synthetic task. The loss falls; evaluation's accuracy and
// macro-F1 equal a direct count over the predictions; the saved PEFT folder (task_type, modules_to_save,
// PEFT's tensor names) reloads to the same predictions; bad input is refused with a clear message.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createJsBackend } from '../../src/backends/js/index.js';
import { hfModelConfig } from '../../src/formats/hf.js';
import { parseSafetensors } from '../../src/formats/safetensors.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { safetensorsTensorToF32 } from '../../src/formats/safetensors.js';
import { loadEncoderFolder } from '../../src/model/encoders/checkpoint.js';
import { classificationScores, EncoderClassifier } from '../../src/model/encoders/classifier.js';
import { encodeExamples, labelSet, parseClassificationData, sequenceFrame } from '../../src/model/encoders/data.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { ASSETS } from '../assets.js';
import { vocabFor, writeSizedEncoder } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-enc-train-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const js = createJsBackend();

const SENTIMENT = `${ASSETS}data/sentiment/yelp_labelled.txt`;
const lines = readFileSync(SENTIMENT, 'utf8').split('\n').filter((l) => l.trim());
const trainText = lines.slice(0, 240).join('\n'), evalText = lines.slice(900, 960).join('\n');

async function sentimentModel() {
  const model = writeSizedEncoder(join(dir, 'bert'), 'bert', vocabFor(lines.slice(0, 240).map((l) => l.split('\t')[0]!)), { seed: 4 });
  const ckpt = await loadEncoderFolder(model);
  return { ckpt, tok: createTokenizer(ckpt.tokenizer!) };
}

test('LoRA SEQ_CLS on sentiment sentences: loss falls, eval agrees with a count over predictions, the folder reloads the same', async () => {
  const { ckpt, tok } = await sentimentModel();
  const raw = parseClassificationData(trainText, 'seq-cls', 'yelp.txt');
  const labels = labelSet(raw);
  assert.equal(labels, ['0', '1']);
  const train = encodeExamples(raw, tok, labels, 32, 'yelp.txt');
  const held = encodeExamples(parseClassificationData(evalText, 'seq-cls', 'held.txt'), tok, labels, 32, 'held.txt');
  const cls = EncoderClassifier.create(ckpt, 'seq-cls', labels, 'lora', { r: 4, alpha: 8, targetModules: ['query', 'value'] }, { seed: 1 });
  const losses = await cls.train(js, train, { steps: 30, batch: 16, lr: 1e-2, seed: 1 });
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  assert.ok(mean(losses.slice(-6)) < mean(losses.slice(0, 6)) - 0.05, `loss did not fall: ${losses.map((l) => l.toFixed(3)).join(' ')}`);
  // Training accuracy above chance: the head and the adapter learned something.
  const onTrain = await cls.evaluate(js, train);
  assert.ok(onTrain.accuracy > 0.6, `training accuracy ${onTrain.accuracy}`);

  const r = await cls.evaluate(js, held, 7);
  const preds = await cls.predict(js, held, 5);
  const gold = held.map((e) => e.labels[0]!), pred = preds.map((p) => p.label[0]!);
  const right = gold.filter((y, i) => y === pred[i]).length;
  assert.is(r.accuracy, right / gold.length);
  // Macro-F1 counted here by hand from the confusion counts of both labels.
  let f1 = 0;
  for (const l of [0, 1]) {
    const tp = gold.filter((y, i) => y === l && pred[i] === l).length, fp = gold.filter((y, i) => y !== l && pred[i] === l).length, fn = gold.filter((y, i) => y === l && pred[i] !== l).length;
    f1 += (2 * tp) / (2 * tp + fp + fn) / 2;
  }
  assert.ok(Math.abs(r.macroF1 - f1) < 1e-12, `${r.macroF1} vs ${f1}`);
  const ce = -held.reduce((s, e, i) => s + Math.log(preds[i]!.probs[0]![e.labels[0]!]!), 0) / held.length;
  assert.ok(Math.abs(r.loss - ce) < 1e-9);

  // The PEFT folder: task_type, modules_to_save as PEFT writes it, the head under PEFT's key names.
  const files = cls.save();
  const config = JSON.parse(files.config);
  assert.is(config.task_type, 'SEQ_CLS');
  assert.is(config.peft_type, 'LORA');
  assert.equal(config.modules_to_save, ['classifier', 'score']);
  const keys = parseSafetensors(files.weights).tensors.map((t) => t.name).sort();
  assert.ok(keys.includes('base_model.model.classifier.weight') && keys.includes('base_model.model.classifier.bias'), keys.join(' '));
  assert.ok(keys.includes('base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight'), keys.join(' '));
  assert.not.ok(keys.some((k) => k.includes('pooler')), 'the checkpoint\'s pooler stays frozen and unsaved');
  assert.equal(JSON.parse(files.labels).labels, ['0', '1']);
  const again = EncoderClassifier.load(ckpt, files, 'saved');
  // Saved again, the folder is the same (modules_to_save keeps `score`).
  const resaved = again.save();
  assert.is(resaved.config, files.config);
  assert.equal(resaved.weights, files.weights);
  // Without labels.json (a folder PEFT wrote), the head's rows give the labels, named as transformers does.
  assert.equal(EncoderClassifier.load(ckpt, { config: files.config, weights: files.weights }).labels, ['LABEL_0', 'LABEL_1']);
  const reloaded = await again.predict(js, held, 16);
  for (let i = 0; i < held.length; i++) {
    assert.is(reloaded[i]!.label[0], pred[i]);
    assert.ok(Math.abs(reloaded[i]!.probs[0]![1]! - preds[i]!.probs[0]![1]!) < 1e-6);
  }
});

test('token classification learns a synthetic tagging task (loss falls, tokens scored on first pieces only)', async () => {
  const { ckpt, tok } = await sentimentModel();
  const good = ['good', 'great', 'amazing', 'delicious', 'friendly'], bad = ['bad', 'slow', 'rude', 'cold', 'terrible'], other = ['the', 'food', 'was', 'and', 'service', 'place'];
  let seed = 7;
  const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x80000000; };
  const rows = Array.from({ length: 64 }, () => {
    const tokens = Array.from({ length: 6 }, () => { const r = rnd(); const set = r < 0.3 ? good : r < 0.6 ? bad : other; return set[Math.floor(rnd() * set.length)]!; });
    return JSON.stringify({ tokens, labels: tokens.map((t) => (good.includes(t) ? 'POS' : bad.includes(t) ? 'NEG' : 'O')) });
  });
  const raw = parseClassificationData(rows.join('\n'), 'token-cls', 'tags.jsonl');
  const labels = labelSet(raw);
  assert.equal(labels, ['NEG', 'O', 'POS']);
  const data = encodeExamples(raw, tok, labels, 40, 'tags.jsonl');
  // [CLS] and [SEP] are not scored; every word is, once.
  assert.is(data[0]!.labels.filter((l) => l !== -100).length, 6);
  assert.is(data[0]!.labels[0], -100);
  const cls = EncoderClassifier.create(ckpt, 'token-cls', labels, 'lora', { r: 4, alpha: 8, targetModules: ['query', 'value'] }, { seed: 2 });
  const losses = await cls.train(js, data, { steps: 60, batch: 16, lr: 2e-2, seed: 2 });
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  assert.ok(mean(losses.slice(-5)) < 0.6 * mean(losses.slice(0, 5)), `loss did not fall: ${losses.map((l) => l.toFixed(3)).join(' ')}`);
  const r = await cls.evaluate(js, data);
  assert.ok(r.accuracy > 0.7, `token accuracy ${r.accuracy}`);
  assert.is(r.count, 64 * 6);
  const files = cls.save();
  assert.is(JSON.parse(files.config).task_type, 'TOKEN_CLS');
  const again = await EncoderClassifier.load(ckpt, files).evaluate(js, data);
  assert.is(again.accuracy, r.accuracy);
});

test('classificationScores: hand-worked accuracy and macro-F1', () => {
  // gold 0 0 1 1 2, pred 0 1 1 1 0: label 0 tp1 fp1 fn1 → 0.5; label 1 tp2 fp1 fn0 → 0.8; label 2 tp0 fn1 → 0.
  const s = classificationScores([0, 0, 1, 1, 2], [0, 1, 1, 1, 0]);
  assert.is(s.accuracy, 3 / 5);
  assert.ok(Math.abs(s.macroF1 - (0.5 + 0.8 + 0) / 3) < 1e-12);
});

test('sequence frame: BertProcessing / RobertaProcessing ids, else BOS/EOS, else a clear error', async () => {
  const { tok, ckpt } = await sentimentModel();
  assert.equal(sequenceFrame(tok, ckpt.tokenizer), { cls: 2, sep: 3 });
  const roberta = { kind: 'hf-json' as const, tokens: [], json: { post_processor: { type: 'RobertaProcessing', cls: ['<s>', 0], sep: ['</s>', 2] } } };
  const bare = { ...tok, bosId: undefined, eosId: undefined, encode: tok.encode.bind(tok) };
  assert.equal(sequenceFrame(bare, roberta), { cls: 0, sep: 2 });
  assert.throws(() => sequenceFrame(bare, { kind: 'hf-json', tokens: [], json: {}, source: 'tok.json' }), /tok\.json: no \[CLS\]\/\[SEP\]/);
  // The frame is what encoding uses.
  const [e] = encodeExamples(parseClassificationData('good film\t1', 'seq-cls', 'f.txt'), tok, ['0', '1'], 16, 'f.txt', { cls: 7, sep: 9 });
  assert.is(e!.ids[0], 7);
  assert.is(e!.ids[e!.ids.length - 1], 9);
});

test('methods: IA3 (PEFT\'s encoder targets) trains and reloads; methods the encoder cannot host are refused', async () => {
  const { ckpt } = await sentimentModel();
  const data = [{ ids: [2, 5, 6, 3], labels: [0] }, { ids: [2, 7, 3], labels: [1] }];
  const ia3 = EncoderClassifier.create(ckpt, 'seq-cls', ['0', '1'], 'ia3', { targetModules: 'key,value,output.dense', feedforwardModules: 'output.dense' });
  // output.dense matches both the attention output and the feed-forward output, as PEFT's suffix rule does.
  assert.is(ia3.adapterState.modules.length, 2 * 4);
  const before = await ia3.predict(js, data);
  await ia3.train(js, data, { steps: 3, batch: 2, lr: 0.05 });
  const after = await ia3.predict(js, data);
  assert.ok(Math.abs(after[0]!.probs[0]![0]! - before[0]!.probs[0]![0]!) > 1e-4, 'IA3 training changed nothing');
  const again = await EncoderClassifier.load(ckpt, ia3.save()).predict(js, data);
  assert.ok(Math.abs(again[0]!.probs[0]![0]! - after[0]!.probs[0]![0]!) < 1e-6);
  assert.throws(() => EncoderClassifier.create(ckpt, 'seq-cls', ['0', '1'], 'prompt-tuning', {}), /prompt-tuning adapts the input embeddings \(virtual tokens\), which the encoder classifiers do not support; use lora/);
  assert.throws(() => EncoderClassifier.create(ckpt, 'seq-cls', ['0', '1'], 'bottleneck', {}), /bottleneck adapts sublayer outputs/);
  const ada = EncoderClassifier.create(ckpt, 'seq-cls', ['0', '1'], 'adalora', { targetModules: 'query', totalStep: 10 });
  const refused = await ada.train(js, data, { steps: 2 }).then(() => undefined, (e: Error) => e.message);
  assert.match(refused ?? 'trained', /adalora steers its training with a controller/);
});

test('checkpoint forms: a bare BertModel (no prefix, no pooler) loads; its fresh pooler trains and is saved as modules_to_save', async () => {
  const { ckpt } = await sentimentModel();
  // The bare form: names without `bert.`, no pooler, no head.
  const bare = new Map([...ckpt.tensors].filter(([k]) => !k.includes('pooler') && !k.startsWith('classifier')).map(([k, t]) => [k.replace(/^bert\./, ''), { shape: t.shape, data: Float32Array.from((t as { data: Float32Array }).data) }] as const));
  const folder = join(dir, 'bare');
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'model.safetensors'), writeSafetensors([...bare].map(([k, t]) => [k, t] as [string, { shape: number[]; data: Float32Array }])));
  writeFileSync(join(folder, 'config.json'), readFileSync(join(dir, 'bert', 'config.json')));
  const loaded = await loadEncoderFolder(folder);
  assert.ok(loaded.tensors.has('bert.encoder.layer.1.output.dense.weight'));
  assert.not.ok(loaded.tensors.has('bert.pooler.dense.weight'));
  const cls = EncoderClassifier.create(loaded, 'seq-cls', ['0', '1'], 'lora', { r: 2, targetModules: ['query'] }, { seed: 3 });
  assert.equal(cls.headModules, ['bert.pooler.dense', 'classifier']);
  const data = [{ ids: [2, 5, 6, 3], labels: [0] }, { ids: [2, 7, 3], labels: [1] }];
  await cls.train(js, data, { steps: 3, batch: 2, lr: 0.05 });
  const files = cls.save();
  assert.equal(JSON.parse(files.config).modules_to_save, ['classifier', 'score', 'pooler']);
  const keys = parseSafetensors(files.weights).tensors.map((t) => t.name);
  assert.ok(keys.includes('base_model.model.bert.pooler.dense.weight') && keys.includes('base_model.model.bert.pooler.dense.bias'), keys.join(' '));
  // The trained pooler differs from a fresh one, and reloading restores it (the same predictions).
  const pooler = safetensorsTensorToF32(parseSafetensors(files.weights), 'base_model.model.bert.pooler.dense.weight');
  const fresh = EncoderClassifier.create(loaded, 'seq-cls', ['0', '1'], 'lora', { r: 2, targetModules: ['query'] }, { seed: 3 });
  assert.ok(pooler.some((v, i) => Math.abs(v - (fresh.adapterState.baseOverrides.get('bert.pooler.dense.weight') as { data: Float32Array }).data[i]!) > 1e-4));
  const [a, b] = [await cls.predict(js, data), await EncoderClassifier.load(loaded, files).predict(js, data)];
  assert.ok(Math.abs(a[1]!.probs[0]![1]! - b[1]!.probs[0]![1]!) < 1e-6);
  // A missing encoder tensor is named.
  bare.delete('encoder.layer.1.output.dense.weight');
  writeFileSync(join(folder, 'model.safetensors'), writeSafetensors([...bare].map(([k, t]) => [k, t] as [string, { shape: number[]; data: Float32Array }])));
  await loadEncoderFolder(folder).then(() => assert.unreachable('loaded'), (e: Error) => assert.match(e.message, /no tensor bert\.encoder\.layer\.1\.output\.dense\.weight/));
});

test('bad input is refused with messages that name the problem', async () => {
  const { ckpt, tok } = await sentimentModel();
  assert.throws(() => parseClassificationData('\n\n', 'seq-cls', 'empty.txt'), /empty\.txt: no examples/);
  // The decoder loaders point an encoder's config to the classification commands.
  assert.throws(() => hfModelConfig({ model_type: 'distilbert' }), /model_type distilbert is not supported \(supported: .*\); a BERT-family encoder is used for classification: train\/eval --task seq-cls\|token-cls and predict/);
  assert.throws(() => parseClassificationData('no tab here', 'seq-cls', 'x.txt'), /x\.txt:1: expected "sentence<TAB>label"/);
  assert.throws(() => parseClassificationData('{"text": "hi"}', 'seq-cls', 'x.jsonl'), /x\.jsonl:1: "label" must be/);
  assert.throws(() => parseClassificationData('{"tokens": ["a", "b"], "labels": ["O"]}', 'token-cls', 't.jsonl'), /t\.jsonl:1: 2 tokens but 1 labels/);
  assert.throws(() => labelSet(parseClassificationData('a\tx\nb\tx', 'seq-cls', 'one.txt')), /single label/);
  assert.throws(() => encodeExamples(parseClassificationData('fine\t7', 'seq-cls', 'e.txt'), tok, ['0', '1'], 32, 'e.txt'), /e\.txt:1: unknown label 7 \(the classifier's labels: 0, 1\)/);
  // A folder without the head (modules_to_save dropped and its tensors left out) is refused.
  const cls = EncoderClassifier.create(ckpt, 'seq-cls', ['0', '1'], 'lora', { r: 2, targetModules: ['query'] });
  const files = cls.save();
  const file = parseSafetensors(files.weights);
  const kept = file.tensors.filter((t) => !t.name.includes('classifier')).map((t) => [t.name, { shape: [...t.shape], data: safetensorsTensorToF32(file, t) }] as [string, { shape: number[]; data: Float32Array }]);
  const headless = { config: JSON.stringify({ ...JSON.parse(files.config), modules_to_save: null }), weights: writeSafetensors(kept), labels: files.labels };
  assert.throws(() => EncoderClassifier.load(ckpt, headless, 'headless'), /headless: the adapter has no trained classifier/);
  assert.throws(() => EncoderClassifier.load(ckpt, { ...files, config: JSON.stringify({ ...JSON.parse(files.config), task_type: 'CAUSAL_LM' }) }, 'lm'), /task_type "CAUSAL_LM" is not a classification adapter/);
  // A head of the wrong size in the checkpoint.
  assert.throws(() => EncoderClassifier.create({ ...cls.base, tensors: cls.base.tensors }, 'seq-cls', ['a', 'b', 'c'], 'lora', { r: 2 }), /classifier is \[2, 32\], a seq-cls head for 3 labels needs \[3, 32\]/);
});

test.run();
