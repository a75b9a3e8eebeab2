import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { loadCheckpoint } from '../../src/formats/checkpoint.js';
import { paragraphs } from '../../src/data/text.js';
import {
  HfBpeTokenizer, SentencePieceTokenizer, TokenType, createTokenizer, sentencePieceToHfJson, tokenizerConfigJson,
  tokenizerDataFromHfJson, type Tokenizer, type TokenizerData,
} from '../../src/tokenizer/index.js';
import { STORIES_BIN, STORIES_GGUF, TINYSTORIES_VAL } from '../assets.js';

type Json = Record<string, unknown>;

const ggufData = (await loadCheckpoint(STORIES_GGUF)).tokenizer!;
const llama2cData = (await loadCheckpoint(STORIES_BIN)).tokenizer!;
const corpus = paragraphs(readFileSync(TINYSTORIES_VAL, 'utf8'));

/** Strings outside the vocabulary's characters, which only byte fallback can encode. */
const EXTRA = [
  'The cat 🐈 sat on the mat. 🦙🦙',
  '日本語のテキスト、中文文本。한국어',
  'line one\nline two\n\n\tindented\r\nwindows',
  '  leading and trailing spaces  ',
  'e\u0301 cafe\u0301 Ω ∑ \u{10FFFF}',
  '\n',
  ' ',
  '',
];

/** Write the export as a file would hold it and read it back as tokenizer.json. */
function roundTrip(data: TokenizerData, withConfig: boolean): HfBpeTokenizer {
  const json = JSON.parse(JSON.stringify(sentencePieceToHfJson(data))) as Json;
  const config = withConfig ? JSON.parse(JSON.stringify(tokenizerConfigJson(data, 256))) as Json : undefined;
  const tok = createTokenizer(tokenizerDataFromHfJson(json, 'tokenizer.json', config));
  assert.instance(tok, HfBpeTokenizer);
  return tok as HfBpeTokenizer;
}

function assertAgrees(spm: Tokenizer, hf: Tokenizer, texts: string[]): void {
  for (const text of texts) {
    const expected = spm.encode(text, { bos: true });
    const got = hf.encode(text, { bos: true });
    assert.equal(got, expected, `encode ${JSON.stringify(text.slice(0, 60))}`);
    assert.is(hf.decode(got), spm.decode(expected), `decode ${JSON.stringify(text.slice(0, 60))}`);
    assert.is(hf.decode(got), text);
    assert.equal(hf.encode(text, { bos: false }), spm.encode(text, { bos: false }));
  }
}

test('GGUF vocabulary exports to a Llama 2 style tokenizer.json', () => {
  const json = sentencePieceToHfJson(ggufData);
  const model = json.model as Json;
  assert.is(model.type, 'BPE');
  assert.is(model.byte_fallback, true);
  assert.is(model.unk_token, '<unk>');
  const vocab = model.vocab as Record<string, number>;
  assert.is(Object.keys(vocab).length, ggufData.tokens.length);
  ggufData.tokens.forEach((t, id) => assert.is(vocab[t], id));
  const merges = model.merges as string[];
  // The highest-scoring piece is merged first; every merge joins two pieces into a piece.
  assert.is(merges[0], `${ggufData.tokens[259]!.slice(0, 1)} ${ggufData.tokens[259]!.slice(1)}`);
  for (const m of merges) {
    const [a, b] = m.split(' ') as [string, string];
    assert.ok(vocab[a] !== undefined && vocab[b] !== undefined && vocab[a + b] !== undefined, m);
  }
  const added = json.added_tokens as Json[];
  assert.equal(added.map((a) => [a.id, a.content, a.special]), [[0, '<unk>', true], [1, '<s>', true], [2, '</s>', true]]);
  assert.is(json.pre_tokenizer, null);
  assert.equal(json.normalizer, {
    type: 'Sequence',
    normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }],
  });
  assert.equal((json.decoder as Json).decoders, [
    { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
    { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 },
  ]);
});

test('tokenizer_config.json names the special tokens', () => {
  assert.equal(tokenizerConfigJson(ggufData, 256), {
    tokenizer_class: 'LlamaTokenizerFast',
    bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', pad_token: null,
    add_bos_token: true, add_eos_token: false, clean_up_tokenization_spaces: false, legacy: true,
    model_max_length: 256,
  });
  assert.not.ok('model_max_length' in tokenizerConfigJson(ggufData));
});

test('exported tokenizer.json encodes and decodes like SentencePiece on TinyStories', () => {
  const spm = createTokenizer(ggufData);
  assert.instance(spm, SentencePieceTokenizer);
  const hf = roundTrip(ggufData, true);
  assert.is(hf.bosId, 1);
  assert.is(hf.eosId, 2);
  assert.ok(corpus.length > 100);
  assertAgrees(spm, hf, corpus);
  assertAgrees(spm, hf, EXTRA);
  // Byte fallback actually ran: the emoji are not pieces.
  assert.ok(hf.encode('🐈').some((id) => ggufData.types![id] === TokenType.BYTE));
});

test('tokenizer.json alone adds BOS through its post-processor', () => {
  const hf = roundTrip(ggufData, false);
  assert.is(hf.bosId, 1);
  assert.equal(hf.encode('Once upon a time'), createTokenizer(ggufData).encode('Once upon a time'));
});

test('llama2.c vocabulary (spaces stored as " ") exports with U+2581', () => {
  const json = sentencePieceToHfJson(llama2cData);
  const vocab = (json.model as Json).vocab as Record<string, number>;
  assert.is(vocab['▁the'], ggufData.tokens.indexOf('▁the'));
  assert.not.ok(Object.keys(vocab).some((p) => p.includes(' ')));
  assertAgrees(createTokenizer(llama2cData), roundTrip(llama2cData, true), [...corpus.slice(0, 200), ...EXTRA]);
});

test('rejects a tokenizer.json description', () => {
  assert.throws(() => sentencePieceToHfJson({ kind: 'hf-json', tokens: [] }), /sentencepiece/);
});

test.run();
