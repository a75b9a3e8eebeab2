/**
 * `adaptkit prune-vocab --model M --data CORPUS --out DIR`: keep the tokens a corpus uses (src/vocab/prune.ts)
 * and write the smaller model, its embedding, output head and tokenizer rewritten together.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadCheckpoint } from '../formats/checkpoint.js';
import { formatBytes } from '../scheduler/memory.js';
import { keptIds, pruneVocabulary, usedTokenIds } from '../vocab/prune.js';
import { paragraphs } from '../data/text.js';
import { type FlagSpec, type Flags, UsageError, need } from './args.js';
import { resolveModel } from './model-source.js';
import { MODEL_DTYPES, type ModelFormat, writeModel } from './write-model.js';

const err = (s: string): void => { process.stderr.write(`${s}\n`); };

export const pruneVocabFlags: Record<string, FlagSpec> = {
  model: { type: 'string', help: 'the model to prune (.gguf, llama2.c .bin, safetensors folder, URL or Hugging Face repo id); its tokenizer is pruned with it' },
  data: { type: 'string', help: 'the corpus whose tokens are kept: a text file (each blank-line paragraph encoded as one text), or .jsonl with "text" or "prompt"/"completion" fields', path: { kind: 'file' } },
  out: { type: 'string', help: 'output folder (must not exist, unless --overwrite)' },
  format: { type: 'string', help: 'safetensors (Hugging Face layout) | gguf | both', default: 'both', range: { oneOf: ['safetensors', 'gguf', 'both'] } },
  overwrite: { type: 'bool', help: 'replace a model already in --out' },
  json: { type: 'bool', help: 'print one JSON line {"kept", "vocabulary", "bytesBefore", "bytesAfter", "written"}' },
  help: { type: 'bool', help: 'show this help' },
};

/** The corpus's texts: paragraphs of a text file, or the text fields of JSONL lines. */
function corpusTexts(text: string, file: string): string[] {
  if (!/\.jsonl$/i.test(file)) return paragraphs(text);
  const out: string[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim()) return;
    let row: Record<string, unknown>;
    try { row = JSON.parse(line) as Record<string, unknown>; } catch (e) { throw new Error(`${file}:${i + 1}: not valid JSON (${(e as Error).message})`); }
    const fields = ['text', 'prompt', 'completion'].map((k) => row[k]).filter((v): v is string => typeof v === 'string');
    if (!fields.length) throw new Error(`${file}:${i + 1}: expected a "text" or "prompt"/"completion" string`);
    out.push(...fields);
  });
  return out;
}

export async function pruneVocabCommand(f: Flags): Promise<void> {
  const out = need(f, 'out', 'prune-vocab'), dataPath = need(f, 'data', 'prune-vocab'), json = Boolean(f.json);
  const present = ['model.gguf', 'model.safetensors', 'config.json'].filter((name) => existsSync(join(out, name)));
  if (present.length && !f.overwrite) throw new UsageError(`--out ${out} already holds a model (${present.join(', ')}); pass --overwrite to replace it`);
  const texts = corpusTexts(await readFile(dataPath, 'utf8'), dataPath);
  if (texts.length === 0 || texts.every((t) => !t.trim())) throw new UsageError(`--data ${dataPath}: the corpus is empty`);
  const ckpt = await loadCheckpoint(await resolveModel(need(f, 'model', 'prune-vocab'), err), { baseDtype: 'auto' });
  if (!ckpt.tokenizer) throw new Error(`${ckpt.source}: the model has no tokenizer to prune`);
  const kept = keptIds(ckpt.tokenizer, usedTokenIds(ckpt.tokenizer, texts));
  const r = pruneVocabulary(ckpt, kept);
  // Embedding and head are written as float32 (their rows were taken from the stored type); f16 halves them.
  const written = await writeModel(r.checkpoint, out, String(f.format) as ModelFormat, MODEL_DTYPES[0]);
  const V = ckpt.config.vocabSize;
  if (json) process.stdout.write(`${JSON.stringify({ kept: kept.length, vocabulary: V, bytesBefore: r.bytesBefore, bytesAfter: r.bytesAfter, written })}\n`);
  else err(`kept ${kept.length.toLocaleString('en-US')} of ${V.toLocaleString('en-US')} tokens (${((100 * kept.length) / V).toFixed(1)}%): embedding and output head ${formatBytes(r.bytesBefore)} as stored → ${formatBytes(r.bytesAfter)} as float32`);
}
