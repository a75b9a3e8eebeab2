// RoPE scaling (config.json rope_scaling: linear, dynamic NTK, YaRN, Llama 3) against an independent float64
// PyTorch forward (test/reference/rope_scaling_ref.py, written from Hugging Face's formulas). For each type a
// small random-weight Llama in Hugging Face layout is loaded through the Hugging Face loader and its logits
// computed on js (float64), wasm and webgpu (float32). Tolerances, as the largest |difference| over the
// largest |reference logit|: 1e-9 on float64 js (only summation order differs), 2e-5 on the float32
// backends (f32 rounding of a 1-layer model; an unscaled rope differs by > 1e-2). Dynamic NTK is sized by the
// sequence when training or evaluating and by the KV cache length when decoding; both are compared. The scaled frequency
// tables themselves agree with the reference's to 1e-12 relative. The op's gradient (the inverse rotation
// with the same table and factor) is checked against finite differences, and its forward and inverse on
// wasm and webgpu against js, 1e-5 relative.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Backend } from '../../src/backends/backend.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { type LlamaCheckpoint, loadCheckpoint } from '../../src/formats/checkpoint.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { type GgufValue, gguf, parseGguf } from '../../src/formats/gguf.js';
import { checkpointToGguf, readGgufCheckpoint } from '../../src/formats/gguf-llama.js';
import * as F from '../../src/graph/api.js';
import { Graph } from '../../src/graph/graph.js';
import { buildLlama, headDim } from '../../src/model/llama.js';
import { ropeTable } from '../../src/model/rope-scaling.js';
import { uploadWeights } from '../../src/model/runtime.js';
import { Session } from '../../src/scheduler/session.js';
import { otherBackends } from '../backends/backends.js';
import { gradCheck, maxRelErr, randn, rejection, runOnce, buildGraph } from '../helpers.js';
import { readF64, runReference } from '../reference/python.js';

const F64_TOL = 1e-9, F32_TOL = 2e-5, FREQ_TOL = 1e-12;
const B = 2, T = 24, DIM = 32, HEADS = 2, KV = 1, HIDDEN = 48, VOCAB = 40;

interface Case { name: string; maxPos: number; scaling: Record<string, unknown> }
const CASES: Case[] = [
  // The legacy key `type`.
  { name: 'linear', maxPos: 16, scaling: { type: 'linear', factor: 2 } },
  // T = 24 > 16: the base grows.
  { name: 'dynamic', maxPos: 16, scaling: { rope_type: 'dynamic', factor: 3 } },
  // Ramp between pairs 0 and 3 of 8; attention factor 0.1·ln 4 + 1.
  { name: 'yarn', maxPos: 256, scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 64 } },
  { name: 'yarn-explicit', maxPos: 256, scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 64, beta_fast: 16, beta_slow: 2, attention_factor: 1.3 } },
  // Wavelengths 6.3 (kept), 20 and 63 (smoothed), the rest (÷ 8).
  { name: 'llama3', maxPos: 512, scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } },
];

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-rope-scaling-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function writeModel(folder: string, maxPos: number, scaling: Record<string, unknown> | undefined): string {
  mkdirSync(folder, { recursive: true });
  const shapes: [string, number[]][] = [
    ['model.embed_tokens.weight', [VOCAB, DIM]], ['model.norm.weight', [DIM]], ['lm_head.weight', [VOCAB, DIM]],
    ['model.layers.0.input_layernorm.weight', [DIM]], ['model.layers.0.post_attention_layernorm.weight', [DIM]],
    ['model.layers.0.self_attn.q_proj.weight', [DIM, DIM]], ['model.layers.0.self_attn.k_proj.weight', [KV * DIM / HEADS, DIM]],
    ['model.layers.0.self_attn.v_proj.weight', [KV * DIM / HEADS, DIM]], ['model.layers.0.self_attn.o_proj.weight', [DIM, DIM]],
    ['model.layers.0.mlp.gate_proj.weight', [HIDDEN, DIM]], ['model.layers.0.mlp.up_proj.weight', [HIDDEN, DIM]],
    ['model.layers.0.mlp.down_proj.weight', [DIM, HIDDEN]],
  ];
  const tensors = shapes.map(([name, shape], i) => {
    const n = shape.reduce((a, b) => a * b, 1);
    // Norm weights near 1; q/k large enough that attention depends strongly on the rotation.
    const scale = shape.length === 1 ? 0.1 : name.includes('q_proj') || name.includes('k_proj') ? 0.8 : 0.3;
    const data = Float32Array.from(randn(n, 11 + i, scale), (v) => (shape.length === 1 ? 1 + v : v));
    return [name, { shape, data }] as [string, { shape: number[]; data: Float32Array }];
  });
  writeFileSync(join(folder, 'model.safetensors'), writeSafetensors(tensors));
  writeFileSync(join(folder, 'config.json'), JSON.stringify({
    model_type: 'llama', architectures: ['LlamaForCausalLM'], hidden_size: DIM, intermediate_size: HIDDEN, num_hidden_layers: 1,
    num_attention_heads: HEADS, num_key_value_heads: KV, vocab_size: VOCAB, rms_norm_eps: 1e-5, rope_theta: 10000,
    max_position_embeddings: maxPos, tie_word_embeddings: false, hidden_act: 'silu', ...(scaling ? { rope_scaling: scaling } : {}),
  }));
  return folder;
}

const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 7 + 3) % VOCAB);
const rows = Array.from({ length: B }, (_, b) => Array.from(ids.subarray(b * T, b * T + T)));

async function logits(ckpt: LlamaCheckpoint, backend: Backend): Promise<Float64Array> {
  const g = new Graph();
  const net = buildLlama(g, ckpt.config, { batch: B, seq: T });
  g.markOutput(net.logits);
  const s = await Session.create(g, backend);
  uploadWeights(s, net.weights, ckpt);
  s.set(net.ids, ids);
  await s.run();
  const out = Float64Array.from(await s.get(net.logits));
  s.dispose();
  return out;
}

/** Logits of the decoding graph (KV cache of `cacheLen`) run on the T tokens at positions 0…T−1 in one step. */
async function decodingLogits(ckpt: LlamaCheckpoint, backend: Backend, cacheLen: number): Promise<Float64Array> {
  const g = new Graph();
  const net = buildLlama(g, ckpt.config, { batch: B, seq: T, cacheLen });
  g.markOutput(net.logits);
  const s = await Session.create(g, backend);
  uploadWeights(s, net.weights, ckpt);
  s.set(net.ids, ids);
  s.set(net.positions!, Int32Array.from({ length: T }, (_, t) => t));
  s.set(net.pos!, Int32Array.of(0));
  s.set(net.kvLen!, Int32Array.of(T));
  await s.run();
  const out = Float64Array.from(await s.get(net.logits));
  s.dispose();
  return out;
}

// Decoding sizes dynamic NTK by the KV cache length: the reference is run with that length.
const CACHE = 40;
let prepared: Promise<{ ckpts: LlamaCheckpoint[]; ref: Float64Array[]; refFreqs: { inv_freq: number[]; attention_factor: number }[]; refCache: Float64Array }> | undefined;
function prepare() {
  prepared ??= (async () => {
    const folders = CASES.map((c) => writeModel(join(dir, c.name), c.maxPos, c.scaling));
    const dynamic = folders[CASES.findIndex((c) => c.name === 'dynamic')]!;
    const out = runReference<{ runs: { inv_freq: number[]; attention_factor: number }[] }>('rope_scaling_ref.py', {
      runs: [
        ...folders.map((m, i) => ({ model: m, ids: rows, logits: join(dir, `${CASES[i]!.name}.f64`) })),
        { model: dynamic, ids: rows, logits: join(dir, 'dynamic-cache.f64'), rope_length: CACHE },
      ],
    }, dir);
    const ckpts = await Promise.all(folders.map((f) => loadCheckpoint(f)));
    return { ckpts, ref: CASES.map((c) => readF64(join(dir, `${c.name}.f64`))), refFreqs: out.runs, refCache: readF64(join(dir, 'dynamic-cache.f64')) };
  })();
  return prepared;
}

CASES.forEach((c, i) => {
  test(`${c.name}: frequency table and factor match the reference`, async () => {
    const { ckpts, refFreqs } = await prepare();
    assert.equal(ckpts[i]!.notes ?? [], [], 'no load note');
    const table = ropeTable(ckpts[i]!.config, headDim(ckpts[i]!.config), T)!;
    assert.ok(table, 'a table');
    assert.ok(maxRelErr(table.freqs, refFreqs[i]!.inv_freq) < FREQ_TOL, `freqs ${table.freqs} vs ${refFreqs[i]!.inv_freq}`);
    assert.ok(Math.abs(table.scale - refFreqs[i]!.attention_factor) < 1e-15);
  });

  test(`${c.name}: logits on js (f64), wasm and webgpu match the float64 reference`, async () => {
    const { ckpts, ref } = await prepare();
    const ck = ckpts[i]!;
    const ours = await logits(ck, createJsBackend({ precision: 'f64' }));
    const e = maxRelErr(ours, ref[i]!);
    assert.ok(e < F64_TOL, `js f64: ${e}`);
    // The test can fail: without the scaling the logits are far off.
    const plain = await logits({ ...ck, config: { ...ck.config, ropeScaling: undefined } }, createJsBackend({ precision: 'f64' }));
    assert.ok(maxRelErr(plain, ref[i]!) > 100 * F32_TOL, `unscaled logits too close: ${maxRelErr(plain, ref[i]!)}`);
    for (const { name, backend } of await otherBackends()) {
      const got = await logits(ck, backend);
      const err = maxRelErr(got, ref[i]!);
      assert.ok(err < F32_TOL, `${name}: ${err}`);
    }
  });
});

test('dynamic NTK: unscaled up to original_max_position_embeddings; training uses the sequence length, decoding the KV cache length', async () => {
  const { ckpts } = await prepare();
  const c = ckpts[CASES.findIndex((x) => x.name === 'dynamic')]!.config, hd = headDim(c);
  assert.is(ropeTable(c, hd, 16), undefined);
  const at = (n: number) => ropeTable(c, hd, n)!.freqs;
  assert.ok(at(17)[1]! > at(40)[1]!, 'the base grows with the length');
  const ropeFreqs = (g: Graph) => g.nodes.filter((n) => n.op === 'rope').map((n) => n.attrs.freqs as number[] | undefined);
  const train = new Graph();
  buildLlama(train, c, { batch: 1, seq: 20 });
  for (const f of ropeFreqs(train)) assert.equal(f, at(20));
  const short = new Graph();
  buildLlama(short, c, { batch: 1, seq: 12 });
  for (const f of ropeFreqs(short)) assert.is(f, undefined);
  const dec = new Graph();
  buildLlama(dec, c, { batch: 1, seq: 1, cacheLen: 40 });
  const fs = ropeFreqs(dec);
  assert.ok(fs.length > 0);
  for (const f of fs) assert.equal(f, at(40));
});

test('dynamic NTK when decoding: logits of the KV-cached graph (cache 40) match the reference sized by 40', async () => {
  const { ckpts, ref, refCache } = await prepare();
  const i = CASES.findIndex((x) => x.name === 'dynamic');
  const ours = await decodingLogits(ckpts[i]!, createJsBackend({ precision: 'f64' }), CACHE);
  assert.ok(maxRelErr(ours, refCache) < F64_TOL, `decoding: ${maxRelErr(ours, refCache)}`);
  // Sized by 40, not by the 24 tokens: far from the training graph's logits.
  assert.ok(maxRelErr(ours, ref[i]!) > 100 * F32_TOL, `cache-sized and sequence-sized logits too close: ${maxRelErr(ours, ref[i]!)}`);
  for (const { name, backend } of await otherBackends()) {
    const err = maxRelErr(await decodingLogits(ckpts[i]!, backend, CACHE), refCache);
    assert.ok(err < F32_TOL, `${name}: ${err}`);
  }
});

test('config errors: unknown type, missing or non-positive factor, refused by name at load', async () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ rope_type: 'longrope', factor: 2 }, /rope_scaling "longrope" needs short_factor/],
    [{ type: 'su', factor: 2, short_factor: [1], long_factor: [0] }, /rope_scaling long_factor must hold positive numbers/],
    [{ rope_type: 'su2', factor: 2 }, /"su2" is not supported/],
    [{ rope_type: 'linear' }, /rope_scaling "linear" needs factor/],
    [{ rope_type: 'yarn', factor: 0 }, /factor is 0, expected a positive number/],
    [{ rope_type: 'dynamic', factor: -2 }, /factor is -2, expected a positive number/],
    [{ rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4 }, /needs original_max_position_embeddings/],
    [{ rope_type: 'yarn', factor: 4, mscale: 0.7 }, /yarn with mscale is not supported/],
  ];
  for (const [s, re] of bad) {
    const e = await rejection(loadCheckpoint(writeModel(join(dir, `bad-${bad.findIndex((b) => b[0] === s)}`), 64, s)));
    assert.match(e.message, re);
  }
});

// GGUF: llama.cpp's keys and Llama 3.1's rope_freqs.weight, written by our exporter from the Hugging Face models
// above and read back (adjacent-pair layout): the same reference logits, on float64 js. rope_freqs.weight is
// float32, so that case is held to 1e-6 (f32 rounding of the divisors moves the angles by ~1e-6 rad).
test('GGUF: rope.scaling.* keys and rope_freqs.weight round-trip and match the reference', async () => {
  const { ckpts, ref } = await prepare();
  const at = (name: string) => CASES.findIndex((c) => c.name === name);
  for (const [name, tol] of [['linear', F64_TOL], ['yarn', F64_TOL], ['yarn-explicit', 1e-6], ['llama3', 1e-6]] as const) {
    const i = at(name), ck = ckpts[i]!;
    const back = await readGgufCheckpoint(parseGguf(checkpointToGguf(ck), `${name}.gguf`));
    if (name === 'llama3') {
      assert.is(back.config.ropeScaling, undefined);
      assert.is(back.config.ropeFreqFactors?.length, headDim(ck.config) / 2);
    } else {
      assert.is(back.config.ropeScaling?.rope_type, name.startsWith('yarn') ? 'yarn' : 'linear');
    }
    const e = maxRelErr(await logits(back, createJsBackend({ precision: 'f64' })), ref[i]!);
    assert.ok(e < tol, `${name}: ${e}`);
  }
  // Hand-written keys: llama.cpp's attn_factor multiplies YaRN's 0.1·ln(factor) + 1; unknown types are refused.
  const base = ckpts[at('linear')]!;
  const plain = { ...base, config: { ...base.config, ropeScaling: undefined } };
  const withMeta = (metadata: Record<string, GgufValue>) => readGgufCheckpoint(parseGguf(checkpointToGguf(plain, { metadata }), 'm.gguf'));
  const y = await withMeta({
    'llama.rope.scaling.type': gguf.str('yarn'), 'llama.rope.scaling.factor': gguf.f32(4),
    'llama.rope.scaling.original_context_length': gguf.u32(64), 'llama.rope.scaling.attn_factor': gguf.f32(0.5),
  });
  const t = ropeTable(y.config, headDim(y.config), T)!;
  assert.ok(Math.abs(t.scale - 0.5 * (0.1 * Math.log(4) + 1)) < 1e-7, String(t.scale));
  assert.equal(y.config.ropeScaling?.original_max_position_embeddings, 64);
  const old = await withMeta({ 'llama.rope.scale_linear': gguf.f32(2) });
  assert.equal(old.config.ropeScaling, { rope_type: 'linear', factor: 2 });
  assert.match((await rejection(withMeta({ 'llama.rope.scaling.type': gguf.str('longrope'), 'llama.rope.scaling.factor': gguf.f32(2) }))).message, /rope scaling "longrope" is not supported/);
  assert.match((await rejection(withMeta({ 'llama.rope.scaling.type': gguf.str('linear') }))).message, /rope\.scaling\.factor is missing/);
  assert.match((await rejection(withMeta({ 'llama.rope.scaling.type': gguf.str('linear'), 'llama.rope.scaling.factor': gguf.f32(-1) }))).message, /factor is -1, expected a positive number/);
  // Dynamic NTK has no GGUF form: the export says so.
  const dyn = ckpts[at('dynamic')]!;
  assert.throws(() => checkpointToGguf(dyn), /rope_scaling "dynamic" has no GGUF form/);
});

const ROPE_LEAVES = (positions: boolean) => [
  { name: 'x', shape: [2, 5, 3, 8] },
  ...(positions ? [{ name: 'p', shape: [5], dtype: 'i32' as const, data: [3, 0, 17, 1000, -4] }] : []),
];
const FREQS = [1.3, 0.5, 0.07, 0.002];

test('rope with a frequency table: gradient against finite differences (float64 js)', async () => {
  for (const layout of ['half', 'pairs'] as const) {
    for (const positions of [false, true]) {
      const err = await gradCheck(ROPE_LEAVES(positions), (ts) => F.rope(ts[0]!, { theta: 10000, layout, offset: 2, freqs: FREQS, scale: 1.2 }, ts[1]));
      assert.ok(err < 1e-7, `${layout}${positions ? ' with positions' : ''}: ${err}`);
    }
  }
});

test('rope with a frequency table, forward and inverse: wasm and webgpu against js', async () => {
  for (const layout of ['half', 'pairs'] as const) {
    for (const positions of [false, true]) {
      for (const inverse of [false, true]) {
        const { g, ts, out, data } = buildGraph(ROPE_LEAVES(positions), (t) => t[0]!.graph.apply1('rope', t.length > 1 ? [t[0]!, t[1]!] : [t[0]!], {
          theta: 10000, layout, offset: 2, inverse, freqs: FREQS, scale: 1.2,
        }));
        const [want] = await runOnce(g, createJsBackend({ precision: 'f64' }), ts, data, [out]);
        for (const { name, backend } of await otherBackends()) {
          const [got] = await runOnce(g, backend, ts, data, [out]);
          const e = maxRelErr(got!, want!);
          assert.ok(e < 1e-5, `${name} ${layout} positions ${positions} inverse ${inverse}: ${e}`);
        }
      }
    }
  }
});

test.run();
