// `adaptkit tokenize`: the same ids as the library's tokenizer from a GGUF model, from a GGUF file that holds
// only the tokenizer metadata (no tensors), from the llama2.c tokenizer.bin and from a tokenizer.json written
// from the same vocabulary; --json and --bos; one line per input line; errors.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseGguf, writeGguf } from '../../src/formats/gguf.js';
import { createTokenizer, sentencePieceToHfJson } from '../../src/tokenizer/index.js';
import { ggufTokenizerData } from '../../src/formats/gguf-llama.js';
import { ASSETS } from '../formats/helpers.js';
import { STORIES_GGUF } from '../assets.js';
import { cli } from './run.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-tokenize-'));
const text = 'Once upon a time, Lily saw 42 cats!';

test('ids from a GGUF model, a tokenizer-only GGUF, tokenizer.bin and tokenizer.json agree with the library', () => {
  const file = parseGguf(new Uint8Array(readFileSync(STORIES_GGUF)));
  const data = ggufTokenizerData(file)!;
  const expected = createTokenizer(data).encode(text, { bos: false });
  const metaOnly = join(dir, 'tokenizer-only.gguf');
  writeFileSync(metaOnly, writeGguf({ metadata: [...file.metadata].filter(([k]) => k.startsWith('tokenizer.') || k === 'general.architecture'), tensors: [] }));
  const json = join(dir, 'tokenizer.json');
  writeFileSync(json, JSON.stringify(sentencePieceToHfJson(data)));
  for (const source of [STORIES_GGUF, metaOnly, join(ASSETS, 'models', 'stories260K', 'llama2c', 'tok512.bin'), json]) {
    const r = cli(['tokenize', '--tokenizer', source, '--text', text]);
    assert.is(r.code, 0, `${source}: ${r.stderr}`);
    assert.is(r.stdout, `${expected.join(' ')}\n`, source);
  }
  const withBos = cli(['tokenize', '--tokenizer', metaOnly, '--text', text, '--bos', '--json']);
  assert.equal(JSON.parse(withBos.stdout), { ids: [data.bosId, ...expected] });
});

test('--file: one line of output per input line; errors name the problem', () => {
  const input = join(dir, 'lines.txt');
  writeFileSync(input, 'Hello there.\nThe cat sat.\n');
  const r = cli(['tokenize', '--tokenizer', STORIES_GGUF, '--file', input, '--json']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout.trim().split('\n').length, 2);
  assert.match(cli(['tokenize', '--tokenizer', STORIES_GGUF]).stderr, /one of --text T or --file F/);
  assert.match(cli(['tokenize', '--tokenizer', STORIES_GGUF, '--text', 'a', '--file', input]).stderr, /one of --text T or --file F/);
  const notTok = join(dir, 'x.dat');
  writeFileSync(notTok, 'hello');
  assert.match(cli(['tokenize', '--tokenizer', notTok, '--text', 'a']).stderr, /not a tokenizer\.json, a GGUF file or a llama2\.c tokenizer\.bin/);
  assert.match(cli(['tokenize', '--tokenizer', join(dir, 'missing.json'), '--text', 'a']).stderr, /missing\.json/);
});

test.run();
