// Training data: JSONL prompt/completion masking, errors naming file:line, and packing against naive padding.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError, type Example, batchAt, jsonlExamples, pack, type PackStats, streamExamples, textExamples } from '../../src/data/dataset.js';
import { paragraphs, streamParagraphs } from '../../src/data/text.js';
import { rng } from '../helpers.js';
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

test('JSONL task ids: kept per example, packed so each row has one task; bad ids name file:line', () => {
  const lines = [
    '{"text": "Tom ran to the park.", "task": 1}', '{"prompt": "Q:", "completion": " yes.", "task": 0}',
    '{"text": "A dog sat.", "task": 1}', '{"text": "No task here.", "task": "names-a-selector-task"}', '{"text": "Hi.", "task": 0}',
  ];
  const ex = jsonlExamples(lines.join('\n'), 'tasks.jsonl', tok, 40);
  assert.equal(ex.map((e) => e.task), [1, 0, 1, undefined, 0]);
  const p = pack(ex, 40);
  assert.ok(p.tasks, 'packed blocks carry task ids');
  assert.is(p.tasks!.length, p.rows);
  // Every example's tokens lie in a row of its own task: find each example's ids in the rows.
  const rowOf = (e: Example): number => {
    for (let r = 0; r < p.rows; r++) {
      const row = Array.from(p.ids.subarray(r * 41, r * 41 + 41));
      for (let k = 0; k + e.ids.length <= 41; k++) if (e.ids.every((id, j) => row[k + j] === id)) return r;
    }
    return -1;
  };
  for (const e of ex) assert.is(p.tasks![rowOf(e)], e.task ?? -1, JSON.stringify(e.ids));
  assert.equal([...new Set(p.tasks)].sort(), [-1, 0, 1]);
  assert.is(Array.from(p.targets).filter((t) => t !== -100).length, ex.reduce((a, e) => a + e.target.reduce((n, t) => n + t, 0), 0));
  assert.equal(Array.from(batchAt(p, p.rows - 1, 2).tasks!), [p.tasks![p.rows - 1]!, p.tasks![0]!]);
  assert.is(batchAt(pack(textExamples(['Tom ran.'], tok, 40), 40), 0, 1).tasks, undefined);
  assert.throws(() => jsonlExamples('{"text": "ok", "task": 0}\n{"text": "x", "task": 1.5}\n', 't.jsonl', tok, 32), /t\.jsonl:2: "task" must be a task id, an integer ≥ 0 \(got 1\.5\)/);
  assert.throws(() => jsonlExamples('{"text": "x", "task": -1}\n', 't.jsonl', tok, 32), /t\.jsonl:1: "task" must be a task id/);
});

async function* chunked(text: string, r: () => number): AsyncGenerator<string> {
  for (let i = 0; i < text.length;) { const n = 1 + Math.floor(r() * 7); yield text.slice(i, i + n); i += n; }
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

test('paragraphs read in chunks equal paragraphs of the whole text, wherever the chunks split', async () => {
  const r = rng(7), pieces = ['a', 'b c', ' ', '\t', '\n', '\r\n', '\n\n', '\n \n', '\r', 'xyz'];
  for (let c = 0; c < 300; c++) {
    let text = '';
    for (let k = Math.floor(r() * 30); k > 0; k--) text += pieces[Math.floor(r() * pieces.length)];
    assert.equal(await collect(streamParagraphs(chunked(text, r))), paragraphs(text), JSON.stringify(text));
  }
});

test('examples streamed from chunks equal the whole-text ones (JSONL and paragraphs); errors still name file:line', async () => {
  const jsonl = '{"prompt": "Once upon a time,", "completion": " there was a cat."}\r\n\n{"text": "The end."}\n{"text": "Hi."}';
  const got = await streamExamples(chunked(jsonl, rng(1)), { file: 'd.jsonl', jsonl: true, tok, maxLen: 64 });
  assert.equal(got, jsonlExamples(jsonl, 'd.jsonl', tok, 64));
  const text = 'Tom ran.\n\nThe cat was happy.\n \nShe smiled.\n';
  assert.equal(await streamExamples(chunked(text, rng(2)), { file: 'd.txt', jsonl: false, tok, maxLen: 64 }), textExamples(paragraphs(text), tok, 64));
  const bad = '{"text": "ok"}\n{"text": broken\n';
  try {
    await streamExamples(chunked(bad, rng(3)), { file: 'train.jsonl', jsonl: true, tok, maxLen: 32 });
    assert.unreachable('a malformed line was accepted');
  } catch (e) {
    assert.ok(e instanceof DataError && /^train\.jsonl:2: not valid JSON/.test((e as Error).message), String(e));
  }
});

/** The packing the library used before the tree: scan every row for the first with room. */
function linearFirstFitRows(examples: readonly Example[], cap: number): number {
  const order = examples.map((e, i) => [e.ids.length, i] as const).filter(([n]) => n >= 2).sort((a, b) => b[0] - a[0]);
  const used: number[] = [];
  for (const [n] of order) {
    const len = Math.min(n, cap), row = used.findIndex((u) => u + len <= cap);
    if (row >= 0) used[row] += len; else used.push(len);
  }
  return used.length;
}

/** Examples whose token k of example i is i·1000 + k, so a packed row says where each token came from. */
function taggedExamples(n: number, maxLen: number, seed: number): Example[] {
  const r = rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const len = Math.floor(r() * (maxLen + 1));
    return { ids: Array.from({ length: len }, (_, k) => i * 1000 + k), target: Uint8Array.from({ length: len }, (_, k) => (k > 0 && r() < 0.8 ? 1 : 0)) };
  });
}

test('packing: every token of every example appears once, contiguous and in order; targets aligned; rows as first-fit', () => {
  for (const [seq, maxLen, seed] of [[16, 40, 1], [64, 30, 2], [128, 200, 3]] as const) {
    const ex = taggedExamples(400, maxLen, seed), cap = seq + 1;
    const p = pack(ex, seq, -1);
    assert.is(p.rows, linearFirstFitRows(ex, cap), `seq ${seq}: same rows as a linear first-fit scan`);
    const seen = ex.map((e) => new Uint8Array(Math.min(e.ids.length, cap)));
    let realTargets = 0;
    for (let r = 0; r < p.rows; r++) {
      let prev: [number, number] | undefined;
      for (let t = 0; t < cap; t++) {
        const id = p.ids[r * cap + t]!;
        if (id === -1) { prev = undefined; continue; }
        const i = Math.floor(id / 1000), k = id % 1000;
        assert.is(seen[i]![k], 0, `token ${k} of example ${i} packed twice`);
        seen[i]![k] = 1;
        // Within a row an example's tokens follow each other: k = 0 starts it, otherwise it continues the previous one.
        if (k > 0) assert.equal(prev, [i, k - 1], `row ${r} position ${t}`);
        prev = [i, k];
        if (t > 0) {
          const tg = p.targets[r * seq + t - 1]!;
          assert.is(tg, k > 0 && ex[i]!.target[k] ? id : -100, `target at row ${r} position ${t - 1}`);
          if (tg !== -100) realTargets++;
        }
      }
    }
    ex.forEach((e, i) => { if (e.ids.length >= 2) assert.ok(seen[i]!.every((x) => x === 1), `example ${i} fully packed`); });
    assert.is(Array.from(p.targets).filter((t) => t !== -100).length, realTargets);
  }
});

test('packing finds each row in O(log rows): tree nodes visited per example grow with log n, not with n', () => {
  const visits = (n: number): number => {
    const stats: PackStats = { nodeVisits: 0 };
    const ex = taggedExamples(n, 60, 9).filter((e) => e.ids.length >= 2);
    pack(ex, 64, 0, stats);
    return stats.nodeVisits / ex.length;
  };
  const small = visits(1_000), large = visits(16_000);
  // A linear scan over the rows visits a number proportional to the rows (thousands here); the tree visits its depth.
  assert.ok(small <= Math.ceil(Math.log2(1_000)) && large <= Math.ceil(Math.log2(16_000)), `${small}, ${large} per example`);
  assert.ok(large - small <= 5, `16× the examples adds ${large - small} visits per example (log2 16 = 4)`);
});

test.run();
