// stories260K end to end on the js backend: exact greedy generation from both file formats, and a
// Hugging Face-layout safetensors copy (rotate-half Q/K) giving the same logits.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createJsBackend } from '../../src/backends/js/index.js';
import { loadCheckpoint, memorySource, withRopeLayout, tensorF32 } from '../../src/formats/checkpoint.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { Graph } from '../../src/graph/graph.js';
import { buildLlama } from '../../src/model/llama.js';
import { LlamaRuntime, uploadWeights } from '../../src/model/runtime.js';
import { Session } from '../../src/scheduler/session.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { paragraphs } from '../../src/data/text.js';
import { createBackend } from '../../src/scheduler/backends.js';
import { GREEDY_256, STORIES_BIN, STORIES_GGUF, STORIES_TOK, TINYSTORIES_VAL } from '../assets.js';
import { maxRelErr, rejection } from '../helpers.js';

const reference = readFileSync(GREEDY_256, 'utf8');

for (const [label, load] of [
  ['GGUF', () => loadCheckpoint(STORIES_GGUF)],
  ['llama2.c', () => loadCheckpoint(STORIES_BIN, { tokenizer: STORIES_TOK })],
] as const) {
  test(`greedy 256 tokens from BOS equals greedy-256.txt exactly (${label}, js)`, async () => {
    const ckpt = await load();
    const tok = createTokenizer(ckpt.tokenizer!);
    const rt = new LlamaRuntime(ckpt, createJsBackend());
    const ids = await rt.generate([tok.bosId!], { maxTokens: 256 });
    assert.is(tok.decode(ids, { stripLeadingSpace: true }), reference);
    rt.dispose();
  });
}

for (const name of ['wasm', 'webgpu'] as const) {
  test(`greedy 256 on the ${name} backend equals greedy-256.txt exactly (GGUF and llama2.c)`, async () => {
    const { backend } = await createBackend(name);
    for (const ckpt of [await loadCheckpoint(STORIES_GGUF), await loadCheckpoint(STORIES_BIN, { tokenizer: STORIES_TOK })]) {
      const tok = createTokenizer(ckpt.tokenizer!);
      const rt = new LlamaRuntime(ckpt, backend);
      assert.is(tok.decode(await rt.generate([tok.bosId!], { maxTokens: 256 }), { stripLeadingSpace: true }), reference);
      rt.dispose();
    }
    backend.dispose();
  });
}

test('eval over the first 200 TinyStories paragraphs at 256 tokens: 1.43881 ± 0.0005 nats/token over 19,380 tokens (wasm)', async () => {
  const ckpt = await loadCheckpoint(STORIES_GGUF);
  const tok = createTokenizer(ckpt.tokenizer!);
  const seqs = paragraphs(readFileSync(TINYSTORIES_VAL, 'utf8')).slice(0, 200).map((p) => tok.encode(p, { bos: true }).slice(0, 257));
  const wasm = (await createBackend('wasm')).backend;
  const rt = new LlamaRuntime(ckpt, wasm);
  const r = await rt.evalLoss(seqs, { batch: 8 });
  assert.is(r.tokens, 19380);
  assert.ok(Math.abs(r.loss - 1.43881) <= 0.0005, `loss ${r.loss}`);
  // js agrees with wasm on a subset (the full js pass takes ~25 s here).
  const sub = seqs.slice(0, 16);
  const [a, b] = [await rt.evalLoss(sub), await new LlamaRuntime(ckpt, createJsBackend()).evalLoss(sub)];
  assert.ok(Math.abs(a.loss - b.loss) / b.loss < 1e-5, `wasm ${a.loss} vs js ${b.loss}`);
  rt.dispose();
  wasm.dispose();
});

test('a Hugging Face-layout safetensors checkpoint (rotate-half Q/K) gives the same logits as the GGUF (≤ 1e-5 relative)', async () => {
  const gguf = await loadCheckpoint(STORIES_GGUF);
  const hf = withRopeLayout(gguf, 'half');
  const bytes = writeSafetensors([...hf.tensors].map(([k, t]) => [k, { shape: t.shape, data: tensorF32(t) }] as [string, { shape: number[]; data: Float32Array }]));
  const c = gguf.config;
  const config = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: c.dim, intermediate_size: c.hiddenDim, num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads, num_key_value_heads: c.nKvHeads, vocab_size: c.vocabSize, max_position_embeddings: 512,
    rms_norm_eps: c.normEps, rope_theta: c.ropeTheta, tie_word_embeddings: true,
  };
  const loaded = await loadCheckpoint(memorySource({ 'config.json': new TextEncoder().encode(JSON.stringify(config)), 'model.safetensors': bytes }, 'hf-copy'));
  assert.is(loaded.config.ropeLayout, 'half');
  const ids = Int32Array.from({ length: 24 }, (_, i) => (i * 37 + 1) % 512);
  const logits = async (ck: typeof gguf) => {
    const g = new Graph();
    const m = buildLlama(g, ck.config, { batch: 1, seq: 24 });
    g.markOutput(m.logits);
    const s = await Session.create(g, createJsBackend());
    uploadWeights(s, m.weights, ck);
    s.set(m.ids, ids);
    await s.run();
    return s.get(m.logits);
  };
  const [a, b] = [await logits(gguf), await logits(loaded)];
  const err = maxRelErr(b, a);
  assert.ok(err <= 1e-5, `relative difference ${err}`);
});

test('a truncated or corrupt model file gives an error naming the file', async () => {
  const bytes = new Uint8Array(readFileSync(STORIES_GGUF));
  assert.match((await rejection(loadCheckpoint(bytes.subarray(0, bytes.length - 1000), { name: 'cut.gguf' }))).message, /cut\.gguf.*(truncated|ends|past)/);
  assert.match((await rejection(loadCheckpoint('/nonexistent/model.gguf'))).message, /nonexistent\/model\.gguf/);
});

test.run();
