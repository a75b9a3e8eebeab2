import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  detectFormat, loadCheckpoint, memorySource, permuteQKHalfToPairs, permuteQKPairsToHalf, validateCheckpoint, withRopeLayout,
  type LlamaCheckpoint, tensorF32,
} from '../../src/formats/checkpoint.js';
import { FormatError } from '../../src/formats/binary.js';
import { parseGguf } from '../../src/formats/gguf.js';
import { checkpointToGguf, readGgufCheckpoint } from '../../src/formats/gguf-llama.js';
import { writeSafetensors, type SafetensorsWriteTensor } from '../../src/formats/safetensors.js';
import { readHfCheckpoint } from '../../src/formats/hf.js';
import { loadCheckpointFile, readGgufFile } from '../../src/formats/node-fs.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { GGUF_PATH, L2C_PATH, L2C_TOK_PATH, readAsset, rejected, rng, thrown } from './helpers.js';

const LILY = 'Once upon a time, there was a little girl named Lily.';
const LILY_IDS = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426];

function sameTensors(a: LlamaCheckpoint, b: LlamaCheckpoint, tol = 0): void {
  assert.equal([...a.tensors.keys()].sort(), [...b.tensors.keys()].sort());
  for (const [k, t] of a.tensors) {
    const u = b.tensors.get(k)!;
    assert.equal(u.shape, t.shape, k);
    const x = tensorF32(t), y = tensorF32(u);
    for (let i = 0; i < x.length; i++) {
      if (Math.abs(x[i]! - y[i]!) > tol) assert.unreachable(`${k}[${i}]: ${x[i]} vs ${y[i]}`);
    }
  }
}

test('GGUF and llama2.c stories260K give identical tensors and configs', async () => {
  const t0 = performance.now();
  const g = await loadCheckpoint(GGUF_PATH);
  const t1 = performance.now();
  const l = await loadCheckpoint(L2C_PATH);
  const t2 = performance.now();
  console.log(`  load: GGUF ${(t1 - t0).toFixed(1)} ms, llama2.c ${(t2 - t1).toFixed(1)} ms`);
  // Measured: llama2.c's legacy export writes Q/K rows exactly as the GGUF stores them (adjacent-pair
  // rotary, no per-head permutation), so the tensors match with no layout conversion at all.
  sameTensors(g, l);
  for (const k of ['model.layers.0.self_attn.q_proj.weight', 'model.layers.3.self_attn.k_proj.weight']) {
    assert.equal(Array.from(tensorF32(g.tensors.get(k)!)), Array.from(tensorF32(l.tensors.get(k)!)));
  }
  // The one difference is a fact of the files: the GGUF's context_length is 2048, the .bin's seq_len 512.
  assert.is(g.config.maxSeqLen, 2048);
  assert.is(l.config.maxSeqLen, 512);
  assert.equal({ ...g.config, maxSeqLen: 0 }, { ...l.config, maxSeqLen: 0 });
  assert.equal(l.config, {
    dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, maxSeqLen: 512, normEps: 1e-5,
    ropeTheta: 10000, tiedEmbeddings: true, qkvBias: false, ropeLayout: 'pairs', architecture: 'llama',
  });
  // The GGUF stores output.weight, byte-identical to token_embd.weight: read as tied and dropped.
  assert.ok(parseGguf(readAsset(GGUF_PATH)).tensorsByName.has('output.weight'));
  assert.not.ok(g.tensors.has('lm_head.weight'));
  for (const ck of [g, l]) assert.equal(createTokenizer(ck.tokenizer!).encode(LILY, { bos: true }), LILY_IDS);
});

test('Q/K permutation: rotary in pair layout equals rotate-half on permuted rows', () => {
  const r = rng(11);
  const nHeads = 3, headDim = 8, inF = 5, half = headDim / 2;
  const W = Float32Array.from({ length: nHeads * headDim * inF }, () => r() * 2 - 1);
  const x = Float64Array.from({ length: inF }, () => r() * 2 - 1);
  const Wh = permuteQKPairsToHalf(W, nHeads, headDim, inF);
  assert.equal(Array.from(permuteQKHalfToPairs(Wh, nHeads, headDim, inF)), Array.from(W));
  const proj = (w: Float32Array) => Array.from({ length: nHeads * headDim }, (_, o) => x.reduce((s, xv, c) => s + w[o * inF + c]! * xv, 0));
  for (const pos of [0, 1, 7, 123]) {
    const qp = proj(W), qh = proj(Wh);
    for (let h = 0; h < nHeads; h++) {
      for (let i = 0; i < half; i++) {
        const ang = pos * 10000 ** (-(2 * i) / headDim);
        const c = Math.cos(ang), s = Math.sin(ang);
        const b = h * headDim;
        // Pairs: rotate (2i, 2i+1). Rotate-half: rotate (i, i + half).
        const p0 = qp[b + 2 * i]! * c - qp[b + 2 * i + 1]! * s, p1 = qp[b + 2 * i]! * s + qp[b + 2 * i + 1]! * c;
        const h0 = qh[b + i]! * c - qh[b + i + half]! * s, h1 = qh[b + i]! * s + qh[b + i + half]! * c;
        // Rotated outputs agree under the same row correspondence, so attention scores are identical.
        assert.ok(Math.abs(p0 - h0) < 1e-12 && Math.abs(p1 - h1) < 1e-12, `pos ${pos} head ${h} pair ${i}`);
      }
    }
  }
  // The stated row mapping, literally.
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (const [hr, pr] of [[i, 2 * i], [half + i, 2 * i + 1]]) {
        assert.equal(Array.from(Wh.subarray((h * headDim + hr) * inF, (h * headDim + hr + 1) * inF)), Array.from(W.subarray((h * headDim + pr) * inF, (h * headDim + pr + 1) * inF)));
      }
    }
  }
  assert.throws(() => permuteQKPairsToHalf(W, nHeads, headDim, inF + 1), /is not 3 heads × 8 rows × 6 columns/);
});

test('withRopeLayout converts q/k (weights and biases) and leaves the rest shared', async () => {
  const g = await loadCheckpoint(GGUF_PATH);
  const h = withRopeLayout(g, 'half');
  assert.is(h.config.ropeLayout, 'half');
  assert.is(h.tensors.get('model.layers.0.self_attn.v_proj.weight'), g.tensors.get('model.layers.0.self_attn.v_proj.weight'));
  assert.is.not(tensorF32(h.tensors.get('model.layers.0.self_attn.k_proj.weight')!), tensorF32(g.tensors.get('model.layers.0.self_attn.k_proj.weight')!));
  sameTensors(withRopeLayout(h, 'pairs'), g);
  assert.is(withRopeLayout(g, 'pairs'), g);
});

const HF_CONFIG = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 64, intermediate_size: 172, num_hidden_layers: 5,
  num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 512, max_position_embeddings: 512, rms_norm_eps: 1e-5,
  rope_theta: 10000, tie_word_embeddings: true, hidden_act: 'silu', torch_dtype: 'float32',
};

function hfTensors(ck: LlamaCheckpoint, dtype?: 'F16' | 'BF16'): Map<string, SafetensorsWriteTensor> {
  const half = withRopeLayout(ck, 'half');
  return new Map([...half.tensors].map(([k, t]) => [k, { shape: t.shape, data: tensorF32(t), ...(dtype ? { dtype } : {}) }]));
}

test('Hugging Face checkpoint: single file, sharded index, F16, untied head, from disk and memory', async () => {
  const g = await loadCheckpoint(GGUF_PATH);
  const dir = mkdtempSync(join(tmpdir(), 'adaptkit-hf-'));
  try {
    writeFileSync(join(dir, 'config.json'), JSON.stringify(HF_CONFIG));
    writeFileSync(join(dir, 'model.safetensors'), writeSafetensors(hfTensors(g), { metadata: { format: 'pt' } }));
    const h = await loadCheckpoint(dir);
    assert.is(h.config.ropeLayout, 'half');
    assert.equal({ ...h.config, ropeLayout: 'pairs', maxSeqLen: 2048 }, g.config);
    sameTensors(withRopeLayout(h, 'pairs'), g);
    // A path to the .safetensors file finds config.json beside it.
    sameTensors(await loadCheckpoint(join(dir, 'model.safetensors')), h);

    // Sharded, with an untied lm_head, in F16.
    const sh = join(dir, 'sharded');
    mkdirSync(sh);
    const all = hfTensors(g, 'F16');
    const lm = g.tensors.get('model.embed_tokens.weight')!;
    all.set('lm_head.weight', { shape: lm.shape, data: tensorF32(lm).map((v) => v * 2), dtype: 'F16' });
    const names = [...all.keys()];
    const parts = [names.slice(0, 20), names.slice(20)];
    const weightMap: Record<string, string> = {};
    parts.forEach((p, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      writeFileSync(join(sh, file), writeSafetensors(new Map(p.map((n) => [n, all.get(n)!]))));
      for (const n of p) weightMap[n] = file;
    });
    writeFileSync(join(sh, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    writeFileSync(join(sh, 'config.json'), JSON.stringify({ ...HF_CONFIG, tie_word_embeddings: false }));
    const s = await loadCheckpointFile(sh);
    assert.is(s.config.tiedEmbeddings, false);
    assert.equal(s.tensors.get('lm_head.weight')!.shape, [512, 64]);
    const sp = withRopeLayout(s, 'pairs');
    for (const [k, t] of g.tensors) {
      const x = tensorF32(t), y = tensorF32(sp.tensors.get(k)!);
      for (let i = 0; i < x.length; i++) assert.ok(Math.abs(y[i]! - x[i]!) <= Math.abs(x[i]!) * 2 ** -11 + 2 ** -24, k);
    }

    // In memory (the browser path).
    const mem = await readHfCheckpoint(memorySource({
      'config.json': new TextEncoder().encode(JSON.stringify(HF_CONFIG)),
      'model.safetensors': writeSafetensors(hfTensors(g)),
    }, 'upload'));
    sameTensors(mem, h);
    assert.not.ok(mem.notes?.some((n) => n.includes('rope_scaling')), 'a note about RoPE scaling the config does not ask for');
    // RoPE scaling is applied (test/model/rope-scaling.test.ts): kept in the config, no note.
    const scaled = await readHfCheckpoint(memorySource({
      'config.json': new TextEncoder().encode(JSON.stringify({ ...HF_CONFIG, rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } })),
      'model.safetensors': writeSafetensors(hfTensors(g)),
    }, 'upload'));
    assert.not.ok(scaled.notes?.some((n) => n.includes('rope_scaling')), String(scaled.notes));
    assert.is(scaled.config.ropeScaling?.rope_type, 'llama3');

    // Errors: missing shard, missing tensor, wrong shape, unsupported model type.
    rmSync(join(sh, 'model-00002-of-00002.safetensors'));
    assert.match((await rejected(loadCheckpoint(sh))).message, /shard model-00002-of-00002\.safetensors named in model\.safetensors\.index\.json is missing/);
    const missing = hfTensors(g);
    missing.delete('model.layers.2.mlp.up_proj.weight');
    const e = await rejected(readHfCheckpoint(memorySource({ 'config.json': new TextEncoder().encode(JSON.stringify(HF_CONFIG)), 'model.safetensors': writeSafetensors(missing) }, 'm')));
    assert.instance(e, FormatError);
    assert.is(e.message, 'm: tensor model.layers.2.mlp.up_proj.weight is missing');
    const wrong = hfTensors(g);
    wrong.set('model.norm.weight', { shape: [32], data: new Float32Array(32) });
    assert.match((await rejected(readHfCheckpoint(memorySource({ 'config.json': new TextEncoder().encode(JSON.stringify(HF_CONFIG)), 'model.safetensors': writeSafetensors(wrong) }, 'm')))).message,
      /^m: tensor model\.norm\.weight has shape \[32\], expected \[64\]/);
    assert.match((await rejected(readHfCheckpoint(memorySource({ 'config.json': new TextEncoder().encode(JSON.stringify({ ...HF_CONFIG, model_type: 'mamba' })) }, 'm')))).message,
      /^m\/config\.json: model_type mamba is not supported \(supported: .*gemma2.*phi3, gpt2/);
    assert.match((await rejected(readHfCheckpoint(memorySource({ 'config.json': new TextEncoder().encode(JSON.stringify(HF_CONFIG)) }, 'm')))).message,
      /^m: neither model\.safetensors nor model\.safetensors\.index\.json is present/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loadCheckpoint detects formats from bytes and paths', async () => {
  const gb = readAsset(GGUF_PATH), lb = readAsset(L2C_PATH);
  assert.is(detectFormat(gb), 'gguf');
  assert.is(detectFormat(lb), 'llama2c');
  assert.is(detectFormat(writeSafetensors({ a: { shape: [1], data: new Float32Array(1) } })), 'safetensors');
  const fromBytes = await loadCheckpoint(gb, { name: 'stories260K.gguf' });
  assert.is(fromBytes.source, 'stories260K.gguf');
  const l = await loadCheckpoint(lb, { name: 'stories260K.bin', tokenizer: readAsset(L2C_TOK_PATH) });
  sameTensors(fromBytes, l);
  assert.equal(createTokenizer(l.tokenizer!).encode(LILY, { bos: true }), LILY_IDS);
  // A llama2.c path finds tok{vocab}.bin beside it.
  const lp = await loadCheckpoint(L2C_PATH);
  assert.match(lp.tokenizer!.source!, /tok512\.bin$/);
  const st = writeSafetensors(hfTensors(fromBytes));
  const viaBytes = await loadCheckpoint(st, { name: 'model.safetensors', config: HF_CONFIG });
  assert.is(viaBytes.config.ropeLayout, 'half');
  assert.match((await rejected(loadCheckpoint(st, { name: 'model.safetensors' }))).message, /needs its config\.json/);
  const gf = await readGgufFile(GGUF_PATH);
  assert.is(gf.name, GGUF_PATH);
  assert.match((await rejected(loadCheckpoint(gb.subarray(0, 1000), { name: 'cut.gguf' }))).message, /^cut\.gguf: .*truncated/);
});

test('checkpoint → GGUF export round trips (from pairs and from rotate-half sources)', async () => {
  const l = await loadCheckpoint(L2C_PATH);
  const bytes = checkpointToGguf(l, { modelName: 'stories260K' });
  const back = await readGgufCheckpoint(parseGguf(bytes, 'export.gguf'));
  sameTensors(back, l);
  assert.equal(back.config, l.config);
  // The llama2.c vocabulary becomes a GGUF one (U+2581 spaces, control pieces), encoding the same.
  assert.is(back.tokenizer!.tokens[259], '\u2581t');
  assert.is(back.tokenizer!.tokens[1], '<s>');
  assert.equal(createTokenizer(back.tokenizer!).encode(LILY, { bos: true }), LILY_IDS);
  // Same tokenizer metadata as the published GGUF.
  const orig = parseGguf(readAsset(GGUF_PATH));
  const ex = parseGguf(bytes);
  for (const k of ['tokenizer.ggml.tokens', 'tokenizer.ggml.scores', 'tokenizer.ggml.token_type']) {
    assert.equal(ex.metadata.get(k), orig.metadata.get(k), k);
  }
  // From a rotate-half checkpoint, export converts Q/K back to pairs.
  const h = withRopeLayout(l, 'half');
  sameTensors(await readGgufCheckpoint(parseGguf(checkpointToGguf(h))), l);
  // F16 and Q8_0 exports stay close.
  for (const [type, tol] of [['F16', 2e-3], ['Q8_0', 2e-2]] as const) {
    const q = await readGgufCheckpoint(parseGguf(checkpointToGguf(l, { type }), `${type}.gguf`));
    sameTensors(q, l, tol);
  }
});

test('validateCheckpoint reports inconsistent configs', async () => {
  const g = await loadCheckpoint(GGUF_PATH);
  const e = thrown(() => validateCheckpoint({ ...g, config: { ...g.config, nKvHeads: 3 } }));
  assert.is(e.message, `${GGUF_PATH}: config nHeads 8 is not a multiple of nKvHeads 3`);
  const t = thrown(() => validateCheckpoint({ ...g, config: { ...g.config, tiedEmbeddings: false } }));
  assert.match(t.message, /tensor lm_head\.weight is missing/);
});

test.run();
