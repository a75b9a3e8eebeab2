// Vocabulary pruning (src/vocab/prune.ts) on stories260K, with its GGUF SentencePiece tokenizer and with the
// same vocabulary as a Hugging Face tokenizer.json: the pruned tokenizer encodes the corpus to exactly the
// renumbered original ids and decodes them back to the text; special and byte tokens stay; the pruned model's
// logits equal the original's at the kept ids (1e-5 relative); a text outside the corpus still encodes
// (byte fallback); sizes are reported.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createJsBackend } from '../../src/backends/js/index.js';
import { loadCheckpoint } from '../../src/formats/checkpoint.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { createTokenizer, TokenType, tokenizerDataFromHfJson, type TokenizerData } from '../../src/tokenizer/index.js';
import { keptIds, pruneVocabulary, usedTokenIds } from '../../src/vocab/prune.js';
import { ASSETS } from '../formats/helpers.js';
import { STORIES_GGUF } from '../assets.js';
import { cli } from '../cli/run.js';

const corpus = readFileSync(join(ASSETS, 'data', 'tinystories', 'tinystories_val.txt'), 'utf8').split('\n\n').slice(0, 40);

/** The GGUF vocabulary as a tokenizer.json (merges: every split of a piece into two pieces, by score). */
function asHfJson(spm: TokenizerData): TokenizerData {
  const vocab: Record<string, number> = {};
  spm.tokens.forEach((t, i) => { vocab[t] = i; });
  const order = spm.tokens.map((_, i) => i).filter((i) => spm.types![i] === TokenType.NORMAL).sort((a, b) => spm.scores![b]! - spm.scores![a]! || a - b);
  const merges: string[] = [];
  for (const id of order) {
    const p = [...spm.tokens[id]!];
    for (let k = 1; k < p.length; k++) {
      const l = p.slice(0, k).join(''), r = p.slice(k).join('');
      if (vocab[l] !== undefined && vocab[r] !== undefined) merges.push(`${l} ${r}`);
    }
  }
  return tokenizerDataFromHfJson({
    version: '1.0', added_tokens: [0, 1, 2].map((id) => ({ id, content: spm.tokens[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } } },
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', fuse_unk: true, byte_fallback: true, vocab, merges },
  }, 'tokenizer.json', { bos_token: '<s>', eos_token: '</s>', add_bos_token: true });
}

for (const kind of ['sentencepiece', 'hf-json'] as const) {
  test(`${kind}: the corpus encodes to the renumbered ids, logits agree at the kept ids, specials and bytes stay`, async () => {
    const ckpt0 = await loadCheckpoint(STORIES_GGUF);
    const ckpt = kind === 'sentencepiece' ? ckpt0 : { ...ckpt0, tokenizer: asHfJson(ckpt0.tokenizer!) };
    const data = ckpt.tokenizer!;
    const kept = keptIds(data, usedTokenIds(data, corpus));
    const r = pruneVocabulary(ckpt, kept);
    assert.ok(kept.length < ckpt.config.vocabSize && kept.length > 200, `kept ${kept.length} of ${ckpt.config.vocabSize}`);
    assert.is(r.checkpoint.config.vocabSize, kept.length);
    const [before, after] = [createTokenizer(data), createTokenizer(r.checkpoint.tokenizer!)];
    for (const text of corpus) {
      const ids = before.encode(text);
      assert.equal(after.encode(text), ids.map((id) => r.map[id]!));
      assert.is(after.decode(after.encode(text)), before.decode(ids));
    }
    // Special and byte tokens survive, renumbered.
    assert.is(r.checkpoint.tokenizer!.tokens[r.checkpoint.tokenizer!.bosId!], '<s>');
    assert.is(r.checkpoint.tokenizer!.tokens.filter((t) => /^<0x[0-9A-F]{2}>$/.test(t)).length, 256);
    // Text the corpus never used still encodes (through bytes) and decodes back.
    const odd = 'Zyxwv qj! 42 ✓';
    assert.is(after.decode(after.encode(odd)), before.decode(before.encode(odd)));
    // The model: logits at the kept ids are the original model's.
    const backend = createJsBackend();
    const ids = Int32Array.from(before.encode(corpus[0]!).slice(0, 16));
    const a = await new LlamaRuntime(ckpt, backend).logits(ids, 1, ids.length);
    const b = await new LlamaRuntime(r.checkpoint, backend).logits(Int32Array.from(ids, (id) => r.map[id]!), 1, ids.length);
    const V = ckpt.config.vocabSize, K = kept.length;
    let worst = 0;
    for (let t = 0; t < ids.length; t++) kept.forEach((old, k) => { worst = Math.max(worst, Math.abs(a[t * V + old]! - b[t * K + k]!) / Math.max(1, Math.abs(a[t * V + old]!))); });
    assert.ok(worst < 1e-5, `logits differ by ${worst}`);
    assert.ok(r.bytesAfter < r.bytesBefore || ckpt.tensors.get('model.embed_tokens.weight')!.dtype !== undefined, `${r.bytesBefore} → ${r.bytesAfter}`);
  });
}

test('a kept piece keeps every vocabulary piece it contains (what BPE forms on the way to it)', async () => {
  const ckpt = await loadCheckpoint(STORIES_GGUF);
  const data = ckpt.tokenizer!;
  const long = data.tokens.reduce((best, t, id) => (t.length > data.tokens[best]!.length && data.types![id] === TokenType.NORMAL ? id : best), 3);
  const kept = new Set(keptIds(data, new Set([long])));
  const piece = data.tokens[long]!;
  data.tokens.forEach((t, id) => { if (piece.includes(t) && data.types![id] === TokenType.NORMAL) assert.ok(kept.has(id), `${JSON.stringify(t)} inside ${JSON.stringify(piece)}`); });
  assert.throws(() => pruneVocabulary({ ...ckpt, tokenizer: undefined }, [0, 1, 2]), /no tokenizer to prune/);
});

test('prune-vocab from the command line: the pruned GGUF and Hugging Face folder generate the same text as the model', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'adaptkit-prune-'));
  // The whole validation text: the greedy continuation below stays within its tokens.
  const data = join(ASSETS, 'data', 'tinystories', 'tinystories_val.txt');
  const r = cli(['prune-vocab', '--model', STORIES_GGUF, '--data', data, '--out', join(dir, 'small'), '--json']);
  assert.is(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout.trim());
  assert.ok(report.kept < report.vocabulary && report.vocabulary === 512, r.stdout);
  assert.equal(report.written, ['model.safetensors', 'config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.gguf']);
  const gen = (model: string) => cli(['generate', '--model', model, '--prompt', 'Once upon a time', '--max-tokens', '24', '--backend', 'wasm']).stdout;
  const original = gen(STORIES_GGUF);
  assert.is(gen(join(dir, 'small', 'model.gguf')), original);
  assert.is(gen(join(dir, 'small')), original);
  const again = cli(['prune-vocab', '--model', STORIES_GGUF, '--data', data, '--out', join(dir, 'small')]);
  assert.is.not(again.code, 0, 'an existing output is not overwritten without --overwrite');
  writeFileSync(join(dir, 'empty.txt'), '\n\n');
  assert.match(cli(['prune-vocab', '--model', STORIES_GGUF, '--data', join(dir, 'empty.txt'), '--out', join(dir, 'e')]).stderr, /the corpus is empty/);
});

test.run();
