/**
 * Encoder checkpoints: a Hugging Face folder (config.json, model.safetensors, tokenizer.json) of a BERT,
 * RoBERTa or DistilBERT model, with or without a classification head. Tensors are kept under the names of
 * transformers' *ForSequenceClassification / *ForTokenClassification classes (`bert.…`, `classifier.…`);
 * a bare BertModel's names (`embeddings.…`) get the `bert.` prefix. A head the checkpoint lacks is
 * initialised seeded as transformers does (weights normal with std initializer_range, biases zero).
 */
import { directorySource, type LlamaCheckpoint, type NamedTensor } from '../../formats/checkpoint.js';
import type { FileSource } from '../../formats/hf.js';
import { parseSafetensors, safetensorsTensorToF32 } from '../../formats/safetensors.js';
import { tokenizerDataFromHfJson } from '../../tokenizer/hf-json.js';
import { gaussian, seededRandom } from '../../util/random.js';
import { fileSource } from '../../formats/source.js';
import { readGgufEncoder } from './gguf.js';
import { type EncoderConfig, type EncoderTask, ENCODER_MODEL_TYPES, adapterModelConfig, encoderConfig, encoderPrefix, encoderTensorShapes, headLinears } from './config.js';

/** A LlamaCheckpoint (so adapters, PEFT save and load work on it) that carries an encoder's config. */
export interface EncoderCheckpoint extends LlamaCheckpoint {
  encoder: EncoderConfig;
}

export function isEncoderCheckpoint(c: LlamaCheckpoint): c is EncoderCheckpoint {
  return (c as Partial<EncoderCheckpoint>).encoder !== undefined;
}

/** Whether a parsed config.json is an encoder's. */
export const isEncoderConfigJson = (cfg: unknown): boolean =>
  typeof cfg === 'object' && cfg !== null && (ENCODER_MODEL_TYPES as readonly unknown[]).includes((cfg as Record<string, unknown>).model_type);

/** An encoder checkpoint from config.json's object and the file's tensors; shapes are checked, extra tensors (MLM heads) dropped. */
export function encoderCheckpoint(cfg: Record<string, unknown>, file: Map<string, NamedTensor>, source: string): EncoderCheckpoint {
  const c = encoderConfig(cfg, `${source}/config.json`);
  const prefix = encoderPrefix(c), bare = c.kind === 'distilbert' ? /^(embeddings|transformer)\./ : /^(embeddings|encoder|pooler)\./;
  const tensors = new Map<string, NamedTensor>();
  for (const [k, t] of file) tensors.set(bare.test(k) ? `${prefix}${k}` : k, t);
  const out = new Map<string, NamedTensor>();
  for (const [k, shape] of encoderTensorShapes(c)) {
    const t = tensors.get(k);
    if (!t) throw new Error(`${source}: no tensor ${k} (a ${c.kind} checkpoint needs it)`);
    if (t.shape.join() !== shape.join()) throw new Error(`${source}: tensor ${k} is [${t.shape.join(', ')}], config.json implies [${shape.join(', ')}]`);
    out.set(k, t);
  }
  // Head tensors, when present, are kept (checked against the task when a head is attached).
  const headNames = ['bert.pooler.dense', 'classifier', 'classifier.dense', 'classifier.out_proj', 'pre_classifier'];
  for (const [k, t] of tensors) if (headNames.some((h) => k === `${h}.weight` || k === `${h}.bias`)) out.set(k, t);
  return { config: adapterModelConfig(c), encoder: c, tensors: out, source };
}

/**
 * Read an encoder folder (config.json, model.safetensors, optional tokenizer.json and tokenizer_config.json):
 * a path on disk, or a FileSource (files in memory, a browser's picked folder).
 */
export async function loadEncoderFolder(input: string | FileSource): Promise<EncoderCheckpoint> {
  const src = typeof input === 'string' ? directorySource(input) : input;
  const at = (name: string) => `${src.name}/${name}`;
  const json = async (name: string): Promise<Record<string, unknown> | undefined> => {
    const bytes = await src.read(name);
    if (!bytes) return undefined;
    try { return JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>; } catch (e) { throw new Error(`${at(name)}: not valid JSON (${(e as Error).message})`); }
  };
  const config = await json('config.json');
  if (!config) throw new Error(`${src.name}: no config.json (an encoder folder needs config.json and model.safetensors)`);
  const weights = await src.read('model.safetensors');
  if (!weights) throw new Error(`${src.name}: no model.safetensors (encoders are read from a single safetensors file)`);
  const file = parseSafetensors(weights, at('model.safetensors'));
  const tensors = new Map<string, NamedTensor>();
  for (const t of file.tensors) tensors.set(t.name, { shape: [...t.shape], data: safetensorsTensorToF32(file, t) });
  const ckpt = encoderCheckpoint(config, tensors, src.name);
  const tok = await json('tokenizer.json');
  if (tok) ckpt.tokenizer = tokenizerDataFromHfJson(tok, at('tokenizer.json'), await json('tokenizer_config.json'));
  return ckpt;
}

/**
 * An encoder from a path: a Hugging Face folder (`loadEncoderFolder`) or a GGUF file of llama.cpp's `bert`
 * architecture (`readGgufEncoder`, read a tensor at a time).
 */
export async function loadEncoder(path: string): Promise<EncoderCheckpoint> {
  // A computed specifier keeps browser bundlers from trying to resolve a Node built-in.
  const { stat } = (await import(/* @vite-ignore */ ['node', 'fs/promises'].join(':'))) as { stat(p: string): Promise<{ isDirectory(): boolean }> };
  if ((await stat(path).catch(() => { throw new Error(`${path}: no such file or folder`); })).isDirectory()) return loadEncoderFolder(path);
  const src = await fileSource(path);
  try {
    const magic = new TextDecoder().decode(await src.read(0, Math.min(4, src.size)));
    if (magic !== 'GGUF') throw new Error(`${path}: an encoder is read from a Hugging Face folder or a GGUF file (bert architecture); this file is neither`);
    return await readGgufEncoder(src);
  } finally {
    await src.close?.();
  }
}

export interface HeadSetup {
  /** The checkpoint with every head tensor present. */
  ckpt: EncoderCheckpoint;
  /** Head modules the checkpoint lacked (initialised here). */
  fresh: string[];
  /** The head's modules, all trained and saved (PEFT modules_to_save entries). */
  modules: string[];
}

/**
 * The checkpoint with a `task` head for `numLabels` labels: tensors it has are kept (a label count that
 * disagrees is an error), missing ones initialised seeded.
 */
export function withHead(ckpt: EncoderCheckpoint, task: EncoderTask, numLabels: number, seed = 0): HeadSetup {
  if (!(Number.isInteger(numLabels) && numLabels >= 2)) throw new Error(`a classifier needs at least 2 labels (got ${numLabels})`);
  const c = ckpt.encoder, tensors = new Map(ckpt.tensors), random = seededRandom(seed ^ 0x5eed), fresh: string[] = [];
  const linears = headLinears(c, task, numLabels);
  for (const [name, inF, outF] of linears) {
    const w = tensors.get(`${name}.weight`), b = tensors.get(`${name}.bias`);
    if (w && b) {
      if (w.shape.join() !== [outF, inF].join() || b.shape.join() !== `${outF}`) {
        throw new Error(`${ckpt.source}: the checkpoint's ${name} is [${w.shape.join(', ')}], a ${task} head for ${numLabels} labels needs [${outF}, ${inF}]`);
      }
      continue;
    }
    fresh.push(name);
    const std = c.initializerRange;
    tensors.set(`${name}.weight`, { shape: [outF, inF], data: Float32Array.from({ length: outF * inF }, () => std * gaussian(random)) });
    tensors.set(`${name}.bias`, { shape: [outF], data: new Float32Array(outF) });
  }
  // A seq-cls head on the BERT pooler trains and saves `bert.pooler` only when it is new; a checkpoint's pooler stays frozen, as in PEFT.
  const modules = linears.map(([n]) => n).filter((n) => n !== 'bert.pooler.dense' || fresh.includes(n));
  return { ckpt: { ...ckpt, tensors }, fresh, modules };
}
