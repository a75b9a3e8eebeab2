import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FormatError } from '../../src/formats/binary.js';
import { parseLlama2cHeader, parseLlama2cTokenizer, readLlama2c } from '../../src/formats/llama2c.js';
import { L2C_PATH, L2C_TOK_PATH, readAsset, thrown } from './helpers.js';
import { tensorF32 } from '../../src/formats/checkpoint.js';

const model = readAsset(L2C_PATH);
const tok = readAsset(L2C_TOK_PATH);
const NAME = 'stories260K.bin';

function errOf(fn: () => unknown, name: string): string {
  const e = thrown(fn);
  assert.instance(e, FormatError);
  assert.ok(e.message.startsWith(`${name}: `), e.message);
  return e.message;
}

test('header of stories260K.bin', () => {
  const h = parseLlama2cHeader(model, NAME);
  assert.equal(
    { ...h },
    { version: 0, dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512, sharedClassifier: true, weightsOffset: 28 },
  );
});

test('reads every weight under Hugging Face names with [out, in] shapes', () => {
  const t0 = performance.now();
  const ck = readLlama2c(model, NAME);
  const ms = performance.now() - t0;
  assert.is(ck.tensors.size, 2 + 5 * 9);
  assert.equal(ck.tensors.get('model.layers.4.self_attn.k_proj.weight')!.shape, [32, 64]);
  assert.equal(ck.tensors.get('model.layers.0.mlp.down_proj.weight')!.shape, [64, 172]);
  assert.equal(ck.tensors.get('model.layers.0.mlp.gate_proj.weight')!.shape, [172, 64]);
  assert.not.ok(ck.tensors.has('lm_head.weight'));
  // The final norm directly precedes the unused RoPE tables (512 × 4 × 2 floats) at the end of the file.
  const norm = tensorF32(ck.tensors.get('model.norm.weight')!);
  const end = new Float32Array(model.slice(model.length - 4 * (4096 + 64), model.length - 4 * 4096).buffer);
  assert.equal(Array.from(norm), Array.from(end));
  assert.ok(ms < 500, `${ms} ms`);
});

test('separate classifier (negative vocab_size) and version 1 files', () => {
  const h = parseLlama2cHeader(model, NAME);
  const extra = new Float32Array(h.vocabSize * h.dim).map((_, i) => i * 1e-3);
  const sep = new Uint8Array(model.length + extra.byteLength);
  sep.set(model);
  sep.set(new Uint8Array(extra.buffer), model.length);
  new DataView(sep.buffer).setInt32(20, -512, true);
  const ck = readLlama2c(sep, 'sep.bin');
  assert.is(ck.config.tiedEmbeddings, false);
  assert.equal(Array.from(tensorF32(ck.tensors.get('lm_head.weight')!).subarray(0, 3)), Array.from(extra.subarray(0, 3)));

  // Version 1: same weights, different order, 256-byte header, no RoPE tables.
  const legacy = readLlama2c(model, NAME);
  const order = [
    ...Array.from({ length: 5 }, (_, l) => `model.layers.${l}.input_layernorm.weight`),
    ...Array.from({ length: 5 }, (_, l) => `model.layers.${l}.post_attention_layernorm.weight`),
    'model.norm.weight', 'model.embed_tokens.weight',
    ...['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.down_proj', 'mlp.up_proj']
      .flatMap((s) => Array.from({ length: 5 }, (_, l) => `model.layers.${l}.${s}.weight`)),
  ];
  const floats = order.reduce((n, k) => n + tensorF32(legacy.tensors.get(k)!).length, 0);
  const v1 = new Uint8Array(256 + 4 * floats);
  const dv = new DataView(v1.buffer);
  dv.setUint32(0, 0x616b3432, true);
  dv.setInt32(4, 1, true);
  [64, 172, 5, 8, 4, 512, 512].forEach((v, i) => dv.setInt32(8 + 4 * i, v, true));
  v1[36] = 1;
  let p = 256;
  for (const k of order) {
    const d = tensorF32(legacy.tensors.get(k)!);
    v1.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), p);
    p += d.byteLength;
  }
  const ck1 = readLlama2c(v1, 'v1.bin');
  assert.equal([...ck1.tensors.keys()].sort(), [...legacy.tensors.keys()].sort());
  for (const [k, t] of legacy.tensors) assert.equal(Array.from(tensorF32(ck1.tensors.get(k)!)), Array.from(tensorF32(t)), k);
  dv.setInt32(4, 2, true);
  assert.match(errOf(() => readLlama2c(v1, 'v2.bin'), 'v2.bin'), /unsupported llama2\.c version 2/);
});

test('truncated, oversized and implausible model files', () => {
  assert.match(errOf(() => readLlama2c(model.subarray(0, 20), NAME), NAME), /llama2\.c header at byte 0 needs 28 bytes but the file has 20 bytes \(truncated\?\)/);
  assert.match(
    errOf(() => readLlama2c(model.subarray(0, model.length - 4), NAME), NAME),
    /header \(dim 64, hidden_dim 172, n_layers 5, n_heads 8, n_kv_heads 4, vocab 512, seq_len 512\) needs 1056540 bytes .* but the file has 1056536 bytes \(truncated\?\)/,
  );
  const big = new Uint8Array(model.length + 8);
  big.set(model);
  assert.match(errOf(() => readLlama2c(big, NAME), NAME), /accounts for 1056540 bytes but the file has 1056548/);
  const bad = model.slice();
  new DataView(bad.buffer).setInt32(12, 7, true); // n_heads 7 does not divide dim 64
  assert.match(errOf(() => readLlama2c(bad, NAME), NAME), /dim 64 is not a multiple of n_heads 7/);
  const junk = new TextEncoder().encode('GGUF this is not a llama2.c checkpoint at all');
  assert.match(errOf(() => readLlama2c(junk, 'x.bin'), 'x.bin'), /not a plausible value \(not a llama2\.c file\?\)/);
});

test('tokenizer.bin: pieces, scores, ids; truncation and size mismatches', () => {
  const t = parseLlama2cTokenizer(tok, 'tok512.bin', { vocabSize: 512 });
  assert.is(t.tokens.length, 512);
  assert.is(t.tokens[1], '\n<s>\n');
  assert.is(t.tokens[259], ' t');
  assert.is(t.scores![260], -1);
  assert.equal([t.unkId, t.bosId, t.eosId], [0, 1, 2]);
  assert.match(errOf(() => parseLlama2cTokenizer(tok.subarray(0, tok.length - 2), 'tok512.bin'), 'tok512.bin'), /bytes of token 511 at byte \d+ needs 3 bytes but the file has 6225 bytes \(truncated\?\)/);
  assert.match(errOf(() => parseLlama2cTokenizer(tok, 'tok512.bin', { vocabSize: 600 }), 'tok512.bin'), /has 512 tokens but the model's vocab_size is 600/);
  assert.match(errOf(() => parseLlama2cTokenizer(tok, 'tok512.bin', { vocabSize: 100 }), 'tok512.bin'), /bytes left after 100 tokens/);
  const bad = tok.slice();
  new DataView(bad.buffer).setInt32(4 + 4, 1000, true); // length of token 0
  assert.match(errOf(() => parseLlama2cTokenizer(bad, 'tok512.bin'), 'tok512.bin'), /token 0 at byte 8 has length 1000, outside 0\.\.max_token_length 7/);
  const short = { ...t, tokens: t.tokens.slice(0, 100) };
  assert.match(errOf(() => readLlama2c(model, NAME, { tokenizer: short }), NAME), /the tokenizer \(tok512\.bin\) has 100 tokens but the model's vocab_size is 512/);
});

test.run();
