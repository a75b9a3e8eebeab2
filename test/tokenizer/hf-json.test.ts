import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gguf, parseGguf, writeGguf } from '../../src/formats/gguf.js';
import { ggufTokenizerData } from '../../src/formats/gguf-llama.js';
import { HfBpeTokenizer, TokenType, createTokenizer, tokenizerDataFromHfJson } from '../../src/tokenizer/index.js';
import { toJsRegex } from '../../src/tokenizer/hf-json.js';
import { ASSETS, GGUF_PATH, readAsset, rng } from '../formats/helpers.js';

const LILY = 'Once upon a time, there was a little girl named Lily.';
const LILY_IDS = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426];
const spmData = ggufTokenizerData(parseGguf(readAsset(GGUF_PATH)))!;
const spm = createTokenizer(spmData);

/**
 * A tokenizer.json shaped like the Hugging Face conversion of a SentencePiece llama vocabulary: merges
 * are every split of a piece into two pieces, ranked by the merged piece's score.
 */
function llamaStyleJson(style: 'legacy' | 'metaspace'): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  spmData.tokens.forEach((t, i) => { vocab[t] = i; });
  const order = spmData.tokens.map((_, i) => i).filter((i) => spmData.types![i] === TokenType.NORMAL)
    .sort((a, b) => spmData.scores![b]! - spmData.scores![a]! || a - b);
  const merges: string[] = [];
  for (const id of order) {
    const p = [...spmData.tokens[id]!];
    for (let k = 1; k < p.length; k++) {
      const l = p.slice(0, k).join(''), r = p.slice(k).join('');
      if (vocab[l] !== undefined && vocab[r] !== undefined) merges.push(`${l} ${r}`);
    }
  }
  const added = [0, 1, 2].map((id) => ({ id, content: spmData.tokens[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const common = {
    version: '1.0', added_tokens: added,
    post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }] },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', fuse_unk: true, byte_fallback: true, vocab, merges },
  };
  if (style === 'legacy') {
    return {
      ...common,
      normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
      pre_tokenizer: null,
      decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    };
  }
  return {
    ...common,
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
  };
}

for (const style of ['legacy', 'metaspace'] as const) {
  test(`SentencePiece-style tokenizer.json (${style}) matches the GGUF tokenizer`, () => {
    const data = tokenizerDataFromHfJson(llamaStyleJson(style), 'tokenizer.json', { bos_token: '<s>', eos_token: '</s>', add_bos_token: true });
    assert.is(data.bosId, 1);
    assert.is(data.eosId, 2);
    assert.is(data.addSpacePrefix, true);
    const tok = createTokenizer(data);
    assert.instance(tok, HfBpeTokenizer);
    assert.equal(tok.encode(LILY), LILY_IDS);
    assert.is(tok.decode(LILY_IDS), LILY);
    const text = readFileSync(join(ASSETS, 'data', 'tinystories', 'tinystories_val.txt'), 'utf8');
    let same = 0, total = 0;
    for (const p of text.split('\n\n').slice(0, 100)) {
      const a = tok.encode(p), b = spm.encode(p);
      total++;
      if (a.length === b.length && a.every((x, i) => x === b[i])) same++;
      assert.is(tok.decode(a), p);
    }
    // Rank-ordered merges reproduce score-ordered SentencePiece merging on real text.
    assert.is(same, total);
    for (const t of ['日本 🦙 e\u0301', '<s>hi</s>', '']) {
      assert.is(tok.decode(tok.encode(t)), t.replace(/<\/?s>/g, ''));
    }
    // Text after an added token: the legacy normalizer prepends ▁ to every segment, Metaspace "first"
    // only at the start of the input.
    const after = style === 'legacy' ? tok.encode('b', { bos: false }) : [spmData.tokens.indexOf('b')];
    assert.equal(tok.encode('a<s>b', { bos: false }), [...tok.encode('a', { bos: false }), 1, ...after]);
  });
}

/** GPT-2 style byte-level BPE over a tiny vocabulary. */
function byteLevelJson(pattern?: string): Record<string, unknown> {
  const chars: string[] = [];
  for (let b = 0, n = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    chars.push(String.fromCodePoint(printable ? b : 256 + n++));
  }
  const vocab: Record<string, number> = {};
  chars.forEach((c, i) => { vocab[c] = i; });
  const merges = ['h e', 'Ġ t', 'Ġt he', 'l l', 'c a', 'ca t', 'Ġ cat', 'o w'];
  for (const m of merges) vocab[m.replace(' ', '')] = Object.keys(vocab).length;
  const pre = pattern
    ? { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false }, { type: 'ByteLevel', add_prefix_space: false, use_regex: false }] }
    : { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    added_tokens: [{ id: 300, content: '<|endoftext|>', special: true, lstrip: false, rstrip: false, normalized: false, single_word: false }],
    normalizer: null, pre_tokenizer: pre, decoder: { type: 'ByteLevel' },
    model: { type: 'BPE', vocab, merges, byte_fallback: false, ignore_merges: false },
  };
}

test('byte-level BPE: merges by rank within pre-tokenized words, special tokens, lossless round trip', () => {
  const data = tokenizerDataFromHfJson(byteLevelJson(), 'gpt2.json');
  assert.is(data.addSpacePrefix, false);
  assert.is(data.types![300], TokenType.CONTROL);
  const tok = createTokenizer(data);
  const id = (s: string) => (data.json as { model: { vocab: Record<string, number> } }).model.vocab[s]!;
  // "the cat" → words "the", " cat" → "t" "he" | "Ġcat" (Ġ+c loses to c+a, ca+t, then Ġ+cat).
  assert.equal(tok.encode('the cat'), [id('t'), id('he'), id('Ġcat')]);
  assert.equal(tok.encode(' the'), [id('Ġthe')]);
  assert.equal(tok.encode('hello<|endoftext|>'), [id('he'), id('ll'), id('o'), 300]);
  assert.is(tok.decode([id('Ġthe'), id('Ġcat')]), ' the cat');
  assert.is(tok.decode([300]), '');
  assert.is(tok.decode([300], { special: true }), '<|endoftext|>');
  const r = rng(5);
  for (const t of ['  spaces\n\n\ttabs', '🦙 日本語 e\u0301 👩‍👩‍👧', "it's 123 THE'S"]) assert.is(tok.decode(tok.encode(t)), t);
  for (let k = 0; k < 50; k++) {
    const s = String.fromCodePoint(...Array.from({ length: 20 }, () => Math.floor(r() * 0x2fff)));
    assert.is(tok.decode(tok.encode(s)), s);
  }
  const sd = tok.streamDecoder();
  const ids = tok.encode('🦙!');
  assert.equal(ids.map((i) => sd.push(i)), ['', '', '', '🦙', '!']);
});

test('Llama 3 style Split regex with (?i:...) groups', () => {
  const llama3 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  const re = toJsRegex(llama3);
  assert.equal("HE'S here 12345!!\n\nok".match(re), ['HE', "'S", ' here', ' ', '123', '45', '!!\n\n', 'ok']);
  const tok = createTokenizer(tokenizerDataFromHfJson(byteLevelJson(llama3), 'llama3.json'));
  for (const t of ["DON'T stop 2024", '🦙\r\n x']) assert.is(tok.decode(tok.encode(t)), t);
});

test('GGUF byte-level (gpt2) vocabularies: tokens, merges and tokenizer.ggml.pre', () => {
  const j = byteLevelJson() as { model: { vocab: Record<string, number>; merges: string[] } };
  const tokens = Object.entries(j.model.vocab).sort((a, b) => a[1] - b[1]).map(([t]) => t);
  while (tokens.length < 300) tokens.push(`<unused${tokens.length}>`);
  tokens.push('<|endoftext|>');
  const types = tokens.map((_, i) => (i === 300 ? TokenType.CONTROL : TokenType.NORMAL));
  const reference = createTokenizer(tokenizerDataFromHfJson(byteLevelJson(), 'gpt2.json'));
  for (const [pre, ok] of [['gpt-2', true], ['llama-bpe', true], ['qwen2', true], ['made-up', false]] as const) {
    const file = parseGguf(writeGguf({
      metadata: {
        'tokenizer.ggml.model': gguf.str('gpt2'), 'tokenizer.ggml.pre': gguf.str(pre), 'tokenizer.ggml.tokens': gguf.strings(tokens),
        'tokenizer.ggml.merges': gguf.strings(j.model.merges), 'tokenizer.ggml.token_type': gguf.i32s(types),
        'tokenizer.ggml.eos_token_id': gguf.u32(300),
      },
      tensors: [],
    }), `${pre}.gguf`);
    const data = ggufTokenizerData(file)!;
    assert.is(data.kind, 'hf-json');
    if (!ok) {
      assert.throws(() => createTokenizer(data), /made-up\.gguf: pre-tokenizer GGUF tokenizer\.ggml\.pre "made-up" is not supported/);
      continue;
    }
    const tok = createTokenizer(data);
    for (const t of ['the cat', 'hello<|endoftext|> the', "it's 12345 🦙"]) {
      if (pre === 'gpt-2') assert.equal(tok.encode(t), reference.encode(t), t);
      assert.is(tok.decode(tok.encode(t)), t.replace('<|endoftext|>', ''));
    }
  }
});

test('unsupported tokenizer.json models and components are named', () => {
  assert.throws(() => tokenizerDataFromHfJson({ model: { type: 'Unigram', vocab: {} } }, 'sp.json'), /sp\.json: model type Unigram is not supported \(BPE and WordPiece are\)/);
  const j = byteLevelJson();
  j.pre_tokenizer = { type: 'BertPreTokenizer' };
  assert.throws(() => createTokenizer(tokenizerDataFromHfJson(j, 'x.json')), /x\.json: pre-tokenizer BertPreTokenizer is not supported/);
});

test.run();
