/**
 * `adaptkit train --method full|lisa|hft|…`: methods that train the base model's own weights (src/updaters).
 * The result is a whole model folder (Hugging Face layout and/or GGUF, as `merge` writes it), which
 * `eval --adapter DIR` and `generate --adapter DIR` use in the model's place; a method whose result is a sparse
 * delta (SpIEL, LT-SFT, grafting: the Updater has `sparseDelta`) saves a delta folder instead, applied to --model.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Example } from '../data/dataset.js';
import { pack } from '../data/dataset.js';
import { type LlamaCheckpoint, loadCheckpoint } from '../formats/checkpoint.js';
import type { BaseDType } from '../formats/storage.js';
import type { ChosenBackend } from '../scheduler/backends.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { UPDATERS } from '../updaters/index.js';
import { DELTA_CONFIG, DELTA_WEIGHTS, saveDeltaFolder } from '../updaters/sparse/folder.js';
import { trainBaseWeights } from '../updaters/train.js';
import { type FlagSpec, type Flags, UsageError, need } from './args.js';
import { prepareOutput } from './output.js';
import { Progress } from './progress.js';
import { MODEL_DTYPES, type ModelFormat, writeModel } from './write-model.js';

const err = (s: string): void => { process.stderr.write(`${s}\n`); };

/** Whether `--method NAME` names a base-weight method (rather than an adapter). */
export function isBaseMethod(name: unknown): boolean {
  return typeof name === 'string' && Object.hasOwn(UPDATERS, name);
}

/** Every base-weight method's options, as train's flags (`--lisa-layers`, `--hft-stage`, …), and the saving flags. */
export function baseMethodFlags(): Record<string, FlagSpec> {
  const out: Record<string, FlagSpec> = {
    'save-format': { type: 'string', help: 'base-weight methods (full, lisa, hft, …; not spiel, which saves a sparse delta): how --out holds the trained model: safetensors (Hugging Face layout) | gguf | both', default: 'safetensors', range: { oneOf: ['safetensors', 'gguf', 'both'] } },
    'save-dtype': { type: 'string', help: 'base-weight methods: type of the 2-D weights written: f32 | f16, or q8_0 | q4_0 (GGUF only)', default: 'f32', range: { oneOf: [...MODEL_DTYPES] } },
  };
  for (const [method, entry] of Object.entries(UPDATERS)) {
    for (const [flag, o] of Object.entries(entry.options)) out[flag] = { ...o, help: `--method ${method}: ${o.help}` };
  }
  return out;
}

/** Flags of adapter training that base-weight methods do not take: refused when given other than their default. */
const ADAPTER_ONLY = ['targets', 'layers', 'rank', 'alpha', 'dropout', 'rslora', 'dora', 'init', 'accumulate', 'checkpoint-every', 'resume', 'profile', 'dry-run', 'checkpointing', 'mixup', 'contrastive', 'augment', 'teacher', 'losses'];

/** The base model's default learning rate when --lr is not given. */
export const BASE_DEFAULT_LR = 1e-4;

export interface TrainBaseDeps {
  openTextModel(f: Flags): Promise<{ ckpt: LlamaCheckpoint; tok: Tokenizer }>;
  openBackend(f: Flags, quiet?: boolean): Promise<ChosenBackend>;
  loadExamples(spec: string, tok: Tokenizer, seq: number, quiet?: boolean): Promise<{ examples: Example[]; source: string }>;
  spec: Readonly<Record<string, FlagSpec>>;
}

export async function trainBaseCommand(f: Flags, deps: TrainBaseDeps): Promise<void> {
  const method = String(f.method);
  const entry = UPDATERS[method]!;
  // Everything that cannot apply is refused before the model is read.
  for (const k of ADAPTER_ONLY) {
    if (f[k] !== undefined && f[k] !== deps.spec[k]?.default) throw new UsageError(`--${k} does not apply to --method ${method} (it trains the base weights, not an adapter)`);
  }
  if (f.task !== undefined && f.task !== 'lm') throw new UsageError(`--task ${f.task} does not apply to --method ${method}; it trains next-token prediction`);
  if (f.objective !== undefined && f.objective !== 'lm') throw new UsageError(`--objective ${f.objective} does not apply to --method ${method}; it trains next-token prediction`);
  const out = need(f, 'out', 'train');
  const format = String(f['save-format']) as ModelFormat, dtype = String(f['save-dtype']) as (typeof MODEL_DTYPES)[number];
  if (format === 'safetensors' && (dtype === 'q8_0' || dtype === 'q4_0')) throw new UsageError(`--save-dtype ${dtype} is written in GGUF only; pass --save-format gguf or both`);
  const present = ['model.safetensors', 'config.json', 'model.gguf', DELTA_WEIGHTS, DELTA_CONFIG].filter((n) => existsSync(join(out, n)));
  if (present.length && !f.overwrite) throw new UsageError(`--out ${out} already holds a model (${present.join(', ')}); pass --overwrite to replace it, or another --out`);
  const json = Boolean(f.json);
  const log = (o: Record<string, unknown>): void => { if (json) process.stdout.write(`${JSON.stringify(o)}\n`); };
  const { ckpt, tok } = await deps.openTextModel(f);
  const optionValues = Object.fromEntries(Object.keys(entry.options).map((k) => [k, f[k]]));
  const seq = Number(f.seq);
  if (seq > ckpt.config.maxSeqLen) throw new UsageError(`--seq ${seq} exceeds the model's context of ${ckpt.config.maxSeqLen} tokens`);
  let updater;
  try {
    updater = entry.create(optionValues, ckpt.config, { config: ckpt.config, batch: Number(f.batch), seq, steps: Number(f.steps) });
    // A method that starts elsewhere than --model (grafting) reads its starting point now, so bad input is refused before the data.
    if (updater.start) await updater.start(ckpt);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  // A sparse method writes a delta folder; the whole-model saving flags cannot apply.
  if (updater.sparseDelta) for (const k of ['save-format', 'save-dtype']) {
    if (f[k] !== deps.spec[k]?.default) throw new UsageError(`--${k} does not apply to --method ${method}: it saves a sparse delta (merge --adapter DIR writes the whole model)`);
  }
  const loaded = await deps.loadExamples(String(f.data), tok, seq, json);
  const data = pack(loaded.examples, seq, 0);
  if (data.paddingRatio === 1 || data.rows === 0) throw new UsageError(`--data ${loaded.source}: none of its ${loaded.examples.length} examples has a token to predict (they are empty)`);
  if (!json) err(`data: ${loaded.source}: ${loaded.examples.length} examples packed into ${data.rows} rows of ${seq} tokens`);
  const evalData = f['eval-data'] ? pack((await deps.loadExamples(String(f['eval-data']), tok, seq, true)).examples, seq, 0) : undefined;
  await prepareOutput(out, { overwrite: Boolean(f.overwrite) });
  const chosen = await deps.openBackend(f, json);
  const lr = f.lr !== undefined ? Number(f.lr) : entry.defaultLr ?? BASE_DEFAULT_LR;
  if (!json) err(`method: ${method} (${entry.help}); lr ${lr}${f.lr === undefined ? ` (the default for ${entry.defaultLr !== undefined ? method : 'base weights'})` : ''}`);
  const steps = Number(f.steps);
  const bar = new Progress('train', steps, process.stderr, json);
  const started = performance.now();
  let tokens = 0;
  try {
    const r = await trainBaseWeights(updater, {
      checkpoint: ckpt, backend: chosen.backend, data, steps, batch: Number(f.batch), lr,
      warmup: Number(f.warmup), decay: f.decay as 'cosine', weightDecay: Number(f['weight-decay']),
      ...(Number(f['max-grad-norm']) > 0 ? { maxGradNorm: Number(f['max-grad-norm']) } : {}),
      seed: Number(f.seed),
      ...(evalData ? { evalData, evalEvery: Number(f['eval-every']) } : {}),
      log: (line) => { if (!json) err(line); log({ event: 'log', line }); },
      onStep: (s) => {
        tokens += Number(f.batch) * seq;
        const tps = tokens / ((performance.now() - started) / 1000);
        log({ step: s.step, loss: s.loss, lr: s.lr, gradNorm: s.gradNorm, trainableFraction: s.trainableFraction, tokensPerSecond: tps });
        bar.update(s.step, `loss ${s.loss.toFixed(4)} trainable ${(100 * s.trainableFraction).toFixed(1)}% ${tps.toFixed(0)} tok/s`);
      },
      onEval: (e) => { log({ event: 'eval', step: e.step, loss: e.loss }); if (!json) err(`eval at step ${e.step}: loss ${e.loss.toFixed(4)}`); },
    });
    const summary = { ...r.summary, optimizerStateBytes: r.optimizerStateBytes, stepMs: r.stepMs };
    log({ event: 'summary', ...summary });
    if (!json) err(`summary: ${Object.entries(summary).map(([k, v]) => `${k} ${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(4) : v}`).join(', ')}`);
    // A method whose result is a sparse delta saves the delta folder (eval|generate|merge --adapter DIR apply it to the base).
    const written = r.sparseDelta
      ? await saveDeltaFolder(out, r.sparseDelta, { method, baseModel: String(f.model), ...(typeof f[`${method}-density`] === 'number' ? { density: Number(f[`${method}-density`]) } : {}) })
      : await writeModel(r.checkpoint, out, format, dtype);
    if (r.sparseDelta && !json) err(`saved the sparse delta to ${out}/ (${written.join(', ')}): ${[...r.sparseDelta.values()].reduce((a, d) => a + d.indices.length, 0)} entries over ${r.sparseDelta.size} tensors`);
    log({ event: 'saved', dir: out, files: written, finalLoss: r.losses[r.losses.length - 1] ?? null, ...(r.evalLoss !== undefined ? { evalLoss: r.evalLoss } : {}) });
  } finally {
    chosen.backend.dispose();
  }
}

/** Whether a folder holds a whole model (a Hugging Face layout or a GGUF file) rather than a PEFT adapter. */
export function isModelFolder(dir: string): boolean {
  if (existsSync(join(dir, 'adapter_config.json'))) return false;
  return (existsSync(join(dir, 'config.json')) && existsSync(join(dir, 'model.safetensors'))) || existsSync(join(dir, 'model.gguf'));
}

/**
 * A whole-model folder given as --adapter (what train --method full|lisa|hft writes): loaded to be used in
 * the base model's place; it must have the base's shape and vocabulary, so the base's tokenizer applies.
 */
export async function loadModelFolder(dir: string, base: LlamaCheckpoint, baseDtype: BaseDType): Promise<LlamaCheckpoint> {
  const path = existsSync(join(dir, 'config.json')) ? dir : join(dir, 'model.gguf');
  const ckpt = await loadCheckpoint(path, { baseDtype });
  const a = ckpt.config, b = base.config;
  for (const k of ['dim', 'nLayers', 'nHeads', 'nKvHeads', 'vocabSize', 'hiddenDim'] as const) {
    if (a[k] !== b[k]) throw new Error(`--adapter ${dir}: this model folder has ${k} ${a[k]}, the base model (--model) ${b[k]}; it was not trained from this base`);
  }
  return { ...ckpt, ...(ckpt.tokenizer ? {} : base.tokenizer ? { tokenizer: base.tokenizer } : {}) };
}
