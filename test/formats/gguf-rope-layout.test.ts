// GGUF files per architecture, as llama.cpp's convert_hf_to_gguf.py writes them: the llama converter
// (LlamaModel) reorders each head's q/k rows (its `permute`) because llama.cpp runs llama with
// LLAMA_ROPE_TYPE_NORM (adjacent pairs); Qwen2Model and Qwen3Model store the rows as Hugging Face does,
// since llama.cpp runs qwen2 and qwen3 with LLAMA_ROPE_TYPE_NEOX (rotate-half), and Qwen3's per-head norms
// go in as blk.N.attn_q_norm / attn_k_norm. A small fixture builder here does what the converter does
// (names, row order, metadata keys), independently of our writer. Random models saved as Hugging Face
// safetensors and as such GGUF files give the same float64 logits through our loaders (1e-5 absolute);
// reading a file in the other rotary layout does not (> 1e-3), so the layout is what the test checks. Our
// writer (`checkpointToGguf`, used by merge and prune-vocab) writes exactly the converter's tensors, and a
// byte-level tokenizer.json as `gpt2` metadata that reads back to the same ids.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { hfConfigJson } from '../../src/cli/write-model.js';
import { type LlamaCheckpoint, type LlamaConfig, tensorF32 } from '../../src/formats/checkpoint.js';
import { gguf, ggufMeta, ggufTensorToF32, parseGguf, writeGguf, type GgufValue, type GgufWriteTensor } from '../../src/formats/gguf.js';
import { byteLevelTokenizerMetadata, checkpointToGguf, ggufRopeLayout, ggufTokenizerData } from '../../src/formats/gguf-llama.js';
import { loadCheckpointFile } from '../../src/formats/node-fs.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { syntheticCheckpoint } from '../../src/model/synthetic.js';
import { createTokenizer, tokenizerDataFromHfJson, TokenType } from '../../src/tokenizer/index.js';
import { logitsF64, maxGap } from '../reference/ours.js';
import { rejected, rng } from './helpers.js';

const B = 2, T = 7;
const base = { dim: 32, hiddenDim: 48, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 20, maxSeqLen: 64, normEps: 1e-6, ropeTheta: 50, ropeLayout: 'half' as const };
const MODELS: { arch: string; modelType: string; config: LlamaConfig }[] = [
  { arch: 'llama', modelType: 'llama', config: { ...base, tiedEmbeddings: false, qkvBias: false, architecture: 'llama' } },
  { arch: 'qwen2', modelType: 'qwen2', config: { ...base, tiedEmbeddings: true, qkvBias: true, architecture: 'qwen2' } },
  { arch: 'qwen3', modelType: 'qwen3', config: { ...base, headDim: 16, qkNorm: true, tiedEmbeddings: true, qkvBias: false, architecture: 'qwen3' } },
];
const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 7 + 3) % base.vocabSize);
const dir = mkdtempSync(join(tmpdir(), 'adaptkit-gguf-rope-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** A random model in Hugging Face layout; every weight (norms and biases too) random, so each row's place matters. */
function randomModel(config: LlamaConfig, seed: number): LlamaCheckpoint {
  const ckpt = syntheticCheckpoint(config, { seed, scale: 0.8 });
  const r = rng(seed + 100);
  for (const [k, t] of ckpt.tensors) {
    if (k.endsWith('norm.weight')) ckpt.tensors.set(k, { shape: t.shape, data: Float32Array.from(tensorF32(t), () => 0.5 + r()) });
    if (k.endsWith('.bias')) ckpt.tensors.set(k, { shape: t.shape, data: Float32Array.from(tensorF32(t), () => r() - 0.5) });
  }
  return ckpt;
}

/** The folder `save_pretrained` would write: model.safetensors and config.json. */
function writeHf(ckpt: LlamaCheckpoint, modelType: string, folder: string): string {
  const c = ckpt.config;
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'model.safetensors'), writeSafetensors([...ckpt.tensors].map(([k, t]) => [k, { shape: t.shape, data: tensorF32(t) }] as [string, { shape: number[]; data: Float32Array }])));
  writeFileSync(join(folder, 'config.json'), JSON.stringify({
    model_type: modelType, hidden_size: c.dim, intermediate_size: c.hiddenDim, num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads, num_key_value_heads: c.nKvHeads, vocab_size: c.vocabSize, rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta, tie_word_embeddings: c.tiedEmbeddings, max_position_embeddings: c.maxSeqLen,
    ...(modelType === 'llama' ? { attention_bias: c.qkvBias } : {}), ...(c.headDim !== undefined ? { head_dim: c.headDim } : {}),
  }));
  return folder;
}

/**
 * The converter's LlamaModel.permute: rows viewed as [heads, 2, headDim/2] and the last two axes swapped, so
 * row h·D + 2j + p of the result is row h·D + p·D/2 + j of the Hugging Face tensor.
 */
function converterPermute(data: Float32Array, heads: number, cols: number): Float32Array {
  const rows = data.length / cols, hd = rows / heads, out = new Float32Array(data.length);
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < hd / 2; j++) {
      for (let p = 0; p < 2; p++) out.set(data.subarray((h * hd + p * hd / 2 + j) * cols, (h * hd + p * hd / 2 + j + 1) * cols), (h * hd + 2 * j + p) * cols);
    }
  }
  return out;
}

const GGUF_NAMES: Record<string, string> = {
  'self_attn.q_proj': 'attn_q', 'self_attn.k_proj': 'attn_k', 'self_attn.v_proj': 'attn_v', 'self_attn.o_proj': 'attn_output',
  'self_attn.q_norm': 'attn_q_norm', 'self_attn.k_norm': 'attn_k_norm', input_layernorm: 'attn_norm', post_attention_layernorm: 'ffn_norm',
  'mlp.gate_proj': 'ffn_gate', 'mlp.up_proj': 'ffn_up', 'mlp.down_proj': 'ffn_down',
};

/** The GGUF file convert_hf_to_gguf.py makes of the checkpoint, for `arch` (llama, qwen2, qwen3). */
function converterGguf(ckpt: LlamaCheckpoint, arch: string): { bytes: Uint8Array; tensors: GgufWriteTensor[] } {
  const c = ckpt.config, hd = c.headDim ?? c.dim / c.nHeads;
  const tensors: GgufWriteTensor[] = [];
  for (const [name, t] of ckpt.tensors) {
    let data = tensorF32(t);
    const layer = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(name);
    let g: string;
    if (layer) {
      g = `blk.${layer[1]}.${GGUF_NAMES[layer[2]!]!}.${layer[3]}`;
      // LlamaModel.modify_tensors: q with n_head, k with n_head_kv; Qwen2Model/Qwen3Model leave rows alone.
      if (arch === 'llama' && /self_attn\.[qk]_proj$/.test(layer[2]!)) {
        data = converterPermute(data, layer[2] === 'self_attn.q_proj' ? c.nHeads : c.nKvHeads, t.shape.length === 2 ? t.shape[1]! : 1);
      }
    } else {
      g = { 'model.embed_tokens.weight': 'token_embd.weight', 'model.norm.weight': 'output_norm.weight', 'lm_head.weight': 'output.weight' }[name]!;
    }
    assert.ok(g, `no GGUF name for ${name}`);
    tensors.push({ name: g, shape: t.shape, data: Float32Array.from(data), type: 'F32' });
  }
  const meta: [string, GgufValue][] = [
    ['general.architecture', gguf.str(arch)],
    [`${arch}.block_count`, gguf.u32(c.nLayers)],
    [`${arch}.context_length`, gguf.u32(c.maxSeqLen)],
    [`${arch}.embedding_length`, gguf.u32(c.dim)],
    [`${arch}.feed_forward_length`, gguf.u32(c.hiddenDim)],
    [`${arch}.attention.head_count`, gguf.u32(c.nHeads)],
    [`${arch}.attention.head_count_kv`, gguf.u32(c.nKvHeads)],
    [`${arch}.rope.freq_base`, gguf.f32(c.ropeTheta)],
    [`${arch}.attention.layer_norm_rms_epsilon`, gguf.f32(c.normEps)],
    ...(c.headDim !== undefined ? [[`${arch}.attention.key_length`, gguf.u32(hd)], [`${arch}.attention.value_length`, gguf.u32(hd)]] as [string, GgufValue][] : []),
    ...(arch === 'llama' ? [[`${arch}.rope.dimension_count`, gguf.u32(hd)]] as [string, GgufValue][] : []),
  ];
  return { bytes: writeGguf({ metadata: meta, tensors, name: `${arch}.gguf` }), tensors };
}

MODELS.forEach(({ arch, modelType, config }, i) => {
  test(`${arch}: a GGUF file as llama.cpp's converter writes it gives the Hugging Face model's logits`, async () => {
    const model = randomModel(config, 11 + i);
    const hf = await loadCheckpointFile(writeHf(model, modelType, join(dir, `${arch}-hf`)));
    const { bytes } = converterGguf(model, arch);
    const path = join(dir, `${arch}.gguf`);
    writeFileSync(path, bytes);
    const fromGguf = await loadCheckpointFile(path);
    assert.is(fromGguf.config.architecture, arch);
    assert.is(fromGguf.config.ropeLayout, ggufRopeLayout(arch));
    assert.is(fromGguf.config.ropeLayout, arch === 'llama' ? 'pairs' : 'half');
    assert.is(fromGguf.config.qkNorm === true, arch === 'qwen3');
    assert.is(fromGguf.config.qkvBias, arch === 'qwen2');
    const want = await logitsF64(new AdaptedModel(hf), ids, B, T);
    const got = await logitsF64(new AdaptedModel(fromGguf), ids, B, T);
    const gap = maxGap(got, want);
    assert.ok(gap < 1e-5, `max |logit difference| ${gap}`);
    // The same rows read in the other rotary layout give other logits: the layout is not a no-op here.
    const other = { ...fromGguf, config: { ...fromGguf.config, ropeLayout: fromGguf.config.ropeLayout === 'pairs' ? 'half' as const : 'pairs' as const } };
    const wrong = maxGap(await logitsF64(new AdaptedModel(other), ids, B, T), want);
    assert.ok(wrong > 1e-3, `the other layout differs by only ${wrong}`);
  });

  test(`${arch}: our GGUF writer stores what the converter stores`, async () => {
    const model = randomModel(config, 11 + i);
    const hf = await loadCheckpointFile(writeHf(model, modelType, join(dir, `${arch}-hf2`)));
    const written = checkpointToGguf(hf);
    const ours = parseGguf(written, `${arch}-ours.gguf`);
    const { tensors } = converterGguf(model, arch);
    assert.is(ggufMeta(ours, 'general.architecture'), arch);
    assert.equal(ours.tensors.map((t) => t.name).sort(), tensors.map((t) => t.name).sort());
    for (const t of tensors) {
      const mine = ggufTensorToF32(ours, t.name);
      assert.equal(ours.tensorsByName.get(t.name)!.shape, t.shape, t.name);
      assert.ok(mine.every((v, k) => v === (t as { data: Float32Array }).data[k]), `${t.name} differs from the converter's`);
    }
    // Read back, the written file gives the same logits; merge/prune-vocab's config.json keeps the model type.
    writeFileSync(join(dir, `${arch}-ours.gguf`), written);
    const back = await loadCheckpointFile(join(dir, `${arch}-ours.gguf`));
    assert.ok(maxGap(await logitsF64(new AdaptedModel(back), ids, B, T), await logitsF64(new AdaptedModel(hf), ids, B, T)) < 1e-5);
    assert.is(hfConfigJson(hf).model_type, modelType);
  });
});

test('a Mistral checkpoint is written as llama, as the converter does (llama.cpp has no "mistral" architecture)', () => {
  const model = randomModel({ ...MODELS[0]!.config, architecture: 'mistral' }, 4);
  const file = parseGguf(checkpointToGguf(model), 'mistral.gguf');
  assert.is(ggufMeta(file, 'general.architecture'), 'llama');
  const { tensors } = converterGguf(model, 'llama');
  for (const t of tensors) assert.ok(ggufTensorToF32(file, t.name).every((v, k) => v === (t as { data: Float32Array }).data[k]), t.name);
});

test('a byte-level tokenizer.json goes into the GGUF as llama.cpp reads it (gpt2 model, split rule by name, rows padded)', async () => {
  const split = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  const pieces = ['a', 'b', 'c', '\u0120', 'ab', '\u0120a', '\u0120ab', '!', '1'];
  const json = {
    added_tokens: [{ id: 9, content: '<|endoftext|>', special: true }, { id: 10, content: '<|im_end|>', special: true }],
    normalizer: { type: 'NFC' },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: split }, behavior: 'Isolated', invert: false }, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false }] },
    decoder: { type: 'ByteLevel' },
    model: { type: 'BPE', vocab: Object.fromEntries(pieces.map((p, i) => [p, i])), merges: ['a b', '\u0120 a', '\u0120a b'] },
  };
  const model = randomModel(MODELS[1]!.config, 5);
  model.tokenizer = tokenizerDataFromHfJson(json, 'qwen/tokenizer.json', { eos_token: '<|im_end|>', chat_template: '{{ messages }}' });
  const file = parseGguf(checkpointToGguf(model), 'qwen2-tok.gguf');
  assert.is(ggufMeta(file, 'tokenizer.ggml.model'), 'gpt2');
  assert.is(ggufMeta(file, 'tokenizer.ggml.pre'), 'qwen2');
  const tokens = ggufMeta(file, 'tokenizer.ggml.tokens') as string[];
  assert.is(tokens.length, base.vocabSize, 'one token per embedding row');
  assert.is(tokens[19], '[PAD19]');
  assert.is((ggufMeta(file, 'tokenizer.ggml.token_type') as Int32Array)[10], TokenType.CONTROL);
  assert.is(ggufMeta(file, 'tokenizer.ggml.eos_token_id'), 10);
  assert.is(ggufMeta(file, 'tokenizer.chat_template'), '{{ messages }}');
  const text = 'ab a ba!1<|im_end|>abc';
  const back = createTokenizer(ggufTokenizerData(file)!), original = createTokenizer(model.tokenizer);
  assert.equal(back.encode(text, { bos: false }), original.encode(text, { bos: false }));
  assert.equal(original.encode(text, { bos: false }), [4, 5, 3, 1, 0, 7, 8, 10, 4, 2]);
  // A split rule llama.cpp does not have is left out rather than stored under a wrong name.
  const odd = { ...json, pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '\\s+' }, behavior: 'Isolated', invert: false }, { type: 'ByteLevel', use_regex: false }] } };
  assert.is(byteLevelTokenizerMetadata(tokenizerDataFromHfJson(odd, 'odd/tokenizer.json')), undefined);
});

test('a qwen3 file without its per-head norms, or a llama file with them, is refused by name', async () => {
  const write = async (bytes: Uint8Array, name: string) => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return (await rejected(loadCheckpointFile(path))).message;
  };
  const qwen3 = converterGguf(randomModel(MODELS[2]!.config, 3), 'qwen3');
  const meta = parseGguf(qwen3.bytes).metadata;
  const bare = writeGguf({ metadata: meta, tensors: qwen3.tensors.filter((t) => !/attn_[qk]_norm/.test(t.name)) });
  assert.match(await write(bare, 'bare.gguf'), /tensor blk\.0\.attn_q_norm\.weight is missing \(architecture qwen3/);
  const asLlama = writeGguf({ metadata: [...meta].map(([k, v]) => [k.replace(/^qwen3\./, 'llama.'), k === 'general.architecture' ? gguf.str('llama') : v] as [string, GgufValue]), tensors: qwen3.tensors });
  assert.match(await write(asLlama, 'as-llama.gguf'), /attn_q_norm\.weight is not used by architecture llama/);
});

test.run();
