import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createJsBackend } from '../../src/backends/js/index.js';
import { type LlamaCheckpoint, loadCheckpoint, memorySource, tensorF32, withRopeLayout } from '../../src/formats/checkpoint.js';
import { checkpointToGguf, readGgufCheckpoint, readGgufHeader } from '../../src/formats/gguf-llama.js';
import { readHfCheckpoint, readSafetensorsHeader } from '../../src/formats/hf.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { readLlama2c, readLlama2cFrom } from '../../src/formats/llama2c.js';
import { type ByteSource, bytesSource } from '../../src/formats/source.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { paragraphs } from '../../src/data/text.js';
import { TINYSTORIES_VAL } from '../assets.js';
import { GGUF_PATH, L2C_PATH, readAsset } from './helpers.js';

const real = readAsset(GGUF_PATH);

/** A source that counts what is read: total bytes, and the largest single read. */
function counting(src: ByteSource) {
  const stats = { bytes: 0, reads: 0, largest: 0, largestAfterHeader: 0 };
  const c: ByteSource & { stats: typeof stats } = {
    name: src.name, size: src.size, stats,
    async read(offset, length) {
      stats.bytes += length;
      stats.reads++;
      stats.largest = Math.max(stats.largest, length);
      if (offset > 0) stats.largestAfterHeader = Math.max(stats.largestAfterHeader, length);
      return src.read(offset, length);
    },
  };
  return c;
}

function sameCheckpoint(a: LlamaCheckpoint, b: LlamaCheckpoint): void {
  assert.equal(a.config, b.config);
  assert.equal([...a.tensors.keys()], [...b.tensors.keys()]);
  for (const [k, t] of a.tensors) {
    const u = b.tensors.get(k)!;
    assert.is(u.dtype, t.dtype, k);
    assert.ok(Buffer.from(tensorF32(u).buffer, tensorF32(u).byteOffset, tensorF32(u).byteLength).equals(Buffer.from(tensorF32(t).buffer, tensorF32(t).byteOffset, tensorF32(t).byteLength)), k);
  }
}

const SLACK = 64 << 10; // the first read of a GGUF header (64 KiB) may overlap tensor data read again later

for (const [label, bytes] of [['F32', real], ['Q8_0', null], ['Q4_0', null]] as const) {
  test(`GGUF ${label}: a load reads the header, each tensor's bytes once, and at most ${SLACK >> 10} KiB more`, async () => {
    const file = bytes ?? checkpointToGguf(await loadCheckpoint(real), { type: label as 'Q8_0' | 'Q4_0' });
    const src = counting(bytesSource(file, `${label}.gguf`));
    const header = await readGgufHeader(bytesSource(file));
    const tensorBytes = header.tensors.reduce((n, t) => n + t.byteLength, 0);
    const ck = await readGgufCheckpoint(src);
    assert.ok(src.stats.bytes <= header.dataOffset + tensorBytes + SLACK, `read ${src.stats.bytes} bytes; header ${header.dataOffset} + tensors ${tensorBytes}`);
    assert.ok(src.stats.bytes >= tensorBytes);
    // Never the whole file at once: no read is larger than the first header read or the largest tensor.
    const largestTensor = Math.max(...header.tensors.map((t) => t.byteLength));
    assert.ok(src.stats.largest <= Math.max(SLACK, largestTensor), `largest read ${src.stats.largest}`);
    assert.ok(largestTensor < file.length / 4);
    sameCheckpoint(ck, await loadCheckpoint(file));
  });
}

test('converting on load reads one bounded chunk at a time (chunkBytes), never a whole converted tensor', async () => {
  const src = counting(bytesSource(real, 'stories.gguf'));
  const ck = await readGgufCheckpoint(src, { baseDtype: 'q8_0', chunkBytes: 4096 });
  // After the header, no read is larger than one chunk (the embedding alone is 128 KiB).
  assert.ok(src.stats.largestAfterHeader <= 4096, `largest read ${src.stats.largestAfterHeader}`);
  assert.is(ck.tensors.get('model.embed_tokens.weight')!.dtype, 'q8_0');
  const header = await readGgufHeader(bytesSource(real));
  assert.ok(src.stats.bytes <= header.dataOffset + header.tensors.reduce((n, t) => n + t.byteLength, 0) + SLACK);
  // Chunked conversion gives the same result as converting whole tensors.
  sameCheckpoint(ck, await loadCheckpoint(real, { baseDtype: 'q8_0' }));
});

test('an untied output head costs at most one chunk of comparison on top of its own bytes', async () => {
  const base = await loadCheckpoint(real);
  const tensors = new Map(base.tensors);
  tensors.set('lm_head.weight', { shape: [512, 64], data: tensorF32(base.tensors.get('model.embed_tokens.weight')!).map((v) => v * 0.5) });
  const file = checkpointToGguf({ ...base, config: { ...base.config, tiedEmbeddings: false }, tensors });
  const src = counting(bytesSource(file));
  const header = await readGgufHeader(bytesSource(file));
  const ck = await readGgufCheckpoint(src, { chunkBytes: 4096 });
  assert.is(ck.config.tiedEmbeddings, false);
  assert.ok(src.stats.bytes <= header.dataOffset + header.tensors.reduce((n, t) => n + t.byteLength, 0) + SLACK + 4096);
  assert.equal(Array.from(tensorF32(ck.tensors.get('lm_head.weight')!)), Array.from(tensorF32(tensors.get('lm_head.weight')!)));
});

test('safetensors: a load reads the 8-byte length, the JSON header and each tensor once, nothing more', async () => {
  const hf = withRopeLayout(await loadCheckpoint(real, { baseDtype: 'f16' }), 'half');
  const st = writeSafetensors([...hf.tensors].map(([k, t]) => [k, { shape: t.shape, data: tensorF32(t), dtype: t.shape.length === 2 ? 'F16' as const : 'F32' as const }]));
  const src = counting(bytesSource(st, 'model.safetensors'));
  const header = await readSafetensorsHeader(bytesSource(st));
  const config = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 64, intermediate_size: 172, num_hidden_layers: 5,
    num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 512, max_position_embeddings: 512, rms_norm_eps: 1e-5,
    rope_theta: 10000, tie_word_embeddings: true, hidden_act: 'silu',
  };
  const files = memorySource({ 'config.json': new TextEncoder().encode(JSON.stringify(config)) });
  const ck = await readHfCheckpoint({ ...files, open: async (p) => (p === 'model.safetensors' ? src : undefined) });
  assert.is(src.stats.bytes, header.dataOffset + header.tensors.reduce((n, t) => n + t.byteLength, 0));
  assert.is(ck.tensors.get('model.layers.0.mlp.up_proj.weight')!.dtype, 'f16');
});

test('llama2.c: a load reads the header and each tensor once (not the unused RoPE tables); baseDtype converts', async () => {
  const bin = readAsset(L2C_PATH);
  const src = counting(bytesSource(bin, 'stories260K.bin'));
  const ck = await readLlama2cFrom(src);
  const tensorBytes = [...ck.tensors.values()].reduce((n, t) => n + 4 * t.shape.reduce((a, b) => a * b, 1), 0);
  assert.is(src.stats.bytes, 256 + tensorBytes);
  assert.ok(src.stats.bytes < bin.length);
  sameCheckpoint(ck, readLlama2c(bin, 'stories260K.bin'));
  const q8 = await readLlama2cFrom(bytesSource(bin, 'stories260K.bin'), { baseDtype: 'q8_0' });
  assert.is(q8.tensors.get('model.layers.0.self_attn.q_proj.weight')!.dtype, 'q8_0');
  sameCheckpoint(await loadCheckpoint(L2C_PATH, { baseDtype: 'q8_0' }), { ...q8, tokenizer: (await loadCheckpoint(L2C_PATH)).tokenizer });
});

test('a path, a Blob and an http(s) URL (range requests) load the same checkpoint as bytes', async () => {
  const q8 = checkpointToGguf(await loadCheckpoint(real), { type: 'Q8_0' });
  const want = await loadCheckpoint(q8, { name: 'q8.gguf' });
  const dir = mkdtempSync(join(tmpdir(), 'adaptkit-stream-'));
  let served = 0;
  const servers: Server[] = [];
  const serve = (ranges: boolean) => new Promise<string>((resolve) => {
    const s = createServer((req, res) => {
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      if (!ranges || !m) { res.writeHead(200, { 'content-length': q8.length }); res.end(Buffer.from(q8)); return; }
      const a = Number(m[1]), b = Math.min(Number(m[2]), q8.length - 1);
      served += b - a + 1;
      res.writeHead(206, { 'content-range': `bytes ${a}-${b}/${q8.length}`, 'content-length': b - a + 1 });
      res.end(Buffer.from(q8.subarray(a, b + 1)));
    });
    servers.push(s);
    s.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(s.address() as AddressInfo).port}/q8.gguf`));
  });
  try {
    writeFileSync(join(dir, 'q8.gguf'), q8);
    sameCheckpoint(await loadCheckpoint(join(dir, 'q8.gguf')), want);
    sameCheckpoint(await loadCheckpoint(new Blob([q8 as Uint8Array<ArrayBuffer>]), { name: 'q8.gguf' }), want);
    const url = await serve(true);
    const fromUrl = await loadCheckpoint(url);
    sameCheckpoint(fromUrl, want);
    assert.is(fromUrl.source, url);
    const header = await readGgufHeader(bytesSource(q8));
    assert.ok(served <= 1 + header.dataOffset + header.tensors.reduce((n, t) => n + t.byteLength, 0) + SLACK, `served ${served}`);
    const e = await loadCheckpoint(await serve(false)).catch((x: Error) => x);
    assert.match((e as Error).message, /ignores HTTP range requests/);
  } finally {
    for (const s of servers) s.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the compact model loaded by offset evaluates exactly as the same weights loaded whole, and close to f32', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'adaptkit-stream-'));
  try {
    const f32 = await loadCheckpoint(real);
    const tok = createTokenizer(f32.tokenizer!);
    const seqs = paragraphs(readFileSync(TINYSTORIES_VAL, 'utf8')).slice(0, 6).map((p) => tok.encode(p, { bos: true }).slice(0, 65));
    const js = createJsBackend();
    const loss = async (ck: LlamaCheckpoint) => {
      const rt = new LlamaRuntime(ck, js);
      const r = await rt.evalLoss(seqs);
      rt.dispose();
      return r.loss;
    };
    writeFileSync(join(dir, 'q8.gguf'), checkpointToGguf(f32, { type: 'Q8_0' }));
    const streamed = await loadCheckpoint(join(dir, 'q8.gguf'));
    assert.is(streamed.tensors.get('model.layers.0.self_attn.q_proj.weight')!.dtype, 'q8_0');
    const whole = withRopeLayout(withRopeLayout(await loadCheckpoint(real, { baseDtype: 'q8_0' }), 'half'), 'pairs');
    const [a, b, c] = [await loss(streamed), await loss(whole), await loss(f32)];
    assert.is(a, b);
    // Q8_0 weights move the loss of this 260K-parameter model by well under 1%.
    assert.ok(Math.abs(a - c) / c < 1e-2, `q8_0 ${a} vs f32 ${c}`);
    js.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
