import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  GGML_TYPE_ID, decodeGgmlData, gguf, ggufMeta, ggufTensorToF32, parseGguf, quantizeQ8_0, writeGguf,
  type GgufValue,
} from '../../src/formats/gguf.js';
import { FormatError, f16BitsToNumber, numberToF16Bits } from '../../src/formats/binary.js';
import { GGUF_PATH, QUANT_LAYOUT, randomBlocks, readAsset, rng, thrown } from './helpers.js';

const NAME = 'stories260K.gguf';
const real = readAsset(GGUF_PATH);

test('parses stories260K.gguf: header, metadata, tensor table', () => {
  const t0 = performance.now();
  const f = parseGguf(real, NAME);
  const ms = performance.now() - t0;
  assert.is(f.version, 3);
  assert.is(f.alignment, 32);
  assert.is(f.metadata.size, 19);
  assert.is(f.tensors.length, 48);
  assert.is(ggufMeta(f, 'general.architecture'), 'llama');
  assert.is(ggufMeta(f, 'llama.embedding_length'), 64);
  assert.is(ggufMeta(f, 'llama.attention.head_count_kv'), 4);
  assert.is(ggufMeta(f, 'llama.context_length'), 2048);
  assert.is(f.metadata.get('llama.attention.layer_norm_rms_epsilon')!.type, 'float32');
  const tokens = ggufMeta(f, 'tokenizer.ggml.tokens') as string[];
  assert.is(tokens.length, 512);
  assert.is(tokens[259], '\u2581t');
  assert.is((ggufMeta(f, 'tokenizer.ggml.token_type') as Int32Array)[3], 6);
  const q = f.tensorsByName.get('blk.0.attn_q.weight')!;
  assert.equal(q.dims, [64, 64]);
  const k = f.tensorsByName.get('blk.0.attn_k.weight')!;
  assert.equal(k.dims, [64, 32]);
  assert.equal(k.shape, [32, 64]);
  assert.is(k.typeName, 'F32');
  assert.is(f.dataOffset % 32, 0);
  const emb = ggufTensorToF32(f, 'token_embd.weight');
  assert.is(emb.length, 512 * 64);
  assert.ok(emb.every(Number.isFinite));
  assert.ok(ms < 1000, `parse took ${ms} ms`);
});

test('F32 tensors are views by default and copies on request', () => {
  const f = parseGguf(real.slice(), NAME);
  const view = ggufTensorToF32(f, 'output_norm.weight');
  const copy = ggufTensorToF32(f, 'output_norm.weight', { copy: true });
  assert.is(view.buffer, f.bytes.buffer);
  assert.is.not(copy.buffer, f.bytes.buffer);
  assert.equal(Array.from(view), Array.from(copy));
});

function allTypesMetadata(): [string, GgufValue][] {
  return [
    ['general.architecture', gguf.str('llama')],
    ['t.u8', gguf.u8(255)], ['t.i8', gguf.i8(-128)], ['t.u16', gguf.u16(65535)], ['t.i16', gguf.i16(-32768)],
    ['t.u32', gguf.u32(4294967295)], ['t.i32', gguf.i32(-2147483648)], ['t.f32', gguf.f32(1e-5)],
    ['t.f64', gguf.f64(Math.PI)], ['t.u64', gguf.u64(2n ** 64n - 1n)], ['t.i64', gguf.i64(-(2n ** 63n))],
    ['t.bool', gguf.bool(true)], ['t.str', gguf.str('héllo ✓ 🦙')], ['t.empty', gguf.str('')],
    ['t.strs', gguf.strings(['a', '', '▁b', '🦙'])], ['t.f32s', gguf.f32s([1.5, -2, 0])], ['t.i32s', gguf.i32s([-1, 2])],
    ['t.u8s', { type: 'array', itemType: 'uint8', value: Uint8Array.of(1, 2, 3) }],
    ['t.bools', { type: 'array', itemType: 'bool', value: [true, false] }],
    ['t.u64s', { type: 'array', itemType: 'uint64', value: BigUint64Array.of(1n, 2n ** 63n) }],
    ['t.f64s', { type: 'array', itemType: 'float64', value: Float64Array.of(0.1, -0.2) }],
    ['t.nested', {
      type: 'array', itemType: 'array', value: [
        { type: 'array', itemType: 'int32', value: Int32Array.of(1, 2) },
        { type: 'array', itemType: 'string', value: ['x'] },
      ],
    }],
  ];
}

test('GGUF write → read round trip: every metadata type, F32/F16/BF16/Q8_0 tensors, alignment', () => {
  const r = rng(1);
  const mk = (n: number) => Float32Array.from({ length: n }, () => r() * 2 - 1);
  const a = mk(64 * 3), b = mk(32 * 4), c = mk(7), d = mk(2 * 64);
  for (const alignment of [32, 64]) {
    for (const version of [2, 3] as const) {
      const bytes = writeGguf({
        version, alignment, metadata: allTypesMetadata(),
        tensors: [
          { name: 'a', shape: [3, 64], data: a },
          { name: 'b', shape: [4, 32], data: b, type: 'F16' },
          { name: 'c', shape: [7], data: c, type: 'BF16' },
          { name: 'd', shape: [2, 64], data: d, type: 'Q8_0' },
          { name: 'e', shape: [1, 1, 1, 2], data: Float32Array.of(1, 2) },
        ],
      });
      const f = parseGguf(bytes, 'rt.gguf');
      assert.is(f.version, version);
      assert.is(f.alignment, alignment);
      for (const t of f.tensors) assert.is((t.offset - f.dataOffset) % alignment, 0);
      const want = new Map(allTypesMetadata());
      if (alignment !== 32) want.set('general.alignment', gguf.u32(alignment));
      assert.equal([...f.metadata.keys()].sort(), [...want.keys()].sort());
      for (const [k, v] of want) {
        const got = f.metadata.get(k)!;
        assert.is(got.type, v.type, k);
        if (k === 't.f32') assert.is(got.value, Math.fround(1e-5));
        else assert.equal(got, v, k);
      }
      assert.equal(Array.from(ggufTensorToF32(f, 'a')), Array.from(a));
      assert.equal(f.tensorsByName.get('a')!.dims, [64, 3]);
      const bh = ggufTensorToF32(f, 'b');
      b.forEach((x, i) => assert.is(bh[i], f16BitsToNumber(numberToF16Bits(x))));
      const cb = ggufTensorToF32(f, 'c');
      c.forEach((x, i) => assert.ok(Math.abs(cb[i]! - x) <= Math.abs(x) * 2 ** -8));
      const dq = ggufTensorToF32(f, 'd');
      for (let i = 0; i < d.length; i++) assert.ok(Math.abs(dq[i]! - d[i]!) < 1 / 127, `q8 ${i}`);
      assert.equal(f.tensorsByName.get('e')!.dims, [2, 1, 1, 1]);
    }
  }
});

test('re-writing stories260K.gguf from its parsed form gives the same bytes', () => {
  const f = parseGguf(real, NAME);
  const out = writeGguf({
    version: 3, metadata: f.metadata,
    tensors: f.tensors.map((t) => ({ name: t.name, shape: t.shape, data: ggufTensorToF32(f, t) })),
  });
  assert.is(out.length, real.length);
  assert.ok(out.every((x, i) => x === real[i]), 'byte-identical');
});

// Expected values from ggml's reference dequantisers (gguf-py's numpy implementation) on the same
// pseudo-random blocks: [sum, sum of squares, first three values, last value].
const QUANT_GOLDEN: Record<string, [number, number, number[], number]> = {
  Q4_0: [-0.39331817626953125, 5.3575423910224345, [-0.25067138671875, -0.041778564453125, 0.1671142578125], -0.1253662109375],
  Q4_1: [-32.027008056640625, 11.348590306937695, [-0.320648193359375, -0.06231689453125, -0.1656494140625], -0.2335357666015625],
  Q5_0: [-2.67279052734375, 24.308179416693747, [-0.183563232421875, -0.330413818359375, -0.110137939453125], -0.69873046875],
  Q5_1: [-33.84674072265625, 85.48601198778488, [-0.2559051513671875, -0.4275665283203125, -0.20440673828125], 0.11710548400878906],
  Q8_0: [9.364112854003906, 831.477930587309, [2.4964599609375, -0.330413818359375, -4.33209228515625], -0.45284271240234375],
  Q2_K: [-490.39871406555176, 689.4880531180061, [-1.7435302734375, -1.7435302734375, -1.19329833984375], -0.18387603759765625],
  Q3_K: [-90.10583877563477, 3579.019107569633, [0.1153564453125, 0.0, -0.1153564453125], -0.25081634521484375],
  Q4_K: [483.6646385192871, 83997.44358724289, [22.55059814453125, 24.37158203125, 26.19256591796875], -0.8154067993164062],
  Q5_K: [-4426.700332641602, 999701.0529571108, [0.15789794921875, 0.15789794921875, 0.15789794921875], 2.664337158203125],
  Q6_K: [438.5735626220703, 4323367.201301159, [-38.14215087890625, -10.40240478515625, -83.21923828125], -23.86083984375],
};

test('dequantisation matches ggml reference values for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/Q2_K..Q6_K', () => {
  for (const type of Object.keys(QUANT_LAYOUT)) {
    const n = 8 * (type.endsWith('_K') ? 256 : 32);
    const got = decodeGgmlData(randomBlocks(type, 8), 0, n, type);
    const [sum, sumsq, first, last] = QUANT_GOLDEN[type]!;
    let s = 0, s2 = 0;
    for (const x of got) { s += x; s2 += x * x; }
    assert.ok(Math.abs(s - sum) <= 1e-9 * Math.max(1, Math.abs(sum)), `${type} sum ${s} vs ${sum}`);
    assert.ok(Math.abs(s2 - sumsq) <= 1e-9 * sumsq, `${type} sumsq ${s2} vs ${sumsq}`);
    assert.equal(Array.from(got.subarray(0, 3)), first, type);
    assert.is(got[n - 1], last, type);
  }
});

test('Q8_0 quantisation is bit-exact with ggml reference rounding', () => {
  const r = rng(5);
  const x = new Float32Array(32 * 64);
  for (let i = 0; i < x.length; i++) x[i] = (r() * 2 - 1) * (i % 97 === 0 ? 10 : 1);
  for (let i = 0; i < 32; i++) x[32 * 5 + i] = (i - 16) * 0.5;
  const q = quantizeQ8_0(x);
  let h = 0x811c9dc5;
  for (const b of q) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  assert.is(h, 0xcf43668a);
});

// ---------------------------------------------------------------------------------------------
// Malformed files: every error names the file and the problem.

function errOf(bytes: Uint8Array, name = NAME): string {
  const e = thrown(() => {
    const f = parseGguf(bytes, name);
    for (const t of f.tensors) ggufTensorToF32(f, t);
  });
  assert.instance(e, FormatError);
  assert.ok(e.message.startsWith(`${name}: `), e.message);
  return e.message;
}

/**
 * Byte offset just past a tensor's name in the tensor table of the real file. The table follows about
 * 14 KB of metadata (mostly the vocabulary), which holds no tensor names, hence the lower bound.
 */
function tensorInfoOffset(name: string): number {
  const enc = new TextEncoder().encode(name);
  outer: for (let i = 0; i < real.length - enc.length; i++) {
    for (let j = 0; j < enc.length; j++) if (real[i + j] !== enc[j]) continue outer;
    if (new DataView(real.buffer, real.byteOffset + i - 8, 8).getBigUint64(0, true) === BigInt(enc.length) && i > 8000) return i + enc.length;
  }
  throw new Error(`tensor info ${name} not found`);
}

test('wrong magic', () => {
  const b = real.slice();
  b.set([0x47, 0x47, 0x4a, 0x54]);
  assert.match(errOf(b), /not a GGUF file: magic is "GGJT"/);
});

test('unsupported and big-endian versions', () => {
  const b = real.slice();
  new DataView(b.buffer).setUint32(4, 1, true);
  assert.match(errOf(b), /unsupported GGUF version 1 \(supported: 2, 3\)/);
  new DataView(b.buffer).setUint32(4, 3, false);
  assert.match(errOf(b), /big-endian GGUF/);
});

test('truncated anywhere: header, metadata, tensor table, data', () => {
  for (const cut of [0, 3, 10, 23, 100, 5000, 14000, 14160, 200000, real.length - 1]) {
    const msg = errOf(real.subarray(0, cut));
    assert.match(msg, /truncated|too short/, `cut at ${cut}: ${msg}`);
  }
  assert.match(errOf(real.subarray(0, real.length - 1)), /tensor blk\.4\.ffn_norm\.weight data ends at byte 1185376 but the file has 1185375 bytes \(truncated\?\)/);
});

test('absurd counts and lengths are refused before allocating', () => {
  const b = real.slice();
  new DataView(b.buffer).setBigUint64(8, 1n << 40n, true);
  assert.match(errOf(b), /tensor count 1099511627776 cannot fit/);
  const c = real.slice();
  new DataView(c.buffer).setBigUint64(24, 1n << 50n, true); // length of the first key
  assert.match(errOf(c), /metadata key #0 at byte 24 claims 1125899906842624 bytes/);
  const d = real.slice();
  // tokenizer.ggml.tokens: array item count sits after key (8 + 21 bytes), value type (4), item type (4).
  new DataView(d.buffer).setBigUint64(24 + 8 + 21 + 4 + 4, 1n << 40n, true);
  assert.match(errOf(d), /metadata tokenizer\.ggml\.tokens at byte \d+ claims 1099511627776 items of string/);
});

test('unknown metadata value type and invalid bool', () => {
  const b = real.slice();
  new DataView(b.buffer).setUint32(24 + 8 + 21, 99, true);
  assert.match(errOf(b), /type of metadata tokenizer\.ggml\.tokens at byte 53 has unknown value type 99/);
});

test('unsupported and unknown tensor types', () => {
  const at = tensorInfoOffset('blk.0.attn_q.weight');
  // n_dims u32, 2 dims u64, then the type u32.
  const typeAt = at + 4 + 16;
  const b = real.slice();
  new DataView(b.buffer).setUint32(typeAt, 99, true);
  assert.match(errOf(b), /tensor blk\.0\.attn_q\.weight has unknown ggml type 99/);
  const c = real.slice();
  new DataView(c.buffer).setUint32(typeAt, GGML_TYPE_ID.IQ2_XXS!, true);
  // 64 columns are not a whole IQ2_XXS block of 256.
  assert.match(errOf(c), /tensor blk\.0\.attn_q\.weight of type IQ2_XXS has a row of 64 elements, not a multiple of its block size 256/);
  const d = writeGguf({ tensors: [{ name: 'w', shape: [1, 256], data: new Float32Array(256) }] });
  // No metadata: the header is 24 bytes, then name (8 + 1), n_dims (4), two dims (16), type.
  new DataView(d.buffer).setUint32(24 + 9 + 4 + 16, GGML_TYPE_ID.IQ2_XXS!, true);
  const e = thrown(() => ggufTensorToF32(parseGguf(d, 'x.gguf'), 'w'));
  assert.match(e.message, /^x\.gguf: tensor w has type IQ2_XXS, which cannot be decoded \(supported: F32, F16, BF16/);
});

test('misaligned, out-of-range and overlapping tensor offsets', () => {
  const at = tensorInfoOffset('blk.0.attn_q.weight');
  const offAt = at + 4 + 16 + 4;
  const b = real.slice();
  new DataView(b.buffer).setBigUint64(offAt, 262400n + 4n, true);
  assert.match(errOf(b), /tensor blk\.0\.attn_q\.weight data offset 262404 is not a multiple of the alignment 32/);
  new DataView(b.buffer).setBigUint64(offAt, 262400n + 16384n - 32n, true);
  assert.match(errOf(b), /overlaps tensor blk\.0\.attn_k\.weight/);
  new DataView(b.buffer).setBigUint64(offAt, 1n << 40n, true);
  assert.match(errOf(b), /tensor blk\.0\.attn_q\.weight data ends at byte \d+ but the file has 1185376 bytes/);
  const c = real.slice();
  new DataView(c.buffer).setBigUint64(at + 4, 65n, true); // ne0 65: data now runs into the next tensor
  assert.match(errOf(c), /overlaps/);
});

test('bad general.alignment and too many dimensions', () => {
  const bytes = writeGguf({ metadata: { 'general.alignment': gguf.u32(48) } as Record<string, GgufValue>, alignment: 64, tensors: [] });
  const f = parseGguf(bytes, 'a.gguf');
  assert.is(f.alignment, 64);
  const bad = writeGguf({ metadata: [['general.alignment', gguf.u32(64)]], tensors: [] });
  // The value follows the header (24), the key (8 + 17) and its type (4).
  new DataView(bad.buffer).setUint32(24 + 8 + 17 + 4, 48, true);
  const e = thrown(() => parseGguf(bad, 'a.gguf'));
  assert.match(e.message, /^a\.gguf: general\.alignment is 48, not a power of two/);
  const five = thrown(() => writeGguf({ tensors: [{ name: 'x', shape: [1, 1, 1, 1, 1], data: new Float32Array(1) }] }));
  assert.match(five.message, /at most 4 dimensions/);
});

test('writer refuses inconsistent input', () => {
  assert.match(thrown(() => writeGguf({ tensors: [{ name: 'x', shape: [2, 2], data: new Float32Array(3) }] })).message, /has 4 elements but the data has 3/);
  assert.match(thrown(() => writeGguf({ tensors: [{ name: 'x', shape: [2, 20], data: new Float32Array(40), type: 'Q8_0' }] })).message, /multiple of 32/);
  const dup = { name: 'x', shape: [1], data: new Float32Array(1) };
  assert.match(thrown(() => writeGguf({ tensors: [dup, dup] })).message, /given twice/);
});

test.run();
