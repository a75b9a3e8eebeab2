/**
 * Data for multi-objective training: JSONL lines with a prompt and one text field per objective, e.g.
 * {"prompt": <buggy code>, "completion": <fixed code>, "rationale": <the explanation>}. Each field becomes
 * its own prompt/completion example (the loss on the field's tokens only), packed per objective.
 */
import { DataError, type Example, jsonlExample, pack, type PackedBlocks } from '../../data/dataset.js';
import type { Tokenizer } from '../../tokenizer/types.js';

export function multiObjectiveData(text: string, file: string, tok: Tokenizer, seq: number, fields: readonly string[]): Map<string, PackedBlocks> {
  if (fields.length === 0) throw new DataError('multi-objective data: no objective fields given');
  const examples = new Map<string, Example[]>(fields.map((f) => [f, []]));
  let lines = 0;
  text.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim()) return;
    const where = `${file}:${i + 1}`;
    let row: unknown;
    try { row = JSON.parse(line); } catch (e) { throw new DataError(`${where}: not valid JSON (${(e as Error).message})`); }
    const r = row as Record<string, unknown>;
    if (typeof r !== 'object' || r === null || Array.isArray(r) || typeof r.prompt !== 'string') throw new DataError(`${where}: expected a JSON object with a "prompt" string`);
    for (const f of fields) {
      if (typeof r[f] !== 'string') throw new DataError(`${where}: the objective field "${f}" is missing or not a string`);
      const e = jsonlExample(JSON.stringify({ prompt: r.prompt, completion: r[f] }), where, tok, seq)!;
      if (e.target.some((x) => x === 1)) examples.get(f)!.push(e);
    }
    lines++;
  });
  if (lines === 0) throw new DataError(`${file}: no examples`);
  const out = new Map<string, PackedBlocks>();
  for (const [f, ex] of examples) {
    if (ex.length === 0) throw new DataError(`${file}: no example has a token of "${f}" within ${seq} tokens`);
    out.set(f, pack(ex, seq, 0));
  }
  return out;
}
