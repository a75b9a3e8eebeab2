/**
 * Data for multi-objective training: JSONL lines with a prompt and one text field per objective, e.g.
 * {"prompt": <buggy code>, "completion": <fixed code>, "rationale": <the explanation>}. Each field becomes
 * its own prompt/completion example (the loss on the field's tokens only), packed per objective.
 */
import { DataError, type Example, jsonlExample, pack, type PackedBlocks } from '../../data/dataset.js';
import type { Tokenizer } from '../../tokenizer/types.js';
import { forEachJsonlObject } from '../../data/jsonl.js';

export function multiObjectiveData(text: string, file: string, tok: Tokenizer, seq: number, fields: readonly string[]): Map<string, PackedBlocks> {
  if (fields.length === 0) throw new DataError('multi-objective data: no objective fields given');
  const examples = new Map<string, Example[]>(fields.map((f) => [f, []]));
  const lines = forEachJsonlObject(text, file, (r, where) => {
    if (typeof r.prompt !== 'string') throw new DataError(`${where}: expected a JSON object with a "prompt" string`);
    for (const f of fields) {
      if (typeof r[f] !== 'string') throw new DataError(`${where}: the objective field "${f}" is missing or not a string`);
      const e = jsonlExample(JSON.stringify({ prompt: r.prompt, completion: r[f] }), where, tok, seq)!;
      if (e.target.some((x) => x === 1)) examples.get(f)!.push(e);
    }
  });
  if (lines === 0) throw new DataError(`${file}: no examples`);
  const out = new Map<string, PackedBlocks>();
  for (const [f, ex] of examples) {
    if (ex.length === 0) throw new DataError(`${file}: no example has a token of "${f}" within ${seq} tokens`);
    out.set(f, pack(ex, seq, 0));
  }
  return out;
}
