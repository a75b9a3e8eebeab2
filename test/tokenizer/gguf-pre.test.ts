// The byte-level pre-tokenizers named by GGUF `tokenizer.ggml.pre`: each rule's split of sample strings
// (contractions, digit runs, punctuation runs, newlines, CJK) against the pieces its patterns give when
// applied by hand, one pattern after the other, matches and gaps kept (llama.cpp's and Hugging Face's
// "Isolated" splitting); every listed name builds a tokenizer; an unknown name is still refused by name.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gguf, parseGguf, writeGguf } from '../../src/formats/gguf.js';
import { GGUF_PRE_TOKENIZER_NAMES, ggufTokenizerData } from '../../src/formats/gguf-llama.js';
import { createTokenizer } from '../../src/tokenizer/index.js';

/** GPT-2's byte ↔ printable character table, inverted: pieces back to text. */
const byteOf = (() => {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const map = new Map<string, number>(bs.map((b) => [String.fromCodePoint(b), b]));
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) map.set(String.fromCodePoint(256 + n++), b);
  return map;
})();
const text = (piece: string) => new TextDecoder().decode(Uint8Array.from([...piece], (c) => byteOf.get(c)!));

function pieces(pre: string, s: string): string[] {
  const alphabet = [...byteOf.keys()];
  const file = parseGguf(writeGguf({
    metadata: {
      'tokenizer.ggml.model': gguf.str('gpt2'), 'tokenizer.ggml.pre': gguf.str(pre), 'tokenizer.ggml.tokens': gguf.strings(alphabet),
      'tokenizer.ggml.merges': gguf.strings([]), 'tokenizer.ggml.token_type': gguf.i32s(alphabet.map(() => 1)),
    },
    tensors: [],
  }), `${pre}.gguf`);
  const tok = createTokenizer(ggufTokenizerData(file)!) as unknown as { preTokenize(s: string, atStart: boolean): string[] };
  return tok.preTokenize(s, true).map(text);
}

const A = "Hello world's 12345 cats!!\n\nOK";
const CJK = '你好世界123';
const cases: Record<string, Record<string, string[]>> = {
  'gpt-2': { [A]: ['Hello', ' world', "'s", ' 12345', ' cats', '!!', '\n', '\n', 'OK'] },
  'llama-bpe': { [A]: ['Hello', ' world', "'s", ' ', '123', '45', ' cats', '!!\n\n', 'OK'] },
  'qwen2': { [A]: ['Hello', ' world', "'s", ' ', '1', '2', '3', '4', '5', ' cats', '!!\n\n', 'OK'] },
  'starcoder': { [A]: ['Hello', ' world', "'s", ' ', '1', '2', '3', '4', '5', ' cats', '!!', '\n', '\n', 'OK'] },
  'falcon': { [A]: ['Hello', ' world', "'", 's', ' ', '123', '45', ' cats', '!!', '\n', '\n', 'OK'] },
  'deepseek-coder': { [A]: ['Hello', ' world', "'", 's', ' ', '1', '2', '3', '4', '5', ' cats', '!!', '\n', '\n', 'OK'], [CJK]: ['你好世界', '1', '2', '3'] },
  'deepseek-llm': { [A]: ['Hello', ' world', "'", 's', ' ', '12345', ' cats', '!!', '\n', '\n', 'OK'], [CJK]: ['你好世界', '123'] },
  'gpt-4o': { [A]: ['Hello', " world's", ' ', '123', '45', ' cats', '!!\n\n', 'OK'] },
  'bloom': { [A]: ['Hello', " world's", ' 12345', ' cats', '!!\n\n', 'OK'] },
};

for (const [pre, byText] of Object.entries(cases)) {
  test(`${pre}: the pieces its patterns give`, () => {
    for (const [s, want] of Object.entries(byText)) {
      const got = pieces(pre, s);
      assert.equal(got, want, JSON.stringify(s));
      assert.is(got.join(''), s, 'the pieces cover the text');
    }
  });
}

test('names sharing a rule split alike; every listed name builds; an unknown one is refused by name', () => {
  for (const [a, b] of [['llama3', 'llama-bpe'], ['command-r', 'starcoder'], ['refact', 'starcoder'], ['mpt', 'gpt-2'], ['llama4', 'gpt-4o'], ['dbrx', 'llama-bpe']]) assert.equal(pieces(a!, A), pieces(b!, A), `${a} vs ${b}`);
  for (const name of GGUF_PRE_TOKENIZER_NAMES) assert.is(pieces(name, A).join(''), A, name);
  assert.ok(GGUF_PRE_TOKENIZER_NAMES.length >= 12);
  assert.throws(() => pieces('made-up', A), /made-up\.gguf: pre-tokenizer GGUF tokenizer\.ggml\.pre "made-up" is not supported/);
});

test.run();
