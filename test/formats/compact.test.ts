import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type LlamaCheckpoint, isCompactTensor, loadCheckpoint, memorySource, permuteQKPairsToHalf, tensorF32, withBaseDType, withRopeLayout,
} from '../../src/formats/checkpoint.js';
import { checkpointToGguf, ggufStoredTensor, ggufToHfName, hfToGgufName, readGgufCheckpoint } from '../../src/formats/gguf-llama.js';
import { bytesSource } from '../../src/formats/source.js';
import { readStoredTensor, targetStorage } from '../../src/formats/storage.js';
import { decodeGgmlData, parseGguf, writeGguf, type GgufTensorInfo, type GgufWriteTensor } from '../../src/formats/gguf.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { readHfCheckpoint } from '../../src/formats/hf.js';
import { ggmlToCompact, quantize } from '../../src/quant/index.js';
import { GGUF_PATH, QUANT_LAYOUT, randomBlocks, readAsset } from './helpers.js';

const real = readAsset(GGUF_PATH);
const DOWN = 'model.layers.0.mlp.down_proj.weight';
const Q = 'model.layers.1.self_attn.q_proj.weight';
const NORM = 'model.layers.0.input_layernorm.weight';

const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

function storage(ck: LlamaCheckpoint): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of ck.tensors.values()) out[t.dtype ?? 'f32'] = (out[t.dtype ?? 'f32'] ?? 0) + 1;
  return out;
}

test("GGUF Q8_0/Q4_0/F16 weights load compact, bit for bit ('auto'); norms stay f32", async () => {
  const f32 = await loadCheckpoint(real);
  for (const type of ['Q8_0', 'Q4_0', 'F16'] as const) {
    const bytes = checkpointToGguf(f32, { type });
    const file = parseGguf(bytes, `${type}.gguf`);
    const ck = await readGgufCheckpoint(file);
    const dtype = type.toLowerCase() as 'q8_0' | 'q4_0' | 'f16';
    for (const [name, t] of ck.tensors) {
      const info = file.tensorsByName.get(hfToGgufName(name)!)!;
      if (t.shape.length === 1) {
        assert.is(t.dtype, undefined, name);
        continue;
      }
      // down_proj's rows of 172 are not whole blocks: the writer stored it as F16, and it loads as f16.
      const want = name.endsWith('down_proj.weight') ? 'f16' : dtype;
      assert.is(t.dtype, want, name);
      assert.ok(isCompactTensor(t) && sameBytes(t.bytes, ggmlToCompact(want, bytes.subarray(info.offset, info.offset + info.byteLength), info.nElements)), name);
      // Decoding equals the GGUF reader's own dequantiser exactly.
      assert.equal(Array.from(tensorF32(t)), Array.from(decodeGgmlData(bytes, info.offset, info.nElements, info.typeName)), name);
    }
    assert.is(ck.notes, undefined);
  }
});

test('baseDtype converts 2-D weights on load (quantize of the f32 values); q on rows of 172 gives f16 with a note', async () => {
  const f32 = await loadCheckpoint(real);
  for (const dtype of ['q8_0', 'q4_0', 'f16', 'bf16'] as const) {
    const ck = await loadCheckpoint(real, { baseDtype: dtype });
    for (const [name, t] of ck.tensors) {
      const orig = f32.tensors.get(name)!;
      if (t.shape.length === 1) {
        assert.ok(!isCompactTensor(t) && t.data.join() === tensorF32(orig).join(), name);
        continue;
      }
      const want = (dtype === 'q8_0' || dtype === 'q4_0') && t.shape[1] === 172 ? 'f16' : dtype;
      assert.ok(isCompactTensor(t) && t.dtype === want, `${name} is ${t.dtype}`);
      assert.ok(sameBytes(t.bytes, quantize(want, tensorF32(orig))), name);
    }
    if (dtype === 'q8_0' || dtype === 'q4_0') {
      assert.equal(ck.notes, [`rows of 172 values are not whole 32-value blocks, so these weights are f16 instead of ${dtype}: 5 tensors (blk.0.ffn_down.weight, blk.1.ffn_down.weight, blk.2.ffn_down.weight, …)`]);
    } else assert.is(ck.notes, undefined);
  }
  // 'f32' decodes a compact file; withBaseDType does the same to a loaded checkpoint.
  const q8 = await loadCheckpoint(checkpointToGguf(f32, { type: 'Q8_0' }));
  const back = await loadCheckpoint(checkpointToGguf(f32, { type: 'Q8_0' }), { baseDtype: 'f32' });
  assert.equal(storage(back), { f32: back.tensors.size });
  for (const [name, t] of q8.tensors) assert.equal(Array.from(tensorF32(back.tensors.get(name)!)), Array.from(tensorF32(t)), name);
  const conv = withBaseDType(f32, 'q4_0');
  assert.ok(sameBytes((conv.tensors.get(Q) as { bytes: Uint8Array }).bytes, quantize('q4_0', tensorF32(f32.tensors.get(Q)!))));
  assert.is(conv.tensors.get(NORM), f32.tensors.get(NORM));
});

test('loadCheckpoint rejects an unknown baseDtype before reading, naming the option', async () => {
  const e = await loadCheckpoint(real, { baseDtype: 'q5' as never }).catch((x: Error) => x);
  assert.match((e as Error).message, /baseDtype must be one of auto, f32, f16, bf16, q8_0, q4_0, q4_1 \(got "q5"\)/);
});

test("GGUF Q4_1 loads as q4_1 bit for bit and Q5_0 as q8_0 with every value kept; other block types (Q5_1) are requantised to q8_0 with a note ('auto')", async () => {
  const f32 = await loadCheckpoint(real);
  const file = parseGguf(real);
  const raws = new Map<string, [string, Uint8Array]>();
  const typeOf = (name: string) => (name.includes('attn') ? 'Q5_0' : name.includes('ffn_up') ? 'Q5_1' : 'Q4_1');
  const tensors: GgufWriteTensor[] = file.tensors.map((info) => {
    const data = decodeGgmlData(real, info.offset, info.nElements, info.typeName);
    if (info.shape.length !== 2 || info.shape[1]! % 32 !== 0) return { name: info.name, shape: info.shape, data };
    const type = typeOf(info.name);
    const raw = randomBlocks(type, info.nElements / 32);
    raws.set(info.name, [type, raw]);
    return { name: info.name, shape: info.shape, type, raw };
  });
  const bytes = writeGguf({ metadata: file.metadata, tensors });
  const ck = await loadCheckpoint(bytes, { name: 'mixed.gguf' });
  for (const [gname, [type, raw]] of raws) {
    // randomBlocks is seeded by the type, so output.weight repeats token_embd.weight byte for byte: tied.
    if (gname === 'output.weight') continue;
    const t = ck.tensors.get(ggufToHfName(gname)!)!;
    const n = (raw.length / QUANT_LAYOUT[type]![0]) * 32;
    assert.ok(isCompactTensor(t), gname);
    const got = tensorF32(t), want = decodeGgmlData(raw, 0, n, type);
    if (type === 'Q4_1') assert.ok(t.dtype === 'q4_1' && sameBytes(t.bytes, ggmlToCompact('q4_1', raw, n)), gname);
    else if (type === 'Q5_0') {
      assert.is(t.dtype, 'q8_0', gname);
      // Every value kept (−0 and 0 alike: ggml's d·q − 16d and d·(q − 16) differ only there).
      for (let i = 0; i < n; i++) if (got[i] !== want[i]) assert.unreachable(`${gname}[${i}]: ${got[i]} vs ${want[i]}`);
    } else assert.ok(t.dtype === 'q8_0' && sameBytes(t.bytes, quantize('q8_0', want)), gname);
  }
  // Q5_1: the up projections of 5 layers.
  assert.equal(ck.notes!.map((n) => n.replace(/ \([^)]*\)$/, '')).sort(), [
    "Q5_1 weights were dequantised and requantised to q8_0 (baseDtype 'auto'): 5 tensors",
  ]);
  assert.is(ck.config.tiedEmbeddings, true);
  assert.is(f32.tensors.size, ck.tensors.size);
});

test('a Q4_K tensor read by offset a few rows at a time becomes the q4_1 of its values, bit for bit', async () => {
  const rows = 6, cols = 512, n = rows * cols;
  const raw = randomBlocks('Q4_K', n / 256);
  const info = { name: 'blk.0.ffn_up.weight', shape: [rows, cols], offset: 100, byteLength: raw.length, typeName: 'Q4_K', type: 12 };
  const file = new Uint8Array(100 + raw.length + 50);
  file.set(raw, 100);
  const stored = ggufStoredTensor(info as unknown as GgufTensorInfo, 'k.gguf');
  assert.is(stored.kind, 'q4_1');
  const t = await readStoredTensor(bytesSource(file, 'k.gguf'), stored, targetStorage(stored, 'auto'), { chunkBytes: 2 * (raw.length / rows) });
  assert.ok(isCompactTensor(t) && t.dtype === 'q4_1' && sameBytes(t.bytes, ggmlToCompact('q4_1', raw, n, 'Q4_K')));
  const v = tensorF32(t), want = decodeGgmlData(raw, 0, n, 'Q4_K');
  for (let i = 0; i < n; i++) if (v[i] !== want[i]) assert.unreachable(`element ${i}: ${v[i]} vs ${want[i]}`);
});

test('withRopeLayout moves whole compact rows: the decoded result equals the f32 permutation, and back is bit-exact', async () => {
  for (const dtype of ['q8_0', 'q4_0', 'f16', 'bf16'] as const) {
    const ck = await loadCheckpoint(real, { baseDtype: dtype });
    const half = withRopeLayout(ck, 'half');
    for (const l of [0, 4]) {
      for (const [proj, heads] of [['q_proj', 8], ['k_proj', 4]] as const) {
        const name = `model.layers.${l}.self_attn.${proj}.weight`;
        const t = ck.tensors.get(name)!, h = half.tensors.get(name)!;
        assert.is(h.dtype, dtype);
        assert.equal(Array.from(tensorF32(h)), Array.from(permuteQKPairsToHalf(tensorF32(t), heads, 8, 64)), `${dtype} ${name}`);
        assert.ok(sameBytes((withRopeLayout(half, 'pairs').tensors.get(name) as { bytes: Uint8Array }).bytes, (t as { bytes: Uint8Array }).bytes));
      }
    }
  }
});

test('safetensors F16 and BF16 weights load compact (bit for bit); F32 ones stay f32', async () => {
  const f32 = withRopeLayout(await loadCheckpoint(real), 'half');
  const config = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 64, intermediate_size: 172, num_hidden_layers: 5,
    num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 512, max_position_embeddings: 512, rms_norm_eps: 1e-5,
    rope_theta: 10000, tie_word_embeddings: true, hidden_act: 'silu',
  };
  for (const dtype of ['F16', 'BF16'] as const) {
    const st = writeSafetensors([...f32.tensors].map(([k, t]) => [k, { shape: t.shape, data: tensorF32(t), dtype: t.shape.length === 2 ? dtype : 'F32' }]));
    const ck = await readHfCheckpoint(memorySource({ 'config.json': new TextEncoder().encode(JSON.stringify(config)), 'model.safetensors': st }));
    for (const [name, t] of ck.tensors) {
      if (t.shape.length === 1) { assert.is(t.dtype, undefined); continue; }
      assert.is(t.dtype, dtype.toLowerCase(), name);
      assert.ok(sameBytes((t as { bytes: Uint8Array }).bytes, quantize(dtype === 'F16' ? 'f16' : 'bf16', tensorF32(f32.tensors.get(name)!))), name);
    }
  }
});

test('a compact checkpoint exported to GGUF keeps its bits; validateCheckpoint checks compact storage', async () => {
  const q4 = await loadCheckpoint(real, { baseDtype: 'q4_0' });
  const again = await loadCheckpoint(checkpointToGguf(q4));
  for (const [name, t] of q4.tensors) {
    const u = again.tensors.get(name)!;
    assert.is(u.dtype, t.dtype, name);
    if (isCompactTensor(t)) assert.ok(sameBytes((u as { bytes: Uint8Array }).bytes, t.bytes), name);
  }
  const dir = mkdtempSync(join(tmpdir(), 'adaptkit-compact-'));
  try {
    const bad = new Map(q4.tensors);
    bad.set(Q, { shape: [64, 64], dtype: 'q4_0', bytes: new Uint8Array(10) });
    const e = (() => { try { checkpointToGguf({ ...q4, tensors: bad }); } catch (x) { return x as Error; } return undefined; })();
    assert.match(e!.message, /model\.layers\.1\.self_attn\.q_proj\.weight has 10 bytes for q4_0 of shape \[64, 64\], expected 2560/);
    writeFileSync(join(dir, 'x'), '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});


test('a q4_1 base written to GGUF is Q4_1 and reads back bit for bit', async () => {
  const ck = await loadCheckpoint(real, { baseDtype: 'q4_1' });
  const back = await loadCheckpoint(checkpointToGguf(ck), { name: 'q41.gguf' });
  const a = ck.tensors.get(Q)!, b = back.tensors.get(Q)!;
  assert.ok(isCompactTensor(a) && a.dtype === 'q4_1' && isCompactTensor(b) && b.dtype === 'q4_1' && sameBytes(a.bytes, b.bytes));
  assert.is(parseGguf(checkpointToGguf(ck)).tensors.find((t) => t.name === 'blk.1.attn_q.weight')?.typeName, 'Q4_1');
});

test.run();
