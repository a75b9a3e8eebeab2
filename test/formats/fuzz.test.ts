// Seeded, bounded fuzzing of every loader: truncations at random points, byte flips, huge sizes and counts
// written over the file's numbers, and wrong JSON types. Each case must either load or fail cleanly, with
// an Error whose message names the file, never a TypeError/RangeError/SyntaxError, a hang past the case's
// time cap or a large allocation.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { loadPeft, savePeft } from '../../src/adapters/peft.js';
import { type LlamaCheckpoint, loadCheckpoint, validateCheckpoint } from '../../src/formats/checkpoint.js';
import { parseGguf } from '../../src/formats/gguf.js';
import { readGgufCheckpoint } from '../../src/formats/gguf-llama.js';
import { hfLlamaConfig } from '../../src/formats/hf.js';
import { parseLlama2cTokenizer, readLlama2c } from '../../src/formats/llama2c.js';
import { parseSafetensors, safetensorsTensorToF32, writeSafetensors } from '../../src/formats/safetensors.js';
import { createTokenizer, sentencePieceToHfJson } from '../../src/tokenizer/index.js';
import { decodeTrainingState, encodeTrainingState } from '../../src/train/training-state.js';
import { GGUF_PATH, L2C_PATH, L2C_TOK_PATH, readAsset, rng } from './helpers.js';

/** Per case: wall-clock cap (a hang guard, not a speed target) and growth of heap + buffers allowed. */
const CASE_CAP_MS = 2000;
const MEMORY_CAP = 512 * 2 ** 20;
const CASES = 300;

type Load = (bytes: Uint8Array) => unknown;

const memory = (): number => { const m = process.memoryUsage(); return m.heapUsed + m.arrayBuffers; };

/** Run one case; returns a description of what went wrong, or undefined when it loaded or failed cleanly. */
async function runCase(load: Load, bytes: Uint8Array, file: string): Promise<string | undefined> {
  const before = memory(), t0 = performance.now();
  let problem: string | undefined;
  try {
    await load(bytes);
  } catch (e) {
    if (!(e instanceof Error)) problem = `threw a non-Error ${String(e)}`;
    else if (e instanceof TypeError || e instanceof RangeError || e instanceof SyntaxError || e instanceof ReferenceError) problem = `raw ${e.name}: ${e.message}`;
    else if (!e.message.includes(file)) problem = `message does not name ${file}: ${e.message}`;
  }
  const ms = performance.now() - t0, grew = memory() - before;
  if (ms > CASE_CAP_MS) problem ??= `took ${ms.toFixed(0)} ms`;
  if (grew > MEMORY_CAP) problem ??= `grew memory by ${(grew / 2 ** 20).toFixed(0)} MiB`;
  return problem;
}

/** A damaged copy of `good`: truncated, bytes flipped, or a huge number written over 4 or 8 bytes. */
function mutateBytes(good: Uint8Array, r: () => number, headerBytes: number): Uint8Array {
  // Most damage lands in the header, where the sizes and counts are.
  const at = (): number => Math.floor(r() < 0.8 ? r() * Math.min(headerBytes, good.length) : r() * good.length);
  const kind = Math.floor(r() * 3);
  if (kind === 0) return good.slice(0, at());
  const out = good.slice();
  if (kind === 1) {
    for (let k = 1 + Math.floor(r() * 8); k > 0; k--) out[at()] ^= 1 << Math.floor(r() * 8);
    return out;
  }
  const huge = [0xffffffff, 0x7fffffff, 0x80000000, 1 << 20, 1e8, 0][Math.floor(r() * 6)]!;
  const p = Math.min(at(), out.length - 8);
  if (p < 0) return out;
  const dv = new DataView(out.buffer);
  dv.setUint32(p, huge >>> 0, true);
  if (r() < 0.5) dv.setUint32(p + 4, r() < 0.5 ? 0 : 0xffffffff, true);
  return out;
}

const WRONG: unknown[] = [null, -1, 0, 1e9, 2 ** 32, 1.5, Infinity, 'x', '', [], [null], {}, { a: null }, true, '(?<', '[', 1e300];

/** A copy of a JSON value with one node replaced by a wrong-typed value (or a top level that is one). */
function mutateJson(good: unknown, r: () => number): unknown {
  const copy = structuredClone(good);
  const nodes: [Record<string, unknown> | unknown[], string | number][] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach((x, i) => { if (i < 64 || r() < 0.01) { nodes.push([v, i]); walk(x); } });
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) { nodes.push([v as Record<string, unknown>, k]); walk(x); }
  };
  walk(copy);
  if (!nodes.length || r() < 0.03) return WRONG[Math.floor(r() * WRONG.length)];
  for (let k = 1 + Math.floor(r() * 2); k > 0; k--) {
    const [parent, key] = nodes[Math.floor(r() * nodes.length)]!;
    (parent as Record<string | number, unknown>)[key] = WRONG[Math.floor(r() * WRONG.length)];
  }
  return copy;
}

/** Text damage for JSON files: truncation or one character changed. */
function mutateText(good: string, r: () => number): string {
  const at = Math.floor(r() * good.length);
  return r() < 0.5 ? good.slice(0, at) : good.slice(0, at) + '"}]{,:0'[Math.floor(r() * 7)] + good.slice(at + 1);
}

async function fuzz(label: string, file: string, load: Load, cases: (r: () => number) => Uint8Array, seed: number): Promise<void> {
  const r = rng(seed), problems: string[] = [];
  for (let c = 0; c < CASES; c++) {
    const p = await runCase(load, cases(r), file);
    if (p) problems.push(`case ${c}: ${p}`);
  }
  assert.equal(problems, [], `${label}: ${problems.length} of ${CASES} cases failed uncleanly:\n${problems.slice(0, 8).join('\n')}`);
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
const ggufBytes = readAsset(GGUF_PATH);
const ckpt: LlamaCheckpoint = await loadCheckpoint(GGUF_PATH);

test('GGUF: header, metadata, tensor infos and the checkpoint built from them', async () => {
  await fuzz('GGUF', 'x.gguf', async (b) => {
    const c = await readGgufCheckpoint(parseGguf(b, 'x.gguf'));
    validateCheckpoint(c);
  }, (r) => mutateBytes(ggufBytes, r, 8192), 1);
});

test('safetensors: header and tensor data', async () => {
  const good = writeSafetensors({ a: { shape: [4, 8], data: new Float32Array(32).fill(1) }, b: { shape: [3], data: Float32Array.of(1, 2, 3) } }, { metadata: { format: 'pt' } });
  const json = JSON.parse(dec(good.subarray(8, 8 + Number(new DataView(good.buffer).getBigUint64(0, true)))));
  await fuzz('safetensors', 'x.safetensors', (b) => {
    const f = parseSafetensors(b, 'x.safetensors');
    for (const t of f.tensors) safetensorsTensorToF32(f, t);
  }, (r) => {
    if (r() < 0.7) return mutateBytes(good, r, 8 + 200);
    // Wrong types in the header, keeping its length honest.
    const text = enc(JSON.stringify(mutateJson(json, r)));
    const out = new Uint8Array(8 + text.length + 44);
    new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
    out.set(text, 8);
    return out;
  }, 2);
});

test('config.json', async () => {
  const good = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 64, intermediate_size: 172, num_hidden_layers: 5,
    num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 512, max_position_embeddings: 512, rms_norm_eps: 1e-5, rope_theta: 10000,
    tie_word_embeddings: true, hidden_act: 'silu',
  };
  await fuzz('config.json', 'config.json', (b) => {
    let v: unknown;
    try { v = JSON.parse(dec(b)); } catch { return; /* the loader reports invalid JSON itself (hf.ts parseJson) */ }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return;
    hfLlamaConfig(v as Record<string, unknown>, 'config.json');
  }, (r) => enc(JSON.stringify(mutateJson(good, r))), 3);
});

test('tokenizer.json', async () => {
  const good = sentencePieceToHfJson(ckpt.tokenizer!);
  const text = JSON.stringify(good);
  await fuzz('tokenizer.json', 'tokenizer.json', async (b) => {
    const { tokenizerDataFromHfJson } = await import('../../src/tokenizer/hf-json.js');
    let v: unknown;
    try { v = JSON.parse(dec(b)); } catch { return; }
    const tok = createTokenizer(tokenizerDataFromHfJson(v as Record<string, unknown>, 'tokenizer.json'));
    tok.decode(tok.encode('Once upon a time, there was a cat.', { bos: tok.bosId !== undefined }));
  }, (r) => (r() < 0.8 ? enc(JSON.stringify(mutateJson(good, r))) : enc(mutateText(text, r))), 4);
});

test('llama2c model header and tokenizer.bin', async () => {
  const model = readAsset(L2C_PATH), tok = readAsset(L2C_TOK_PATH);
  await fuzz('llama2c model', 'x.bin', (b) => validateCheckpoint(readLlama2c(b, 'x.bin')), (r) => mutateBytes(model, r, 64), 5);
  await fuzz('tokenizer.bin', 'tok.bin', (b) => parseLlama2cTokenizer(b, 'tok.bin', { vocabSize: 512 }), (r) => mutateBytes(tok, r, tok.length), 6);
});

test('PEFT adapter_config.json and adapter_model.safetensors', async () => {
  const model = new AdaptedModel(ckpt);
  model.addAdapter('default', 'lora', { targetModules: ['q_proj', 'v_proj'], r: 4 }, { seed: 1 });
  const files = savePeft(model, 'default');
  const config = JSON.parse(files.config);
  await fuzz('PEFT', 'adapter', (b) => {
    const m = new AdaptedModel(ckpt);
    const broken = b[0] === 0x7b ? { config: dec(b), weights: files.weights } : { config: files.config, weights: b };
    loadPeft(m, 'default', broken, 'adapter');
  }, (r) => (r() < 0.5 ? enc(JSON.stringify(mutateJson(config, r))) : mutateBytes(files.weights, r, 400)), 7);
});

test('training_state.safetensors', async () => {
  const model = new AdaptedModel(ckpt);
  model.addAdapter('default', 'lora', { targetModules: ['q_proj'], r: 2 }, { seed: 1 });
  const good = encodeTrainingState(model, 'default', 1, { step: 3, optimizer: new Map(), controller: new Map() });
  await fuzz('training state', 'training_state.safetensors', (b) => decodeTrainingState(new AdaptedModel(ckpt), 'default', b), (r) => mutateBytes(good, r, 600), 8);
});

test.run();
