// Training data: JSONL prompt/completion masking, errors naming file:line, and packing against naive padding.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError, batchAt, jsonlExamples, pack, textExamples } from '../../src/data/dataset.js';
import { paragraphs } from '../../src/data/text.js';
import { loadCheckpoint } from '../../src/formats/checkpoint.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { STORIES_GGUF } from '../assets.js';

const tok = createTokenizer((await loadCheckpoint(STORIES_GGUF)).tokenizer!);

test('paragraphs split at blank lines (whitespace-only lines too) and drop empties', () => {
  assert.equal(paragraphs('a b\nc\n\n\n  \nd\r\n \r\ne\n\n'), ['a b\nc', 'd', 'e']);
});

test('JSONL {"prompt","completion"}: only completion tokens are targets; {"text"}: every token after BOS', () => {
  const [pc, tx] = jsonlExamples('{"prompt": "Once upon a time,", "completion": " there was a cat."}\n\n{"text": "The end."}\n', 'd.jsonl', tok, 64);
  const promptLen = tok.encode('Once upon a time,', { bos: true }).length;
  assert.equal(pc!.ids, tok.encode('Once upon a time, there was a cat.', { bos: true }));
  assert.ok(Array.from(pc!.target.slice(0, promptLen)).every((t) => t === 0));
  assert.ok(Array.from(pc!.target.slice(promptLen)).every((t) => t === 1));
  assert.is(tx!.target[0], 0);
  assert.ok(Array.from(tx!.target.slice(1)).every((t) => t === 1));
});

test('a malformed JSONL line is an error naming file:line', () => {
  assert.throws(() => jsonlExamples('{"text": "ok"}\n{"text": broken\n', 'train.jsonl', tok, 32), (e: Error) => e instanceof DataError && /^train\.jsonl:2: not valid JSON/.test(e.message));
  assert.throws(() => jsonlExamples('{"text": "ok"}\n{"question": "?"}\n', 'train.jsonl', tok, 32), /train\.jsonl:2: expected \{"text": string\}/);
  assert.throws(() => jsonlExamples('[1, 2]\n', 'x.jsonl', tok, 32), /x\.jsonl:1: each line must be a JSON object/);
  assert.throws(() => jsonlExamples('\n\n', 'empty.jsonl', tok, 32), /empty\.jsonl: no examples/);
});

test('packing: every target survives in order, padding is far below naive padding, batches wrap', () => {
  const texts = ['Tom ran.', 'A big dog sat on the mat and looked at the sun for a long time.', 'Hi.', 'The cat was happy.', 'She smiled.'];
  const ex = textExamples(texts, tok, 40);
  const p = pack(ex, 40);
  const totalTargets = ex.reduce((a, e) => a + e.ids.length - 1, 0);
  assert.is(Array.from(p.targets).filter((t) => t !== -100).length, totalTargets);
  assert.ok(p.rows < ex.length, `${p.rows} rows for ${ex.length} examples`);
  assert.ok(p.paddingRatio < p.naivePaddingRatio, `${p.paddingRatio} vs ${p.naivePaddingRatio}`);
  // Each target is the token that follows its position in the row.
  for (let r = 0; r < p.rows; r++) for (let t = 0; t < 40; t++) {
    const tg = p.targets[r * 40 + t]!;
    if (tg !== -100) assert.is(tg, p.ids[r * 41 + t + 1]);
  }
  const b = batchAt(p, p.rows - 1, 2);
  assert.equal(Array.from(b.ids.subarray(40, 80)), Array.from(p.ids.subarray(0, 40)));
});

test.run();
