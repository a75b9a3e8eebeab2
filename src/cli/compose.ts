/**
 * `adaptkit compose --model M --delta A --delta B [...] --out DIR`: the sum of sparse deltas (a task delta and a
 * language delta, as LT-SFT composes them), written as one delta folder. Every delta is checked against M's
 * tensor names and shapes before anything is written.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadCheckpoint } from '../formats/checkpoint.js';
import { composeSparseDeltas } from '../updaters/sparse/delta.js';
import { checkDeltaFits, DELTA_CONFIG, DELTA_WEIGHTS, isDeltaFolder, loadDeltaFolder, saveDeltaFolder } from '../updaters/sparse/folder.js';
import { type FlagSpec, type Flags, UsageError, many, need } from './args.js';
import { resolveModel } from './model-source.js';
import { prepareOutput } from './output.js';

const err = (s: string): void => { process.stderr.write(`${s}\n`); };

export const composeFlags: Record<string, FlagSpec> = {
  model: { type: 'string', help: 'the base model the deltas were trained from (their tensor names and shapes are checked against it)' },
  delta: { type: 'string', help: 'a sparse-delta folder (train --method spiel|lt-sft|graft); give --delta twice or more', path: { kind: 'folder' }, multiple: true },
  out: { type: 'string', help: 'output folder for the composed delta (adapter_model.safetensors, adapter_config.json)' },
  overwrite: { type: 'bool', help: 'replace a delta already in --out' },
  json: { type: 'bool', help: 'print one JSON line {"deltas", "tensors", "entries", "out"}' },
  help: { type: 'bool', help: 'show this help' },
};

export async function composeCommand(f: Flags): Promise<void> {
  const out = need(f, 'out', 'compose');
  const dirs = many(f.delta);
  if (dirs.length < 2) throw new UsageError(`compose needs at least two --delta folders (got ${dirs.length})`);
  for (const d of dirs) if (!isDeltaFolder(d)) throw new UsageError(`--delta ${d}: not a sparse-delta folder (an adapter_config.json with peft_type "SFT" and ${DELTA_WEIGHTS})`);
  const present = [DELTA_WEIGHTS, DELTA_CONFIG].filter((n) => existsSync(join(out, n)));
  if (present.length && !f.overwrite) throw new UsageError(`--out ${out} already holds a delta (${present.join(', ')}); pass --overwrite to replace it, or another --out`);
  const ckpt = await loadCheckpoint(await resolveModel(need(f, 'model', 'compose'), err));
  const deltas = [];
  for (const d of dirs) {
    const { delta } = await loadDeltaFolder(d);
    try { checkDeltaFits(delta, ckpt, `--delta ${d}`); } catch (e) { throw new UsageError((e as Error).message); }
    deltas.push(delta);
  }
  const sum = composeSparseDeltas(deltas);
  await prepareOutput(out, { overwrite: Boolean(f.overwrite) });
  await saveDeltaFolder(out, sum, { method: 'compose', baseModel: String(f.model) });
  const entries = [...sum.values()].reduce((a, d) => a + d.indices.length, 0);
  if (f.json) process.stdout.write(`${JSON.stringify({ deltas: dirs.length, tensors: sum.size, entries, out })}\n`);
  else err(`composed ${dirs.length} deltas: ${entries} entries over ${sum.size} tensors, saved to ${out}/`);
}
