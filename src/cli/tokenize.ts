/**
 * `adaptkit tokenize --tokenizer FILE (--text T | --file F) [--json] [--bos]`: the token ids of a text, from a
 * tokenizer.json, a llama2.c tokenizer.bin, or a GGUF file (one that holds only tokenizer metadata will do).
 */
import { readFile } from 'node:fs/promises';
import { parseGguf } from '../formats/gguf.js';
import { ggufTokenizerData } from '../formats/gguf-llama.js';
import { parseLlama2cTokenizer } from '../formats/llama2c.js';
import { createTokenizer, type TokenizerData, tokenizerDataFromHfJson } from '../tokenizer/index.js';
import { type FlagSpec, type Flags, UsageError, need } from './args.js';

export const tokenizeFlags: Record<string, FlagSpec> = {
  tokenizer: { type: 'string', help: 'a tokenizer.json, a llama2.c tokenizer.bin, or a .gguf file (its tokenizer metadata; tensors are not needed)', path: { kind: 'file' } },
  text: { type: 'string', help: 'the text to encode (or --file)' },
  file: { type: 'string', help: 'a text file: each line is encoded on its own (or --text)', path: { kind: 'file' } },
  json: { type: 'bool', help: 'print {"ids": [...]} per input instead of space-separated ids' },
  bos: { type: 'bool', help: 'prepend the beginning-of-sequence token' },
  help: { type: 'bool', help: 'show this help' },
};

/** A tokenizer description from any of the files `tokenize` takes, chosen by name and then by content. */
export async function readTokenizerFile(path: string): Promise<TokenizerData> {
  const bytes = new Uint8Array(await readFile(path).catch((e: Error) => { throw new Error(`${path}: ${e.message}`); }));
  if (/\.json$/i.test(path)) {
    let json: unknown;
    try { json = JSON.parse(new TextDecoder().decode(bytes)); } catch (e) { throw new Error(`${path}: not valid JSON (${(e as Error).message})`); }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${path}: expected a tokenizer.json object`);
    return tokenizerDataFromHfJson(json as Record<string, unknown>, path);
  }
  const magic = new TextDecoder().decode(bytes.subarray(0, 4));
  if (magic === 'GGUF') {
    const data = ggufTokenizerData(parseGguf(bytes, path));
    if (!data) throw new Error(`${path}: this GGUF file has no tokenizer metadata`);
    return data;
  }
  if (/\.bin$/i.test(path)) return parseLlama2cTokenizer(bytes, path);
  throw new Error(`${path}: not a tokenizer.json, a GGUF file or a llama2.c tokenizer.bin`);
}

export async function tokenize(f: Flags): Promise<void> {
  const path = need(f, 'tokenizer', 'tokenize');
  if ((f.text === undefined) === (f.file === undefined)) throw new UsageError('tokenize takes one of --text T or --file F');
  const tok = createTokenizer(await readTokenizerFile(path));
  const inputs = f.text !== undefined ? [String(f.text)] : (await readFile(String(f.file), 'utf8')).split(/\r?\n/).filter((line, i, all) => i < all.length - 1 || line !== '');
  for (const text of inputs) {
    const ids = tok.encode(text, { bos: Boolean(f.bos) });
    process.stdout.write(f.json ? `${JSON.stringify({ ids })}\n` : `${ids.join(' ')}\n`);
  }
}
