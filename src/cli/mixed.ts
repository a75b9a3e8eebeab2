/**
 * `generate --row-adapter NAME=DIR … --rows FILE.jsonl` and `eval --row-adapter NAME=DIR … --rows FILE.jsonl`:
 * mixed-adapter batches from the command line (src/adapters/mixed). Every JSONL row names the adapter it
 * uses ("adapter": NAME, or "__base__" for none); all rows run together, one forward per batch.
 */
import { readFile } from 'node:fs/promises';
import { AdaptedModel } from '../adapters/adapted-model.js';
import { generateMixed } from '../adapters/mixed/generate.js';
import { MIXED_BASE } from '../adapters/mixed/rows.js';
import type { ChosenBackend } from '../scheduler/backends.js';
import type { LlamaCheckpoint } from '../formats/checkpoint.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { type FlagSpec, type Flags, many, UsageError } from './args.js';

export const rowAdapterFlags: Record<string, FlagSpec> = {
  'row-adapter': { type: 'string', multiple: true, help: 'NAME=DIR, repeatable: a PEFT adapter folder the rows of --rows may name; all of them run in one batch (a mixed-adapter batch)' },
  rows: { type: 'string', help: 'with --row-adapter: a JSONL file, one row per line: {"prompt" (generate) or "text" (eval), "adapter": NAME or "__base__"}', path: { kind: 'file' } },
};

export interface MixedDeps {
  openTextModel(f: Flags): Promise<{ ckpt: LlamaCheckpoint; tok: Tokenizer }>;
  openBackend(f: Flags, quiet?: boolean): Promise<ChosenBackend>;
  readAdapterDir(model: AdaptedModel, dir: string, name: string): Promise<unknown>;
  err(line: string): void;
}

/** The flags that cannot go with a mixed batch, by command. */
const EXCLUSIVE = ['adapter', 'task-id', 'proxy-expert', 'proxy-anti', 'rules', 'draft', 'chat', 'prompt', 'data'];

/** NAME=DIR pairs, checked before anything is read. */
function parsePairs(f: Flags): [string, string][] {
  const pairs = many(f['row-adapter']).map((v) => {
    const at = v.indexOf('=');
    if (at <= 0 || at === v.length - 1) throw new UsageError(`--row-adapter ${v}: expected NAME=DIR`);
    return [v.slice(0, at), v.slice(at + 1)] as [string, string];
  });
  const seen = new Set<string>();
  for (const [n] of pairs) {
    if (n === MIXED_BASE) throw new UsageError(`--row-adapter ${n}=…: '${MIXED_BASE}' names the base model`);
    if (seen.has(n)) throw new UsageError(`--row-adapter: the name '${n}' is given twice`);
    seen.add(n);
  }
  return pairs;
}

/** The --rows file: each line's text field and adapter, every adapter name known. */
async function readRows(f: Flags, field: 'prompt' | 'text', names: readonly string[]): Promise<{ text: string; adapter: string }[]> {
  if (f.rows === undefined) throw new UsageError('--row-adapter needs --rows FILE.jsonl (the rows and the adapter each uses)');
  const path = String(f.rows);
  const lines = (await readFile(path, 'utf8')).split('\n').map((l) => l.trim());
  const rows: { text: string; adapter: string }[] = [];
  lines.forEach((line, i) => {
    if (!line) return;
    let j: unknown;
    try { j = JSON.parse(line); } catch (e) { throw new Error(`${path}:${i + 1}: not valid JSON (${(e as Error).message})`); }
    const o = j as Record<string, unknown>;
    if (typeof o !== 'object' || o === null || typeof o[field] !== 'string') throw new Error(`${path}:${i + 1}: expected an object with a string "${field}"`);
    const adapter = o.adapter ?? MIXED_BASE;
    if (typeof adapter !== 'string' || (adapter !== MIXED_BASE && !names.includes(adapter))) {
      throw new Error(`${path}:${i + 1}: "adapter" ${JSON.stringify(adapter)} is not one of ${[MIXED_BASE, ...names].join(', ')}`);
    }
    rows.push({ text: o[field] as string, adapter });
  });
  if (rows.length === 0) throw new Error(`${path}: no rows`);
  return rows;
}

async function setUp(f: Flags, field: 'prompt' | 'text', deps: MixedDeps) {
  const clash = EXCLUSIVE.find((k) => f[k] !== undefined && f[k] !== false && f[k] !== '');
  if (clash) throw new UsageError(`--row-adapter does not combine with --${clash}`);
  const pairs = parsePairs(f);
  const rows = await readRows(f, field, pairs.map(([n]) => n));
  const { ckpt, tok } = await deps.openTextModel(f);
  const model = new AdaptedModel(ckpt);
  for (const [name, dir] of pairs) await deps.readAdapterDir(model, dir, name);
  model.setRowAdapters(pairs.map(([n]) => n));
  return { model, tok, rows, ids: model.rowIds(rows.map((r) => r.adapter)) };
}

/** generate with --row-adapter: one JSON line per row, {"adapter", "prompt", "text"}. */
export async function mixedGenerate(f: Flags, deps: MixedDeps): Promise<void> {
  const { model, tok, rows, ids } = await setUp(f, 'prompt', deps);
  const chosen = await deps.openBackend(f);
  const rt = model.runtime(chosen.backend);
  const prompts = rows.map((r) => tok.encode(r.text, { bos: true }));
  const out = await generateMixed(rt, prompts, ids, {
    maxTokens: Number(f['max-tokens']), temperature: Number(f.temperature), topK: Number(f['top-k']), topP: Number(f['top-p']),
    repetitionPenalty: Number(f['repetition-penalty']), seed: Number(f.seed),
    ...(f.mirostat !== undefined ? { mirostatTau: Number(f.mirostat), mirostatEta: Number(f['mirostat-eta']) } : {}),
    onContextFull: (context) => deps.err(`generate: a row stopped at the model's context length (${context} positions)`),
  });
  rows.forEach((r, i) => process.stdout.write(`${JSON.stringify({ adapter: r.adapter, prompt: r.text, text: tok.decode(out[i]!) })}\n`));
  rt.dispose();
  chosen.backend.dispose();
}

/** eval with --row-adapter: the mean loss of the whole mixed batch, and per adapter. */
export async function mixedEval(f: Flags, deps: MixedDeps): Promise<void> {
  const { model, tok, rows, ids } = await setUp(f, 'text', deps);
  const T = Number(f['max-tokens']);
  const seqs = rows.map((r) => tok.encode(r.text, { bos: true }).slice(0, T + 1));
  const short = seqs.findIndex((s) => s.length < 2);
  if (short >= 0) throw new Error(`${String(f.rows)}: row ${short + 1} has no token to predict`);
  const chosen = await deps.openBackend(f, Boolean(f.json));
  const rt = model.runtime(chosen.backend);
  const all = await rt.evalLoss(seqs, { batch: Number(f.batch), tasks: ids });
  const by: Record<string, { loss: number; tokens: number }> = {};
  for (const name of [...new Set(rows.map((r) => r.adapter))]) {
    const pick = rows.map((r, i) => (r.adapter === name ? i : -1)).filter((i) => i >= 0);
    by[name] = await rt.evalLoss(pick.map((i) => seqs[i]!), { batch: Number(f.batch), tasks: pick.map((i) => ids[i]!) });
  }
  if (f.json) process.stdout.write(`${JSON.stringify({ loss: all.loss, tokens: all.tokens, byAdapter: by })}\n`);
  else {
    process.stdout.write(`loss ${all.loss.toFixed(5)} nats/token over ${all.tokens} tokens (${rows.length} rows, one mixed batch)\n`);
    for (const [n, r] of Object.entries(by)) process.stdout.write(`  ${n}: loss ${r.loss.toFixed(5)} over ${r.tokens} tokens\n`);
  }
  rt.dispose();
  chosen.backend.dispose();
}
