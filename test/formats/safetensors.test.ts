import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  FormatError, bf16BitsToNumber, f16BitsToNumber, numberToBf16Bits, numberToF16Bits,
} from '../../src/formats/binary.js';
import {
  e4m3ToNumber, isSafetensors, parseSafetensors, safetensorsTensorToF32, writeSafetensors,
} from '../../src/formats/safetensors.js';
import { rng, thrown } from './helpers.js';

const r = rng(3);
const rand = (n: number, scale = 1) => Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale);

test('write → read round trip: F32 exact, F16/BF16 rounded, metadata, layout', () => {
  const a = rand(6 * 5), b = rand(7, 100), c = rand(3 * 2 * 2, 1e-3), s = Float32Array.of(42);
  const bytes = writeSafetensors(
    { 'z.a': { shape: [6, 5], data: a }, 'b': { shape: [7], data: b, dtype: 'F16' }, 'c': { shape: [3, 2, 2], data: c, dtype: 'BF16' }, 'scalar': { shape: [], data: s } },
    { metadata: { format: 'pt', note: 'x' } },
  );
  assert.ok(isSafetensors(bytes));
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.is(n % 8, 0);
  const f = parseSafetensors(bytes, 'rt.safetensors');
  assert.equal(f.metadata, { format: 'pt', note: 'x' });
  assert.equal(f.tensors.map((t) => t.name), ['b', 'c', 'scalar', 'z.a']);
  assert.equal(Array.from(safetensorsTensorToF32(f, 'z.a')), Array.from(a));
  assert.equal(f.tensorsByName.get('z.a')!.shape, [6, 5]);
  assert.equal(Array.from(safetensorsTensorToF32(f, 'scalar')), [42]);
  const bh = safetensorsTensorToF32(f, 'b');
  b.forEach((x, i) => assert.is(bh[i], f16BitsToNumber(numberToF16Bits(x))));
  const cb = safetensorsTensorToF32(f, 'c');
  c.forEach((x, i) => assert.is(cb[i], bf16BitsToNumber(numberToBf16Bits(x))));
  // Header JSON as the reference library writes it.
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  assert.equal(header.b, { dtype: 'F16', shape: [7], data_offsets: [0, 14] });
});

test('binary16 conversion: exact values, rounding to nearest even, subnormals, overflow, NaN', () => {
  const cases: [number, number][] = [
    [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65520, 0x7c00], [1e6, 0x7c00],
    [Infinity, 0x7c00], [-Infinity, 0xfc00], [2 ** -14, 0x0400], [2 ** -24, 0x0001], [2 ** -25, 0x0000],
    [2 ** -25 * 1.5, 0x0001], [3 * 2 ** -25, 0x0002], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02],
    [0.1, 0x2e66], [65519.99, 0x7bff],
  ];
  for (const [x, h] of cases) assert.is(numberToF16Bits(x), h, `f16(${x})`);
  assert.ok(Number.isNaN(f16BitsToNumber(numberToF16Bits(NaN))));
  // Every finite binary16 value survives a round trip.
  for (let h = 0; h < 65536; h++) {
    const v = f16BitsToNumber(h);
    if (Number.isFinite(v)) assert.is(numberToF16Bits(v), h === 0x8000 ? 0x8000 : h);
  }
});

test('bfloat16 conversion: truncation with round to nearest even, NaN stays NaN', () => {
  assert.is(numberToBf16Bits(1), 0x3f80);
  assert.is(numberToBf16Bits(1 + 2 ** -8), 0x3f80); // tie, even stays
  assert.is(numberToBf16Bits(1 + 3 * 2 ** -8), 0x3f82); // tie, odd rounds up
  assert.is(numberToBf16Bits(-3.4e38), 0xff80); // past the largest bfloat16: rounds to -Infinity
  assert.ok(Number.isNaN(bf16BitsToNumber(numberToBf16Bits(NaN))));
  for (let h = 0; h < 65536; h += 7) {
    const v = bf16BitsToNumber(h);
    if (!Number.isNaN(v)) assert.is(numberToBf16Bits(v), h);
  }
});

test('reads F64, integer and FP8 dtypes', () => {
  const header = {
    f64: { dtype: 'F64', shape: [2], data_offsets: [0, 16] },
    i8: { dtype: 'I8', shape: [2], data_offsets: [16, 18] },
    e4: { dtype: 'F8_E4M3', shape: [4], data_offsets: [18, 22] },
    e5: { dtype: 'F8_E5M2', shape: [2], data_offsets: [22, 24] },
    i64: { dtype: 'I64', shape: [1], data_offsets: [24, 32] },
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const bytes = new Uint8Array(8 + json.length + 32);
  const dv = new DataView(bytes.buffer);
  dv.setBigUint64(0, BigInt(json.length), true);
  bytes.set(json, 8);
  const d = 8 + json.length;
  dv.setFloat64(d, 0.1, true);
  dv.setFloat64(d + 8, -3, true);
  dv.setInt8(d + 16, -5);
  dv.setInt8(d + 17, 7);
  bytes.set([0x38, 0xb8, 0x7e, 0x01], d + 18); // 1, -1, 448, 2^-9
  bytes.set([0x3c, 0x7b], d + 22); // 1, 57344
  dv.setBigInt64(d + 24, -9n, true);
  const f = parseSafetensors(bytes, 'm.safetensors');
  assert.equal(Array.from(safetensorsTensorToF32(f, 'f64')), [Math.fround(0.1), -3]);
  assert.equal(Array.from(safetensorsTensorToF32(f, 'i8')), [-5, 7]);
  assert.equal(Array.from(safetensorsTensorToF32(f, 'e4')), [1, -1, 448, 2 ** -9]);
  assert.equal(Array.from(safetensorsTensorToF32(f, 'e5')), [1, 57344]);
  assert.equal(Array.from(safetensorsTensorToF32(f, 'i64')), [-9]);
  assert.ok(Number.isNaN(e4m3ToNumber(0x7f)));
});

function build(header: unknown, dataLen: number, raw?: string): Uint8Array {
  const json = new TextEncoder().encode(raw ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataLen);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

function errOf(bytes: Uint8Array, name = 'bad.safetensors'): string {
  const e = thrown(() => parseSafetensors(bytes, name));
  assert.instance(e, FormatError);
  assert.ok(e.message.startsWith(`${name}: `), e.message);
  return e.message;
}

test('malformed files name the file and the problem', () => {
  const good = writeSafetensors({ w: { shape: [4, 4], data: rand(16) } });
  assert.match(errOf(good.subarray(0, 5)), /header length at byte 0 needs 8 bytes but the file has 5 bytes \(truncated\?\)/);
  assert.match(errOf(good.subarray(0, 30)), /header length is \d+ bytes but only 22 bytes follow/);
  assert.match(errOf(good.subarray(0, good.length - 1)), /tensor w data ends at byte \d+ but the file has \d+ bytes \(truncated\?\)/);
  const huge = good.slice();
  new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
  assert.match(errOf(huge), /over the 100000000-byte limit/);
  assert.match(errOf(build(null, 0, '{"w": ')), /header is not valid JSON/);
  assert.match(errOf(build(null, 0, '[1, 2]')), /does not start with '\{'/);
  assert.match(errOf(build({ w: { dtype: 'Q4', shape: [1], data_offsets: [0, 1] } }, 1)), /tensor w has unsupported dtype Q4/);
  assert.match(errOf(build({ w: { dtype: 'F32', shape: [2, -1], data_offsets: [0, 0] } }, 0)), /tensor w has an invalid shape \[2,-1\]/);
  assert.match(errOf(build({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8)), /needs 12 bytes but its data_offsets \[0, 8\] span 8/);
  assert.match(errOf(build({ w: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, 8)), /end before they begin/);
  assert.match(errOf(build({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12)), /tensor a overlaps tensor b/);
  assert.match(errOf(build({ __metadata__: { a: 1 } }, 0)), /__metadata__\.a is not a string/);
  assert.not.ok(isSafetensors(new TextEncoder().encode('GGUF....{')));
});

test('writer refuses inconsistent input', () => {
  assert.match(thrown(() => writeSafetensors({ w: { shape: [2], data: rand(3) } })).message, /has 2 elements but the data has 3/);
  assert.match(thrown(() => writeSafetensors({ __metadata__: { shape: [1], data: rand(1) } })).message, /cannot be named __metadata__/);
});

test.run();
