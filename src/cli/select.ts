/** adaptkit select: keep the most useful examples of a JSONL data set by one of four selection rules. */
import { readFile } from 'node:fs/promises';
import type { LlamaCheckpoint } from '../formats/checkpoint.js';
import type { ChosenBackend } from '../scheduler/backends.js';
import { SELECT_METHODS, type SelectMethod, selectData } from '../select/index.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { type FlagSpec, type Flags, UsageError, need } from './args.js';
import { writeFileAtomic } from './output.js';

export const selectFlags: Record<string, FlagSpec> = {
  data: { type: 'string', help: 'JSONL data to select from: {"text"} or {"prompt","completion"} lines (a "task" field names its task for adapt-inf)', path: { kind: 'file' } },
  method: { type: 'string', help: `selection rule: ${SELECT_METHODS.join(' | ')}`, range: { oneOf: SELECT_METHODS } },
  keep: { type: 'int', help: 'examples to keep (at most the data size)', range: { integer: true, min: 1 } },
  out: { type: 'string', help: 'output JSONL: the kept lines unchanged, in their original order' },
  seed: { type: 'int', help: 'seed of k-means (cdas, adapt-inf) and the gradient projection (adapt-inf)', default: 0, range: { integer: true, min: 0 } },
  clusters: { type: 'int', help: 'k-means clusters for cdas and adapt-inf (default min(keep, ⌈√n⌉))', range: { integer: true, min: 1 } },
  threshold: { type: 'number', help: 'cosine-similarity threshold: deita (default 0.9, embeddings), adapt-inf (default 0.99, gradient features)', range: { min: -1, max: 1 } },
  target: { type: 'string', help: 'nudge: JSONL of the target distribution (required for nudge)', path: { kind: 'file' } },
  'max-len': { type: 'int', help: 'tokens per example kept for scoring (default min(256, context − 1))', range: { integer: true, min: 2 } },
  json: { type: 'bool', help: 'print a JSON summary on stdout instead of the report' },
};

export async function selectCommand(f: Flags, open: (f: Flags) => Promise<{ ckpt: LlamaCheckpoint; tok: Tokenizer }>, backend: (f: Flags) => Promise<ChosenBackend>): Promise<void> {
  const data = need(f, 'data', 'select'), method = need(f, 'method', 'select') as SelectMethod, out = need(f, 'out', 'select');
  if (f.keep === undefined) throw new UsageError('select: --keep is required');
  if (method === 'nudge' && !f.target) throw new UsageError('select --method nudge needs --target FILE (the target distribution)');
  if (method !== 'nudge' && f.target) throw new UsageError(`--target is for --method nudge only (got --method ${method})`);
  const text = await readFile(data, 'utf8');
  const { ckpt, tok } = await open(f);
  const chosen = await backend(f);
  const { items, selection } = await selectData(ckpt, tok, chosen.backend, { text, file: data }, {
    method, keep: Number(f.keep), seed: Number(f.seed ?? 0),
    ...(f.clusters !== undefined ? { clusters: Number(f.clusters) } : {}),
    ...(f.threshold !== undefined ? { threshold: Number(f.threshold) } : {}),
    ...(f.target ? { target: { text: await readFile(String(f.target), 'utf8'), file: String(f.target) } } : {}),
    ...(f['max-len'] !== undefined ? { maxLen: Number(f['max-len']) } : {}),
  }).catch((e: Error) => { throw e instanceof RangeError ? new UsageError(e.message) : e; });
  await writeFileAtomic(out, selection.kept.map((i) => `${items[i]!.line}\n`).join(''));
  if (f.json) {
    process.stdout.write(`${JSON.stringify({ method, examples: items.length, kept: selection.kept.length, lines: selection.kept.map((i) => items[i]!.lineNo), ...selection.summary })}\n`);
  } else {
    process.stdout.write(`${method}: kept ${selection.kept.length} of ${items.length} examples (lines ${selection.kept.map((i) => items[i]!.lineNo).join(', ')}) → ${out}\n${selection.report.map((l) => `  ${l}`).join('\n')}\n`);
  }
}
