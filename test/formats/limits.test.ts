// Declared sizes and fields that loaders used to accept or crash on: each is refused before anything is
// allocated, with a message naming the file and the field.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { loadPeft, savePeft } from '../../src/adapters/peft.js';
import { FormatError } from '../../src/formats/binary.js';
import { loadCheckpoint, validateCheckpoint } from '../../src/formats/checkpoint.js';
import { gguf, parseGguf } from '../../src/formats/gguf.js';
import { ggufLlamaConfig } from '../../src/formats/gguf-llama.js';
import { hfLlamaConfig } from '../../src/formats/hf.js';
import { parseSafetensors, writeSafetensors } from '../../src/formats/safetensors.js';
import { createTokenizer, sentencePieceToHfJson } from '../../src/tokenizer/index.js';
import { tokenizerDataFromHfJson } from '../../src/tokenizer/hf-json.js';
import { GGUF_PATH, readAsset, thrown } from './helpers.js';

const ckpt = await loadCheckpoint(GGUF_PATH);

test('safetensors: a header length one byte short (or long) is refused, not read one byte off', () => {
  const good = writeSafetensors({ w: { shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) } });
  const dv = new DataView(good.buffer);
  const n = Number(dv.getBigUint64(0, true));
  // The writer pads the header with spaces, so the JSON still parses at the shorter length.
  assert.is(good[8 + n - 1], 0x20);
  const short = good.slice();
  new DataView(short.buffer).setBigUint64(0, BigInt(n - 1), true);
  assert.throws(() => parseSafetensors(short, 'w.safetensors'), (e: Error) => e instanceof FormatError && /^w\.safetensors: .*header length \d+ does not match the data_offsets/.test(e.message));
  const trailing = new Uint8Array(good.length + 1);
  trailing.set(good);
  assert.throws(() => parseSafetensors(trailing, 'w.safetensors'), /w\.safetensors: the tensors' data ends at byte \d+ but the file has \d+ bytes/);
  assert.equal(Array.from(new Float32Array(parseSafetensors(good).bytes.slice(8 + n).buffer)), [1, 2, 3, 4, 5, 6]);
});

const ggufHeader = parseGguf(readAsset(GGUF_PATH), 'stories.gguf');
const withMeta = (key: string, value: ReturnType<typeof gguf.f32>) => ({ ...ggufHeader, metadata: new Map(ggufHeader.metadata).set(key, value) });

test('GGUF: block_count beyond the tensors the file holds and a non-positive or non-finite epsilon are refused', () => {
  for (const n of [2 ** 20, 2 ** 31 - 1, 0]) {
    const e = thrown(() => ggufLlamaConfig(withMeta('llama.block_count', gguf.u32(n))));
    assert.instance(e, FormatError);
    assert.match(e.message, new RegExp(`^stories\\.gguf: metadata llama\\.block_count is ${n} but the file has \\d+ tensors`));
  }
  for (const eps of [-1e-5, 0, Infinity, NaN]) {
    assert.throws(() => ggufLlamaConfig(withMeta('llama.attention.layer_norm_rms_epsilon', gguf.f32(eps))), /^stories\.gguf: metadata llama\.attention\.layer_norm_rms_epsilon is .*expected a positive finite number/);
  }
  assert.is(ggufLlamaConfig(ggufHeader).nLayers, 5);
});

test('config.json: a layer count the tensors cannot hold and a bad epsilon are refused', () => {
  const cfg = { model_type: 'llama', hidden_size: 64, intermediate_size: 172, num_hidden_layers: 5, num_attention_heads: 8, vocab_size: 512 };
  assert.throws(() => hfLlamaConfig({ ...cfg, num_hidden_layers: -3 }, 'm/config.json'), /^m\/config\.json: num_hidden_layers is -3, expected a positive integer/);
  assert.throws(() => hfLlamaConfig({ ...cfg, num_hidden_layers: 2.5 }, 'm/config.json'), /num_hidden_layers is 2\.5/);
  assert.throws(() => hfLlamaConfig({ ...cfg, rms_norm_eps: 0 }, 'm/config.json'), /^m\/config\.json: rms_norm_eps is 0, expected a positive number/);
  const huge = { ...ckpt, config: { ...ckpt.config, nLayers: 2 ** 20 } };
  assert.throws(() => validateCheckpoint(huge), new RegExp(`^${ckpt.source.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: config nLayers 1048576 needs at least 6291456 tensors`));
});

test('tokenizer.json: wrong types, ids past the vocabulary and invalid regexes are clean errors at load', () => {
  const good = sentencePieceToHfJson(ckpt.tokenizer!) as Record<string, unknown>;
  const model = good.model as Record<string, unknown>;
  const load = (j: Record<string, unknown>) => createTokenizer(tokenizerDataFromHfJson(j, 't/tokenizer.json'));
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...good, added_tokens: { id: 1 } }, /added_tokens is object, expected an array/],
    [{ ...good, added_tokens: [null] }, /added_tokens\[0\] is null, expected an object/],
    [{ ...good, added_tokens: [{ id: 2 ** 32, content: 'x' }] }, /added_tokens\[0\] has id 4294967296/],
    [{ ...good, model: { ...model, merges: 'a b' } }, /model\.merges is string, expected an array/],
    [{ ...good, model: { ...model, merges: [null] } }, /model\.merges\[0\] is null/],
    [{ ...good, model: { ...model, vocab: { ...(model.vocab as object), big: 1e8 } } }, /model\.vocab entry "big" has id 100000000/],
    [{ ...good, normalizer: { type: 'Sequence', normalizers: { type: 'NFC' } } }, /normalizer\.normalizers is object, expected an array/],
    [{ ...good, normalizer: { type: 'Replace', pattern: { Regex: '(?<' }, content: ' ' } }, /normalizer\.pattern\.Regex "\(\?<" is not a valid regular expression/],
    [{ ...good, pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '[a-' }, behavior: 'Isolated' }] } }, /pre_tokenizer\.pretokenizers\[0\]\.pattern\.Regex "\[a-" is not a valid regular expression/],
  ];
  for (const [j, re] of cases) {
    const e = thrown(() => load(j));
    assert.instance(e, FormatError, `${re}: ${e.message}`);
    assert.match(e.message, /^t\/tokenizer\.json: /);
    assert.match(e.message, re);
  }
  assert.is(load(good).vocabSize, 512);
});

test('adapter_config.json of null, or a rank of 1e9, is refused naming the file and field', () => {
  const model = new AdaptedModel(ckpt);
  model.addAdapter('default', 'lora', { targetModules: ['q_proj'], r: 2 }, { seed: 1 });
  const files = savePeft(model, 'default');
  const config = JSON.parse(files.config);
  assert.throws(() => loadPeft(new AdaptedModel(ckpt), 'x', { config: 'null', weights: files.weights }, 'ad'), /^ad\/adapter_config\.json: is null, expected a JSON object/);
  assert.throws(() => loadPeft(new AdaptedModel(ckpt), 'x', { config: JSON.stringify({ ...config, r: 1e9 }), weights: files.weights }, 'ad'), /^ad\/adapter_config\.json: r is 1000000000, expected a whole number from 0 to 512/);
  assert.throws(() => loadPeft(new AdaptedModel(ckpt), 'x', { config: JSON.stringify({ ...config, target_modules: ['nothing'] }), weights: files.weights }, 'ad'), /^ad\/adapter_config\.json: /);
  assert.ok(loadPeft(new AdaptedModel(ckpt), 'x', files, 'ad'));
});

test.run();
