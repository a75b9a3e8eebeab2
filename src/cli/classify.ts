/**
 * Classification with BERT-family encoders: `train --task seq-cls|token-cls`, `eval --task …` (accuracy,
 * macro-F1, loss) and `predict` (labels, with probabilities under --json). The adapter folder is a PEFT
 * folder (task_type SEQ_CLS / TOKEN_CLS, the head in modules_to_save) plus labels.json with the label names.
 */
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { getMethod } from '../adapters/registry.js';
import { type EncoderCheckpoint, isEncoderConfigJson, loadEncoder } from '../model/encoders/checkpoint.js';
import { ggufMeta } from '../formats/gguf.js';
import { readGgufHeader } from '../formats/gguf-llama.js';
import { fileSource } from '../formats/source.js';
import { checkEncoderMethod, EncoderClassifier, LABELS_FILE } from '../model/encoders/classifier.js';
import type { EncoderTask } from '../model/encoders/config.js';
import { encodeExamples, encodeTexts, labelSet, parseClassificationData, type SequenceFrame, sequenceFrame } from '../model/encoders/data.js';
import { positionOffset } from '../model/encoders/config.js';
import { type ChosenBackend, createBackend } from '../scheduler/backends.js';
import { createTokenizer, type Tokenizer, tokenizerDataFromHfJson } from '../tokenizer/index.js';
import { type FlagSpec, type Flags, UsageError, need } from './args.js';
import { resolveModel } from './model-source.js';
import { checkOutput, prepareOutput, writeFileAtomic } from './output.js';
import { Progress } from './progress.js';
import type { DecayKind } from '../train/schedule.js';

const err = (s: string): void => { process.stderr.write(`${s}\n`); };

export const TASKS = ['lm', 'seq-cls', 'token-cls'] as const;
export const taskFlag: Record<string, FlagSpec> = {
  task: {
    type: 'string', default: 'lm', range: { oneOf: TASKS },
    help: 'lm (a decoder, next-token loss) | seq-cls (one label per text) | token-cls (one label per word): the classification tasks need a BERT, RoBERTa or DistilBERT model and train the adapter plus the whole classifier head; --data is JSON lines {"text","label"} (seq-cls) or {"tokens":[…],"labels":[…]} (token-cls), or for seq-cls "sentence<TAB>label" lines',
  },
};

/** Training flags that mean nothing for a classifier (refused with --task seq-cls|token-cls). */
const NOT_FOR_CLASSIFIERS = ['base-dtype', 'ce-chunk', 'resume', 'checkpoint-every', 'dry-run', 'profile', 'checkpointing', 'mixup', 'contrastive', 'augment', 'teacher', 'losses', 'text-prefix', 'chat-template', 'eval-every'];

async function openEncoder(f: Flags, task: EncoderTask, command: string): Promise<{ ckpt: EncoderCheckpoint; tok: Tokenizer; frame: SequenceFrame }> {
  const spec = need(f, 'model', command);
  const path = await resolveModel(spec, err);
  const isFile = existsSync(path) && statSync(path).isFile();
  if ((isFile && !/\.gguf$/i.test(path)) || !existsSync(path)) throw new UsageError(`--model ${spec}: --task ${task} needs a Hugging Face model folder (config.json, model.safetensors, tokenizer.json) of a BERT, RoBERTa or DistilBERT model, or a GGUF file of llama.cpp's bert architecture`);
  const cfgPath = join(path, 'config.json');
  if (!isFile && existsSync(cfgPath)) {
    let cfg: unknown;
    try { cfg = JSON.parse(await readFile(cfgPath, 'utf8')); } catch { cfg = undefined; }
    if (cfg && !isEncoderConfigJson(cfg)) {
      throw new UsageError(`--model ${spec}: model_type ${JSON.stringify((cfg as Record<string, unknown>).model_type)} is a decoder; --task ${task} needs a BERT, RoBERTa or DistilBERT encoder`);
    }
  }
  if (isFile) {
    const src = await fileSource(path);
    let arch: unknown;
    try { arch = ggufMeta(await readGgufHeader(src), 'general.architecture'); } finally { await src.close?.(); }
    if (arch !== 'bert') throw new UsageError(`--model ${spec}: GGUF architecture ${JSON.stringify(arch)} is a decoder; --task ${task} needs an encoder (GGUF architecture bert)`);
  }
  const ckpt = await loadEncoder(path);
  if (f.tokenizer) {
    const t = String(f.tokenizer);
    if (!t.endsWith('.json')) throw new UsageError(`--tokenizer ${t}: an encoder's tokenizer must be a tokenizer.json`);
    ckpt.tokenizer = tokenizerDataFromHfJson(JSON.parse(await readFile(t, 'utf8')), t);
  }
  if (!ckpt.tokenizer) throw new UsageError(`--model ${spec}: ${isFile ? 'the GGUF file holds no tokenizer' : 'no tokenizer.json in the folder'}; pass --tokenizer FILE.json`);
  const tok = createTokenizer(ckpt.tokenizer);
  return { ckpt, tok, frame: sequenceFrame(tok, ckpt.tokenizer) };
}

async function openBackend(f: Flags, quiet: boolean): Promise<ChosenBackend> {
  const chosen = await createBackend(String(f.backend ?? 'auto'), f.threads !== undefined ? { threads: Number(f.threads) } : {});
  if (!quiet) err(`backend: ${chosen.backend.describe()} (${chosen.reason})`);
  return chosen;
}

async function readData(path: string, task: EncoderTask) {
  const text = await readFile(path, 'utf8').catch((e: Error) => { throw new Error(`${path}: ${e.message}`); });
  return parseClassificationData(text, task, path);
}

/** Tokens per example: the flag, at most the model's positions (a default above them is lowered to them). */
function maxTokens(f: Flags, flag: string, ckpt: EncoderCheckpoint, byDefault: number): number {
  const n = Number(f[flag]), limit = ckpt.encoder.maxPositions - positionOffset(ckpt.encoder);
  if (n > limit && n === byDefault) return limit;
  if (n > limit) throw new UsageError(`--${flag} ${n}: exceeds the model's ${limit} positions`);
  return n;
}

async function readClassifier(ckpt: EncoderCheckpoint, dir: string): Promise<EncoderClassifier> {
  const cfgPath = join(dir, 'adapter_config.json'), wPath = join(dir, 'adapter_model.safetensors');
  for (const p of [cfgPath, wPath]) if (!existsSync(p)) throw new Error(`${dir}: not a PEFT adapter folder (missing ${p.slice(dir.length + 1)})`);
  const labels = existsSync(join(dir, LABELS_FILE)) ? await readFile(join(dir, LABELS_FILE), 'utf8') : undefined;
  return EncoderClassifier.load(ckpt, { config: await readFile(cfgPath, 'utf8'), weights: new Uint8Array(await readFile(wPath)), ...(labels !== undefined ? { labels } : {}) }, dir);
}

/** `train --task seq-cls|token-cls`. `methodConfig` turns the flags into the method's options. */
export async function trainClassifier(f: Flags, trainDefaults: Record<string, FlagSpec>, methodConfig: (f: Flags) => Record<string, unknown>): Promise<void> {
  const task = f.task as EncoderTask;
  for (const k of NOT_FOR_CLASSIFIERS) if (f[k] !== undefined && f[k] !== trainDefaults[k]?.default) throw new UsageError(`--${k} does not apply to --task ${task}`);
  if (f.objective !== 'lm') throw new UsageError(`--objective ${f.objective} does not apply to --task ${task}`);
  if (Number(f.accumulate) !== 1) throw new UsageError(`--accumulate does not apply to --task ${task}`);
  if (f.data === 'builtin') throw new UsageError(`--task ${task} needs --data FILE (JSON lines or "sentence<TAB>label" lines)`);
  const out = need(f, 'out', 'train');
  const json = Boolean(f.json);
  const log = (o: Record<string, unknown>): void => { if (json) process.stdout.write(`${JSON.stringify(o)}\n`); };
  checkOutput(out, { overwrite: Boolean(f.overwrite) });
  const { ckpt, tok, frame } = await openEncoder(f, task, 'train');
  const raw = await readData(String(f.data), task);
  const labels = labelSet(raw, ckpt.encoder.labels);
  const seq = maxTokens(f, 'seq', ckpt, Number(trainDefaults.seq!.default));
  const data = encodeExamples(raw, tok, labels, seq, String(f.data), frame);
  const evalData = f['eval-data'] ? encodeExamples(await readData(String(f['eval-data']), task), tok, labels, seq, String(f['eval-data']), frame) : undefined;
  // PEFT's default targets for these models (utils/constants.py): query/value, DistilBERT q_lin/v_lin.
  const method = getMethod(String(f.method));
  checkEncoderMethod(method);
  const config = methodConfig(f);
  const d = ckpt.encoder.kind === 'distilbert';
  if (f.targets === trainDefaults.targets!.default) {
    // IA3's are PEFT's too: keys, values and the feed-forward output, scaled on its input.
    if (method.name === 'ia3') {
      config.targetModules = d ? 'k_lin,v_lin,lin2' : 'key,value,output.dense';
      config.feedforwardModules ??= d ? 'lin2' : 'output.dense';
    } else {
      config.targetModules = d ? 'q_lin,v_lin' : 'query,value';
    }
  } else if (config.targetModules === undefined) {
    config.targetModules = String(f.targets);
  }
  const seed = Number(f.seed);
  const cls = EncoderClassifier.create(ckpt, task, labels, String(f.method), config, { seed });
  cls.checkTrainable(Number(f.steps));
  if (!json) err(`data: ${String(f.data)}: ${data.length} examples, labels ${labels.join(', ')}; ${ckpt.encoder.kind} ${task} head (${cls.headModules.join(', ')}) trained whole`);
  log({ event: 'data', examples: data.length, labels });
  await prepareOutput(out, { overwrite: Boolean(f.overwrite) });
  const chosen = await openBackend(f, json);
  try {
    const steps = Number(f.steps);
    const bar = new Progress('train', steps, process.stderr, json);
    const lr = f.lr !== undefined ? Number(f.lr) : method.defaultLr.value;
    if (!json) err(`adapter: ${method.name} on ${cls.adapterState.modules.length} modules, ${cls.model.parameterCount('default').toLocaleString('en-US')} adapter parameters; lr ${lr}`);
    const losses = await cls.train(chosen.backend, data, {
      steps, batch: Number(f.batch), lr, weightDecay: Number(f['weight-decay']), warmup: Number(f.warmup), seed, decay: f.decay as DecayKind,
      ...(Number(f['max-grad-norm']) > 0 ? { maxGradNorm: Number(f['max-grad-norm']) } : {}),
      onStep: (step, loss) => { log({ step, loss }); bar.update(step, `loss ${loss.toFixed(4)}`); },
    });
    if (evalData) {
      const r = await cls.evaluate(chosen.backend, evalData, Number(f.batch));
      log({ event: 'eval', accuracy: r.accuracy, macroF1: r.macroF1, loss: r.loss, count: r.count });
      if (!json) err(`eval: accuracy ${r.accuracy.toFixed(4)}, macro-F1 ${r.macroF1.toFixed(4)}, loss ${r.loss.toFixed(4)} over ${r.count}`);
    }
    const files = cls.save({ baseModel: String(f.model) });
    await writeFileAtomic(join(out, 'adapter_config.json'), files.config);
    await writeFileAtomic(join(out, 'adapter_model.safetensors'), files.weights);
    await writeFileAtomic(join(out, LABELS_FILE), files.labels);
    log({ event: 'saved', dir: out, finalLoss: losses[losses.length - 1] ?? null });
    if (!json) err(`saved the adapter to ${out}/ (adapter_config.json, adapter_model.safetensors, ${LABELS_FILE})`);
  } finally {
    chosen.backend.dispose();
  }
}

/** `eval --task seq-cls|token-cls --adapter DIR --data FILE`: accuracy, macro-F1 and loss. */
export async function evalClassifier(f: Flags): Promise<void> {
  const task = f.task as EncoderTask;
  const dir = need(f, 'adapter', 'eval'), dataPath = need(f, 'data', 'eval');
  const { ckpt, tok, frame } = await openEncoder(f, task, 'eval');
  const cls = await readClassifier(ckpt, dir);
  if (cls.task !== task) throw new UsageError(`--adapter ${dir} is a ${cls.task} adapter, not ${task}`);
  const data = encodeExamples(await readData(dataPath, task), tok, cls.labels, maxTokens(f, 'max-tokens', ckpt, 256), dataPath, frame);
  const chosen = await openBackend(f, Boolean(f.json));
  try {
    const r = await cls.evaluate(chosen.backend, data, Number(f.batch));
    if (f.json) process.stdout.write(`${JSON.stringify({ accuracy: r.accuracy, macroF1: r.macroF1, loss: r.loss, count: r.count })}\n`);
    else process.stdout.write(`accuracy ${r.accuracy.toFixed(4)}  macro-F1 ${r.macroF1.toFixed(4)}  loss ${r.loss.toFixed(4)}  (${r.count} ${task === 'seq-cls' ? 'examples' : 'tokens'})\n`);
  } finally {
    chosen.backend.dispose();
  }
}

export const predictFlags: Record<string, FlagSpec> = {
  model: { type: 'string', help: 'the base encoder: a Hugging Face folder (config.json, model.safetensors, tokenizer.json) or repo id' },
  tokenizer: { type: 'string', help: 'a tokenizer.json when the model folder has none', path: { kind: 'file' } },
  adapter: { type: 'string', help: 'the adapter folder written by train --task seq-cls|token-cls (or a PEFT SEQ_CLS/TOKEN_CLS folder with labels.json)', path: { kind: 'folder' } },
  text: { type: 'string', help: 'one text to classify (token-cls: words split on whitespace)' },
  file: { type: 'string', help: 'classify every non-empty line of this file', path: { kind: 'file' } },
  'max-tokens': { type: 'int', help: 'cut each text to N tokens including [CLS]/[SEP]', default: 256, range: { integer: true, min: 3 } },
  batch: { type: 'int', help: 'texts per forward pass', default: 16, range: { integer: true, min: 1 } },
  json: { type: 'bool', help: 'one JSON line per text: {"text", "label", "probs": {label: p}} (token-cls: {"tokens", "labels", "probs"})' },
};

/** `predict`: one label per text (seq-cls) or per word (token-cls). */
export async function predictCommand(f: Flags): Promise<void> {
  const dir = need(f, 'adapter', 'predict');
  if ((f.text === undefined) === (f.file === undefined)) throw new UsageError('give exactly one of --text and --file');
  const texts = f.text !== undefined ? [String(f.text)] : (await readFile(String(f.file), 'utf8')).split(/\r?\n/).filter((l) => l.trim() !== '');
  if (texts.length === 0) throw new UsageError(`--file ${String(f.file)}: no non-empty lines`);
  const cfgPath = join(dir, 'adapter_config.json');
  const taskType = existsSync(cfgPath) ? (JSON.parse(await readFile(cfgPath, 'utf8')) as { task_type?: string }).task_type : undefined;
  const { ckpt, tok, frame } = await openEncoder(f, taskType === 'TOKEN_CLS' ? 'token-cls' : 'seq-cls', 'predict');
  const cls = await readClassifier(ckpt, dir);
  const T = maxTokens(f, 'max-tokens', ckpt, Number(predictFlags['max-tokens']!.default));
  const chosen = await openBackend(f, true);
  try {
    if (cls.task === 'seq-cls') {
      const preds = await cls.predict(chosen.backend, encodeTexts(texts, tok, T, frame), Number(f.batch));
      preds.forEach((p, i) => {
        const label = cls.labels[p.label[0]!]!;
        if (f.json) process.stdout.write(`${JSON.stringify({ text: texts[i], label, probs: Object.fromEntries(cls.labels.map((l, j) => [l, p.probs[0]![j]])) })}\n`);
        else process.stdout.write(`${label}\n`);
      });
      return;
    }
    // token-cls: each word's first piece carries its label.
    const words = texts.map((t) => t.split(/\s+/).filter(Boolean));
    const enc = encodeExamples(words.map((w, i) => ({ tokens: w, labels: w.map(() => 0), line: i + 1 })), tok, cls.labels, T, '--text', frame);
    const preds = await cls.predict(chosen.backend, enc, Number(f.batch));
    preds.forEach((p, i) => {
      const firsts = enc[i]!.labels.flatMap((y, t) => (y === -100 ? [] : [t]));
      const labels = firsts.map((t) => cls.labels[p.label[t]!]!);
      const shown = words[i]!.slice(0, labels.length);
      if (f.json) process.stdout.write(`${JSON.stringify({ tokens: shown, labels, probs: firsts.map((t) => Object.fromEntries(cls.labels.map((l, j) => [l, p.probs[t]![j]]))) })}\n`);
      else process.stdout.write(`${shown.map((w, j) => `${w}/${labels[j]}`).join(' ')}\n`);
    });
  } finally {
    chosen.backend.dispose();
  }
}
