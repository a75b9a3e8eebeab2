// WordPiece from a tokenizer.json (BERT's normalizer, pre-tokenizer and greedy longest-match with "##"
// continuations): ids of a hand-made vocabulary worked out by hand from the rules — punctuation split off,
// lowercasing with accents stripped, CJK ideographs as words of their own, continuations, a word with an
// uncovered part or longer than max_input_chars_per_word as [UNK], control characters dropped; [CLS]/[SEP]
// from the post-processor; decoding joins continuations.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gguf, parseGguf, writeGguf } from '../../src/formats/gguf.js';
import { ggufTokenizerData } from '../../src/formats/gguf-llama.js';
import { createTokenizer, tokenizerDataFromHfJson, TokenType, WordPieceTokenizer } from '../../src/tokenizer/index.js';

const words = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', 'the', 'quick', 'brown', 'fox', 'un', '##aff', '##able', ',', '.', '!', 'cafe', '中', '国', '##s', 'run', '##ning', 'a'];
const vocab = Object.fromEntries(words.map((w, i) => [w, i]));
const json = {
  version: '1.0',
  added_tokens: [0, 1, 2, 3].map((id) => ({ id, content: words[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
  normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
  pre_tokenizer: { type: 'BertPreTokenizer' },
  post_processor: {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
    special_tokens: { '[CLS]': { id: '[CLS]', ids: [2], tokens: ['[CLS]'] }, '[SEP]': { id: '[SEP]', ids: [3], tokens: ['[SEP]'] } },
  },
  decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
  model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 10, vocab },
};

const tok = createTokenizer(tokenizerDataFromHfJson(json, 'bert/tokenizer.json'));

test('encoding follows BERT\'s rules', () => {
  assert.instance(tok, WordPieceTokenizer);
  assert.equal(tok.encode('The quick, brown fox!', { bos: false }), [4, 5, 11, 6, 7, 13]);
  assert.equal(tok.encode('unaffable', { bos: false }), [8, 9, 10]);
  assert.equal(tok.encode('Café', { bos: false }), [14], 'lowercased, accent stripped');
  assert.equal(tok.encode('中国', { bos: false }), [15, 16], 'each ideograph a word');
  assert.equal(tok.encode('runnings', { bos: false }), [18, 19, 17]);
  assert.equal(tok.encode('xyz fox', { bos: false }), [1, 7]);
  assert.equal(tok.encode('unaffablex', { bos: false }), [1], 'a part no entry covers: the whole word is [UNK]');
  assert.equal(tok.encode('aaaaaaaaaaa a', { bos: false }), [1, 20], 'longer than max_input_chars_per_word');
  assert.equal(tok.encode('the\u0000 \tfox\n', { bos: false }), [4, 7], 'control characters dropped, whitespace split');
  assert.equal(tok.encode('the fox', { bos: true, eos: true }), [2, 4, 7, 3], '[CLS] and [SEP] from the post-processor');
  assert.is(tok.bosId, 2);
  assert.is(tok.eosId, 3);
});

test('decoding joins continuations and drops special tokens', () => {
  assert.is(tok.decode([2, 4, 5, 11, 6, 7, 13, 3]), 'the quick, brown fox!');
  assert.is(tok.decode([8, 9, 10, 18, 19, 17]), 'unaffable runnings');
  const stream = tok.streamDecoder();
  assert.is([4, 8, 9, 10].map((id) => stream.push(id)).join('') + stream.flush(), 'the unaffable');
});

test('a WordPiece file without its unknown token is refused', () => {
  const bad = { ...json, model: { ...json.model, unk_token: '[MISSING]' } };
  assert.throws(() => createTokenizer(tokenizerDataFromHfJson(bad, 'bert/tokenizer.json')), /unk_token "\[MISSING\]" is not in the vocabulary/);
});

test('a GGUF bert vocabulary (word starts with ▁, continuations bare) encodes like the tokenizer.json', () => {
  // llama.cpp's converter: "##x" → "x", a word-initial "x" → "▁x"; special tokens kept.
  const stored = words.map((w, i) => (i < 4 ? w : w.startsWith('##') ? w.slice(2) : `▁${w}`));
  const file = parseGguf(writeGguf({
    metadata: {
      'tokenizer.ggml.model': gguf.str('bert'), 'tokenizer.ggml.tokens': gguf.strings(stored),
      'tokenizer.ggml.token_type': gguf.i32s(stored.map((_, i) => (i < 4 ? TokenType.CONTROL : TokenType.NORMAL))),
      'tokenizer.ggml.unknown_token_id': gguf.u32(1), 'tokenizer.ggml.cls_token_id': gguf.u32(2), 'tokenizer.ggml.seperator_token_id': gguf.u32(3),
    },
    tensors: [],
  }), 'bert.gguf');
  const fromGguf = createTokenizer(ggufTokenizerData(file)!);
  assert.instance(fromGguf, WordPieceTokenizer);
  for (const s of ['The quick, brown fox!', 'unaffable runnings', 'Café 中国', 'xyz unaffablex']) {
    assert.equal(fromGguf.encode(s, { bos: true, eos: true }), tok.encode(s, { bos: true, eos: true }), s);
  }
  assert.equal(fromGguf.encode('the fox', { bos: true, eos: true }), [2, 4, 7, 3]);
  assert.is(fromGguf.decode([8, 9, 10]), 'unaffable');
});

test.run();
