// GGUF files of llama.cpp's phi3, gpt2 and bert architectures. For each, a small random model written in the
// Hugging Face layout is converted to GGUF by test/formats/gguf-convert.ts (convert_hf_to_gguf.py's rules,
// written independently of src/): the GGUF loads to the same tensors (bit for bit) and gives the same logits
// (float64 js, within 1e-5) as the folder. Phi-3: fused attn_qkv and ffn_up (gate half first), LongRoPE factor
// tensors past the original context, a sliding window. GPT-2: learned positions, LayerNorm biases, Conv1D weights
// transposed by the converter, tied head. BERT-family: BERT with a labelled classifier (pooler dropped by the
// converter), RoBERTa with its two-layer head (position table cut by pad + 1), DistilBERT without token types;
// the WordPiece vocabulary encodes alike. The library's phi3/gpt2 writer gives the converter's tensor names,
// shapes and keys and reads back to the same logits. Missing, mis-shaped and foreign tensors are refused by
// their GGUF names before any data is read.
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { type LlamaCheckpoint, type LlamaConfig, type NamedTensor, tensorF32 } from '../../src/formats/checkpoint.js';
import { type GgufWriteTensor, parseGguf, writeGguf, ggufPlain } from '../../src/formats/gguf.js';
import { checkpointToGguf, readGgufCheckpoint } from '../../src/formats/gguf-llama.js';
import { loadCheckpointFile } from '../../src/formats/node-fs.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { familyOf } from '../../src/model/families.js';
import { loadEncoder } from '../../src/model/encoders/checkpoint.js';
import { EncoderClassifier } from '../../src/model/encoders/classifier.js';
import { readGgufEncoder } from '../../src/model/encoders/gguf.js';
import { syntheticCheckpoint } from '../../src/model/synthetic.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { writeEncoder } from '../encoders/helpers.js';
import { logitsF64, maxGap } from '../reference/ours.js';
import { convertHfFolder } from './gguf-convert.js';
import { rejected } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-gguf-families-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const B = 2, T = 6;
const ids = (v: number, t = T) => Int32Array.from({ length: B * t }, (_, i) => (i * 5 + 1) % v);

/** Write a checkpoint (held names and orientation) as a Hugging Face folder, norms moved away from 1. */
function writeHf(ckpt: LlamaCheckpoint, out: string, config: Record<string, unknown>, extra: [string, NamedTensor][] = []): string {
  const { toHf } = familyOf(ckpt.config);
  const entries = [...ckpt.tensors].map(([k, t]): [string, { shape: number[]; data: Float32Array }] => {
    const held = /(norm|ln_\d|ln_f)\.weight$/.test(k) ? { shape: t.shape, data: Float32Array.from(tensorF32(t), (_, i) => 0.7 + ((i * 7 + k.length) % 11) / 15) } : t;
    const f = toHf ? toHf(k, held) : held;
    return [k, { shape: f.shape, data: tensorF32(f) }];
  });
  for (const [k, t] of extra) entries.push([k, { shape: t.shape, data: tensorF32(t) }]);
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'model.safetensors'), writeSafetensors(entries));
  writeFileSync(join(out, 'config.json'), JSON.stringify(config));
  return out;
}

function sameTensors(a: Map<string, NamedTensor>, b: Map<string, NamedTensor>, what: string): void {
  assert.equal([...a.keys()].sort(), [...b.keys()].sort(), `${what}: tensor names`);
  for (const [k, t] of a) {
    const u = b.get(k)!;
    assert.equal(u.shape, t.shape, `${what}: ${k} shape`);
    assert.ok(maxGap(tensorF32(t), tensorF32(u)) === 0, `${what}: ${k} values differ`);
  }
}

/** A GGUF file's tensor list and keys, with a rewrite of its tensors (for the refusal cases). */
function rewrite(bytes: Uint8Array, edit: (tensors: GgufWriteTensor[]) => GgufWriteTensor[]): Uint8Array {
  const f = parseGguf(bytes);
  const tensors: GgufWriteTensor[] = f.tensors.map((t) => ({ name: t.name, shape: t.shape, data: new Float32Array(bytes.buffer.slice(bytes.byteOffset + t.offset, bytes.byteOffset + t.offset + t.byteLength)), type: 'F32' }));
  return writeGguf({ metadata: [...f.metadata].filter(([k]) => k !== 'general.alignment'), tensors: edit(tensors) });
}

const layout = (bytes: Uint8Array) => {
  const f = parseGguf(bytes);
  return { tensors: f.tensors.map((t) => `${t.name} [${t.shape.join(', ')}] ${t.typeName}`).sort(), keys: [...f.metadata.keys()].filter((k) => k !== 'general.name').sort() };
};

// ---------------------------------------------------------------------------------------------------------- phi3

const PHI3: LlamaConfig = {
  dim: 32, hiddenDim: 40, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 24, maxSeqLen: 64, normEps: 1e-5,
  ropeTheta: 1000, tiedEmbeddings: false, qkvBias: false, ropeLayout: 'half', architecture: 'phi3', fusedProjections: true,
};
// LongRoPE with an original context of 4 (so rows of 6 tokens use the long factors, rows of 3 the short ones)
// and a window of 5 (< 6, so it changes the logits).
const PHI3_JSON = {
  model_type: 'phi3', architectures: ['Phi3ForCausalLM'], hidden_size: 32, intermediate_size: 40, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 24, max_position_embeddings: 64, original_max_position_embeddings: 4,
  rms_norm_eps: 1e-5, rope_theta: 1000, tie_word_embeddings: false, hidden_act: 'silu', sliding_window: 5,
  rope_scaling: { type: 'longrope', short_factor: [1, 1.3, 1.9, 2.6], long_factor: [1.1, 2.2, 4.5, 8.25] },
};

test('phi3: a converted file loads to the folder\'s tensors and logits (LongRoPE long and short, sliding window)', async () => {
  const folder = writeHf(syntheticCheckpoint(PHI3, { seed: 3, scale: 0.6 }), join(dir, 'phi3'), PHI3_JSON);
  const bytes = convertHfFolder(folder);
  writeFileSync(join(dir, 'phi3.gguf'), bytes);
  const hf = await loadCheckpointFile(folder), g = await loadCheckpointFile(join(dir, 'phi3.gguf'));
  sameTensors(hf.tensors, g.tensors, 'phi3');
  assert.is(g.config.architecture, 'phi3');
  assert.is(g.config.slidingWindow, 5);
  assert.is(g.config.ropeScaling?.original_max_position_embeddings, 4);
  assert.equal(g.config.ropeScaling?.long_factor, [1.1, 2.2, 4.5, 8.25]);
  assert.is(g.config.ropeScaling?.attention_factor, undefined, 'the attention factor the converter wrote is the derived one');
  for (const t of [T, 3]) {
    const want = await logitsF64(new AdaptedModel(hf), ids(24, t), B, t), got = await logitsF64(new AdaptedModel(g), ids(24, t), B, t);
    assert.ok(maxGap(want, got) <= 1e-5, `phi3 T=${t}: max |logit difference| ${maxGap(want, got)}`);
  }
  // The fused layouts are what the file holds: a file whose gate and up halves are swapped gives other logits.
  const swapped = rewrite(bytes, (ts) => ts.map((t) => {
    if (!/ffn_up\.weight$/.test(t.name) || !('data' in t)) return t;
    const half = t.data.length / 2;
    return { ...t, data: Float32Array.from(t.data, (_, i) => t.data[(i + half) % t.data.length]!) };
  }));
  const wrong = await readGgufCheckpoint(parseGguf(swapped, 'swapped.gguf'));
  assert.ok(maxGap(await logitsF64(new AdaptedModel(hf), ids(24), B, T), await logitsF64(new AdaptedModel(wrong), ids(24), B, T)) > 1e-3);
});

test('phi3: the library writes the converter\'s names, shapes and keys, and its file reads back to the same logits', async () => {
  const hf = await loadCheckpointFile(join(dir, 'phi3'));
  const bytes = checkpointToGguf(hf);
  assert.equal(layout(bytes), layout(convertHfFolder(join(dir, 'phi3'))));
  const back = await readGgufCheckpoint(parseGguf(bytes, 'written.gguf'));
  const gap = maxGap(await logitsF64(new AdaptedModel(hf), ids(24), B, T), await logitsF64(new AdaptedModel(back), ids(24), B, T));
  assert.ok(gap <= 1e-5, `max |logit difference| ${gap}`);
  // No window and no scaling: sliding_window 0, no factor tensors; read back without either.
  const plain = { ...hf, config: { ...hf.config, slidingWindow: undefined, ropeScaling: undefined } };
  delete plain.config.slidingWindow; delete plain.config.ropeScaling;
  const p = parseGguf(checkpointToGguf(plain), 'plain.gguf');
  assert.is(ggufPlain(p.metadata.get('phi3.attention.sliding_window')!), 0);
  assert.not.ok(p.tensorsByName.has('rope_factors_long.weight'));
  const c = (await readGgufCheckpoint(p)).config;
  assert.is(c.slidingWindow, undefined);
  assert.is(c.ropeScaling, undefined);
});

test('phi3: missing, mis-shaped and foreign tensors are refused by their GGUF names', async () => {
  const bytes = convertHfFolder(join(dir, 'phi3'));
  const load = (b: Uint8Array) => readGgufCheckpoint(parseGguf(b, 'bad.gguf'));
  let e = await rejected(load(rewrite(bytes, (ts) => ts.filter((t) => t.name !== 'blk.1.ffn_up.weight'))));
  assert.match(e.message, /tensor blk\.1\.ffn_up\.weight \(model\.layers\.1\.mlp\.gate_up_proj\.weight\) is missing/);
  e = await rejected(load(rewrite(bytes, (ts) => ts.map((t) => (t.name === 'blk.0.attn_qkv.weight' ? { ...t, shape: [32, 64], data: new Float32Array(32 * 64) } : t)))));
  assert.match(e.message, /tensor blk\.0\.attn_qkv\.weight \(model\.layers\.0\.self_attn\.qkv_proj\.weight\) has shape \[32, 64\], expected \[64, 32\]/);
  e = await rejected(load(rewrite(bytes, (ts) => [...ts, { name: 'blk.0.attn_q.bias', shape: [32], data: new Float32Array(32), type: 'F32' }])));
  assert.match(e.message, /tensor blk\.0\.attn_q\.bias is not part of a phi3 model \(phi3 files hold q, k and v fused/);
  e = await rejected(load(rewrite(bytes, (ts) => ts.filter((t) => t.name !== 'rope_factors_short.weight'))));
  assert.match(e.message, /tensor rope_factors_short\.weight is missing \(LongRoPE needs both/);
  e = await rejected(load(rewrite(bytes, (ts) => ts.map((t) => (t.name === 'rope_factors_long.weight' ? { ...t, shape: [3], data: new Float32Array(3).fill(1) } : t)))));
  assert.match(e.message, /tensor rope_factors_long\.weight should hold 4 positive values/);
});

// ---------------------------------------------------------------------------------------------------------- gpt2

const GPT2: LlamaConfig = {
  dim: 32, hiddenDim: 128, nLayers: 2, nHeads: 4, nKvHeads: 4, vocabSize: 24, maxSeqLen: 32, normEps: 1e-5,
  ropeTheta: 10000, tiedEmbeddings: true, qkvBias: true, ropeLayout: 'half', architecture: 'gpt2',
};
// n_inner null: the converter writes feed_forward_length as 4·n_embd, which is then the model's width.
const GPT2_JSON = {
  model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], n_embd: 32, n_inner: null, n_layer: 2, n_head: 4, vocab_size: 24,
  n_positions: 32, n_ctx: 32, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new',
};

test('gpt2: a converted file (Conv1D weights transposed, mask buffers dropped) loads to the folder\'s tensors and logits', async () => {
  const mask: [string, NamedTensor] = ['transformer.h.0.attn.bias', { shape: [1, 1, 32, 32], data: new Float32Array(32 * 32).fill(1) }];
  const folder = writeHf(syntheticCheckpoint(GPT2, { seed: 5, scale: 0.6 }), join(dir, 'gpt2'), GPT2_JSON, [mask]);
  const bytes = convertHfFolder(folder);
  writeFileSync(join(dir, 'gpt2.gguf'), bytes);
  const hf = await loadCheckpointFile(folder), g = await loadCheckpointFile(join(dir, 'gpt2.gguf'));
  sameTensors(hf.tensors, g.tensors, 'gpt2');
  assert.equal(g.config, hf.config);
  const gap = maxGap(await logitsF64(new AdaptedModel(hf), ids(24), B, T), await logitsF64(new AdaptedModel(g), ids(24), B, T));
  assert.ok(gap <= 1e-5, `max |logit difference| ${gap}`);
  // The converter's transpose matters: the file holds c_attn as [3·D, D] (ggml ne [D, 3·D]).
  assert.equal(parseGguf(bytes).tensorsByName.get('blk.0.attn_qkv.weight')!.shape, [96, 32]);
});

test('gpt2: the library writes the converter\'s names, shapes and keys (untied head as output.weight); missing and mis-shaped tensors are named', async () => {
  const hf = await loadCheckpointFile(join(dir, 'gpt2'));
  assert.equal(layout(checkpointToGguf(hf)), layout(convertHfFolder(join(dir, 'gpt2'))));
  const untied: LlamaCheckpoint = { ...hf, config: { ...hf.config, tiedEmbeddings: false }, tensors: new Map(hf.tensors) };
  untied.tensors.set('lm_head.weight', { shape: [24, 32], data: Float32Array.from({ length: 24 * 32 }, (_, i) => Math.sin(i)) });
  const p = parseGguf(checkpointToGguf(untied), 'untied.gguf');
  assert.equal(p.tensorsByName.get('output.weight')!.shape, [24, 32]);
  const back = await readGgufCheckpoint(p);
  assert.is(back.config.tiedEmbeddings, false);
  const gap = maxGap(await logitsF64(new AdaptedModel(untied), ids(24), B, T), await logitsF64(new AdaptedModel(back), ids(24), B, T));
  assert.ok(gap <= 1e-5, `max |logit difference| ${gap}`);
  const bytes = convertHfFolder(join(dir, 'gpt2'));
  const load = (b: Uint8Array) => readGgufCheckpoint(parseGguf(b, 'bad.gguf'));
  let e = await rejected(load(rewrite(bytes, (ts) => ts.filter((t) => t.name !== 'position_embd.weight'))));
  assert.match(e.message, /tensor position_embd\.weight \(transformer\.wpe\.weight\) is missing/);
  e = await rejected(load(rewrite(bytes, (ts) => ts.map((t) => (t.name === 'blk.1.ffn_norm.bias' ? { ...t, shape: [16], data: new Float32Array(16) } : t)))));
  assert.match(e.message, /tensor blk\.1\.ffn_norm\.bias \(transformer\.h\.1\.ln_2\.bias\) has shape \[16\], expected \[32\]/);
});

// ---------------------------------------------------------------------------------------------------------- bert

const LABELS = ['neg', 'pos'];
const texts = [[2, 5, 9, 11, 7, 3], [2, 14, 6, 3, 0, 0]];

async function encoderLogits(ckpt: Parameters<typeof EncoderClassifier.create>[0], task: 'seq-cls' | 'token-cls', labels = LABELS): Promise<Float64Array[]> {
  const cls = EncoderClassifier.create(ckpt, task, labels, 'lora', { r: 2, alpha: 4, targetModules: ckpt.encoder.kind === 'distilbert' ? ['q_lin', 'v_lin'] : ['query', 'value'] }, { seed: 4 });
  return cls.logits(createJsBackend({ precision: 'f64' }), texts.map((r, i) => ({ ids: i === 1 ? r.slice(0, 4) : r })), 2);
}

const gapOf = (a: Float64Array[], b: Float64Array[]) => Math.max(...a.map((x, i) => maxGap(x, b[i]!)));

test('bert: a BertForSequenceClassification file (pooler dropped, classifier as cls.output) loads to the folder\'s encoder, classifier and labels; WordPiece alike', async () => {
  const folder = writeEncoder(join(dir, 'bert'), 'bert', { labels: LABELS, seed: 7, tokenizer: true });
  writeFileSync(join(dir, 'bert.gguf'), convertHfFolder(folder));
  const hf = await loadEncoder(folder), g = await loadEncoder(join(dir, 'bert.gguf'));
  const noPooler = new Map([...hf.tensors].filter(([k]) => !k.startsWith('bert.pooler.')));
  sameTensors(noPooler, g.tensors, 'bert');
  assert.equal(g.encoder.labels, LABELS);
  assert.equal({ ...g.encoder, labels: [] }, { ...hf.encoder, labels: [] });
  // Token classification uses the encoder and `classifier` only: the same logits.
  assert.ok(gapOf(await encoderLogits(hf, 'token-cls'), await encoderLogits(g, 'token-cls')) <= 1e-5);
  // Sequence classification needs the pooler the file lacks: it is initialised fresh, so the logits differ.
  assert.ok(gapOf(await encoderLogits(hf, 'seq-cls'), await encoderLogits(g, 'seq-cls')) > 1e-3);
  const sentences = ['The movie was very good!', 'this plot is boring and dull , but the acting is nice', 'I hate it.'];
  const a = createTokenizer(hf.tokenizer!), b = createTokenizer(g.tokenizer!);
  for (const s of sentences) assert.equal(b.encode(s), a.encode(s), s);
});

test('roberta: the converted file (positions cut by pad + 1, head as cls / cls.output) gives the folder\'s sequence-classification logits', async () => {
  const folder = writeEncoder(join(dir, 'roberta'), 'roberta', { labels: LABELS, seed: 8 });
  writeFileSync(join(dir, 'roberta.gguf'), convertHfFolder(folder));
  const hf = await loadEncoder(folder), g = await loadEncoder(join(dir, 'roberta.gguf'));
  assert.is(g.encoder.kind, 'bert');
  assert.is(g.encoder.maxPositions, hf.encoder.maxPositions - 2);
  assert.equal(tensorF32(g.tensors.get('bert.pooler.dense.weight')!), tensorF32(hf.tensors.get('classifier.dense.weight')!));
  const gap = gapOf(await encoderLogits(hf, 'seq-cls'), await encoderLogits(g, 'seq-cls'));
  assert.ok(gap <= 1e-5, `max |logit difference| ${gap}`);
});

test('distilbert: the converted file (no token types) gives the folder\'s token-classification logits; bad bert files are refused by tensor name', async () => {
  const folder = writeEncoder(join(dir, 'distilbert'), 'distilbert', { seed: 9 });
  const bytes = convertHfFolder(folder);
  const hf = await loadEncoder(folder), g = await readGgufEncoder(parseGguf(bytes, 'distilbert.gguf'));
  assert.is(g.encoder.typeVocabSize, 0);
  assert.equal(g.encoder.labels, []);
  const gap = gapOf(await encoderLogits(hf, 'token-cls', ['a', 'b', 'c']), await encoderLogits(g, 'token-cls', ['a', 'b', 'c']));
  assert.ok(gap <= 1e-5, `max |logit difference| ${gap}`);
  const load = (b: Uint8Array) => readGgufEncoder(parseGguf(b, 'bad.gguf'));
  let e = await rejected(load(rewrite(bytes, (ts) => ts.filter((t) => t.name !== 'blk.1.layer_output_norm.bias'))));
  assert.match(e.message, /tensor blk\.1\.layer_output_norm\.bias \(bert\.encoder\.layer\.1\.output\.LayerNorm\.bias\) is missing/);
  e = await rejected(load(rewrite(bytes, (ts) => ts.map((t) => (t.name === 'blk.0.attn_k.weight' ? { ...t, shape: [8, 32], data: new Float32Array(256) } : t)))));
  assert.match(e.message, /tensor blk\.0\.attn_k\.weight \(bert\.encoder\.layer\.0\.attention\.self\.key\.weight\) has shape \[8, 32\], expected \[16, 16\]/);
  e = await rejected(load(rewrite(bytes, (ts) => [...ts, { name: 'blk.0.attn_q_norm.weight', shape: [16], data: new Float32Array(16), type: 'F32' }])));
  assert.match(e.message, /tensor blk\.0\.attn_q_norm\.weight is not part of a bert encoder/);
  // As a decoder, a bert file is refused with the way to read it.
  e = await rejected(readGgufCheckpoint(parseGguf(bytes, 'enc.gguf')));
  assert.match(e.message, /architecture bert is a BERT-family encoder/);
});

test.run();
