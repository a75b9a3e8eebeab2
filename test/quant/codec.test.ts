import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  compactBytes, compactToGgml, dequantize, dequantizeRange, gatherRows, ggmlToCompact, ggmlToCompactInto, q4_1FitsGgml,
  quantize, quantizeInto, type CompactDType,
} from '../../src/quant/index.js';
import { decodeGgmlData } from '../../src/formats/gguf.js';
import { randomBlocks, rng, thrown } from '../formats/helpers.js';

const bitsEqual = (a: Float32Array, b: Float32Array) =>
  a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** Equal as numbers (−0 = 0: ggml's own d·q − 8d and the spec's d·(q − 8) differ only there), NaN = NaN. */
function sameValues(a: Float32Array, b: Float32Array, what: string): void {
  assert.is(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i] && !(Number.isNaN(a[i]!) && Number.isNaN(b[i]!))) assert.unreachable(`${what}: element ${i} is ${a[i]}, expected ${b[i]}`);
  }
}

test('compactBytes: the layout sizes of the spec, padded to 4', () => {
  assert.is(compactBytes('f16', 3), 8);
  assert.is(compactBytes('bf16', 64), 128);
  assert.is(compactBytes('q8_0', 64), 64 + 8);
  assert.is(compactBytes('q4_0', 64), 32 + 8);
  assert.is(compactBytes('q4_1', 64), 32 + 16);
  assert.match(thrown(() => compactBytes('q4_0', 48)).message, /multiple of 32/);
});

// ---------------------------------------------------------------------------------------------
// GGUF blocks <-> planar, against the GGUF dequantiser of src/formats/gguf.ts

for (const [ggml, dtype] of [['Q8_0', 'q8_0'], ['Q4_0', 'q4_0'], ['Q4_1', 'q4_1']] as const) {
  test(`${ggml}: planar layout dequantises exactly as the GGUF reader and converts back byte for byte`, () => {
    const nb = 96;
    const raw = randomBlocks(ggml, nb);
    const planar = ggmlToCompact(dtype, raw, nb * 32);
    assert.is(planar.length, compactBytes(dtype, nb * 32));
    sameValues(dequantize(dtype, planar, nb * 32), decodeGgmlData(raw, 0, nb * 32, ggml), ggml);
    assert.ok(Buffer.from(compactToGgml(dtype, planar, nb * 32)).equals(Buffer.from(raw)), `${ggml} round trip`);
    // A range of blocks decodes like the same blocks of the whole.
    sameValues(dequantizeRange(dtype, planar, nb * 32, 64, 96), decodeGgmlData(raw, 0, nb * 32, ggml).subarray(64, 160), `${ggml} range`);
  });
}

// Q4_K and Q5_0 have no layout of their own: their values are exactly those of a q4_1 / q8_0 layout.
for (const [ggml, dtype, per] of [['Q4_K', 'q4_1', 256], ['Q5_0', 'q8_0', 32]] as const) {
  test(`${ggml} held as ${dtype}: every value equals the GGUF reader's (−0 = 0)`, () => {
    const nb = 12, n = nb * per;
    const raw = randomBlocks(ggml, nb);
    const c = ggmlToCompact(dtype, raw, n, ggml);
    sameValues(dequantize(dtype, c, n), decodeGgmlData(raw, 0, n, ggml), `${ggml} values`);
    // Converted a chunk at a time (a loader reading rows), the same bytes.
    const parts = new Uint8Array(c.length);
    for (let s = 0; s < n; s += 2 * per) ggmlToCompactInto(dtype, raw.subarray((s / per) * raw.length / nb, ((s + 2 * per) / per) * raw.length / nb), parts, n, s, ggml);
    assert.ok(Buffer.from(parts).equals(Buffer.from(c)), `${ggml} chunked`);
    assert.match(thrown(() => ggmlToCompact('q4_0', raw, n, ggml)).message, new RegExp(`${ggml} data cannot be held as q4_0`));
  });
}

test('q4_1 from Q4_K has float32 scales: GGUF Q4_1 would round them, so writing it refuses; a Q4_1 file round-trips', () => {
  const n = 4 * 256;
  const fromK = ggmlToCompact('q4_1', randomBlocks('Q4_K', 4), n, 'Q4_K');
  assert.not.ok(q4_1FitsGgml(fromK, n));
  assert.match(thrown(() => compactToGgml('q4_1', fromK, n)).message, /cannot be written as GGUF Q4_1 without rounding/);
  assert.ok(q4_1FitsGgml(ggmlToCompact('q4_1', randomBlocks('Q4_1', 32), n), n));
});

test('q4_1: d = (max − min)/15, m = min, q = min(15, trunc((x − min)/d + 0.5)), both stored as binary16 (ggml quantize_row_q4_1_ref)', () => {
  // Block 0: values −1 … 2 in steps of 3/31 (max − min = 3, d = 0.2); block 1 constant (d = 0, every q 0).
  const x = new Float32Array(64);
  for (let j = 0; j < 32; j++) x[j] = -1 + (3 * j) / 31;
  x.fill(0.7, 32);
  const b = quantize('q4_1', x);
  const dv = new DataView(b.buffer);
  assert.is(dv.getFloat32(32, true), Math.fround(0.199951171875), 'd = 0.2 rounded to binary16');
  assert.is(dv.getFloat32(36, true), -1, 'min');
  assert.is(dv.getFloat32(44, true), 0.7001953125, 'min of block 1: 0.7 rounded to binary16');
  assert.is(dv.getFloat32(40, true), 0, 'constant block: d = 0');
  const d32 = Math.fround(Math.fround(3) / 15), id = Math.fround(1 / d32);
  for (let j = 0; j < 32; j++) {
    const want = Math.min(15, Math.trunc(Math.fround(Math.fround(Math.fround(x[j]! + 1) * id) + 0.5)));
    const byte = b[j & 15]!;
    assert.is(j < 16 ? byte & 15 : byte >> 4, want, `q[${j}]`);
  }
  for (let j = 16; j < 32; j++) assert.is(b[j]!, 0, 'constant block: every nibble 0');
  // Each value is within d/2 (plus the rounding of d and min to binary16) of the input.
  const y = dequantize('q4_1', b, 64);
  for (let j = 0; j < 32; j++) assert.ok(Math.abs(y[j]! - x[j]!) <= 0.1 + 15 * Math.abs(0.2 - 0.199951171875) + 1e-6, `error at ${j}`);
});

test('GGUF scales keep their exact bits (infinity, NaN payloads, subnormals, −0) through planar and back', () => {
  const raw = randomBlocks('Q8_0', 5);
  [0x7c00, 0x7e01, 0xfd55, 0x0003, 0x8000].forEach((h, b) => { raw[b * 34] = h & 0xff; raw[b * 34 + 1] = h >> 8; });
  const planar = ggmlToCompact('q8_0', raw, 160);
  assert.ok(Buffer.from(compactToGgml('q8_0', planar, 160)).equals(Buffer.from(raw)));
  const dv = new DataView(planar.buffer);
  assert.is(dv.getFloat32(160, true), Infinity);
  assert.is(dv.getFloat32(160 + 12, true), 3 * 2 ** -24);
});

for (const [ggml, dtype] of [['F16', 'f16'], ['BF16', 'bf16']] as const) {
  test(`${ggml}: raw values are the layout; dequantise equals the GGUF reader (all 65,536 bit patterns)`, () => {
    const raw = new Uint8Array(2 * 65536);
    for (let h = 0; h < 65536; h++) { raw[2 * h] = h & 0xff; raw[2 * h + 1] = h >> 8; }
    const c = ggmlToCompact(dtype, raw, 65536);
    sameValues(dequantize(dtype, c, 65536), decodeGgmlData(raw, 0, 65536, ggml), ggml);
    assert.ok(Buffer.from(compactToGgml(dtype, c, 65536)).equals(Buffer.from(raw)));
    // Odd counts pad the layout to 4 bytes.
    assert.is(ggmlToCompact(dtype, raw.subarray(0, 6), 3).length, 8);
  });
}

// ---------------------------------------------------------------------------------------------
// Quantising: ggml's reference rules on hand-built blocks

const q8 = (bytes: Uint8Array, i: number) => (bytes[i]! << 24) >> 24;
const scale = (bytes: Uint8Array, at: number) => new DataView(bytes.buffer, bytes.byteOffset).getFloat32(at, true);
const nib = (bytes: Uint8Array, i: number) => (i % 32 < 16 ? bytes[Math.floor(i / 32) * 16 + (i % 32)]! & 15 : bytes[Math.floor(i / 32) * 16 + (i % 32) - 16]! >> 4);

test('q8_0: d = amax/127, q = x/d rounded half away from zero; an all-zero block has d = 0 and q = 0', () => {
  const x = new Float32Array(64);
  // Block 0: amax 127 gives d = 1, so q = round(x) exactly, halves away from zero.
  x.set([127, 2.5, -2.5, 0.5, -0.5, 1.49, -63.5, 3]);
  const want = [127, 3, -3, 1, -1, 1, -64, 3];
  // Block 1: all zeros.
  const b = quantize('q8_0', x);
  want.forEach((w, i) => assert.is(q8(b, i), w, `q[${i}]`));
  for (let i = 8; i < 64; i++) assert.is(q8(b, i), 0);
  assert.is(scale(b, 64), 1);
  assert.is(scale(b, 68), 0);
  assert.is(dequantize('q8_0', b, 64)[6], -64);
});

test('q8_0: the stored scale is amax/127 rounded to binary16; quants use the unrounded reciprocal', () => {
  const x = new Float32Array(32);
  x[0] = 1; x[1] = -0.5; x[2] = 0.25;
  const b = quantize('q8_0', x);
  const d = Math.fround(1 / 127);
  // 1/127 in binary16: 0x2008 = 2^-7 · (1 + 8/1024)
  assert.is(scale(b, 32), 2 ** -7 * (1 + 8 / 1024));
  assert.is(q8(b, 0), 127);
  assert.is(q8(b, 1), -64); // -0.5·127 = -63.5 → -64
  assert.is(q8(b, 2), Math.round(Math.fround(0.25 * Math.fround(1 / d))));
});

test('q4_0: d = max/−8 with the signed value of largest magnitude (first on ties); q = min(15, trunc(x/d + 8.5))', () => {
  const x = new Float32Array(96);
  // Block 0: largest magnitude is negative (−8): d = 1, q = min(15, trunc(x + 8.5)).
  x.set([-8, 7, 8, 0, -0.5, 0.5, 3.49, -3.5], 0);
  // Block 1: largest magnitude is positive (8): d = −1, q = min(15, trunc(−x + 8.5)).
  x.set([8, -8, 1, -1, 0.5, -7.5], 32);
  // Block 2: −4 and 4 tie for magnitude; the first (−4) sets d = 0.5.
  x.set([-4, 4, 1], 64);
  const b = quantize('q4_0', x);
  const want0 = [0, 15, 15, 8, 8, 9, 11, 5];
  want0.forEach((w, i) => assert.is(nib(b, i), w, `block 0 q[${i}]`));
  const want1 = [0, 15, 7, 9, 8, 15];
  want1.forEach((w, i) => assert.is(nib(b, 32 + i), w, `block 1 q[${i}]`));
  assert.is(nib(b, 64), 0);
  assert.is(nib(b, 65), 15);
  assert.is(nib(b, 66), 10);
  assert.equal([scale(b, 48), scale(b, 52), scale(b, 56)], [1, -1, 0.5]);
  // Dequantised: the largest element is exact, +8 in block 0 clamps to 7.
  const y = dequantize('q4_0', b, 96);
  assert.is(y[0], -8);
  assert.is(y[2], 7);
  assert.is(y[32], 8);
});

test('q4_0: an all-zero block has d = 0 and every nibble 8', () => {
  const b = quantize('q4_0', new Float32Array(32));
  for (let i = 0; i < 32; i++) assert.is(nib(b, i), 8);
  assert.is(scale(b, 16), 0);
  sameValues(dequantize('q4_0', b, 32), new Float32Array(32), 'zeros');
});

test('error bounds: q8_0 |x − x̂| ≤ |d|/2 + 127·|d − d̂|, q4_0 |x − x̂| ≤ |d| + 8·|d − d̂| (d float32, d̂ stored)', () => {
  const r = rng(11);
  for (const dtype of ['q8_0', 'q4_0'] as const) {
    let worst = 0;
    for (let trial = 0; trial < 400; trial++) {
      const mag = 10 ** (r() * 8 - 3);
      const x = Float32Array.from({ length: 32 }, () => (r() * 2 - 1) * mag);
      const y = dequantize(dtype, quantize(dtype, x), 32);
      let amax = 0, max = 0;
      for (const v of x) if (Math.abs(v) > amax) { amax = Math.abs(v); max = v; }
      const d = dtype === 'q8_0' ? Math.fround(amax / 127) : Math.fround(max / -8);
      const dHat = scale(quantize(dtype, x), dtype === 'q8_0' ? 32 : 16);
      const bound = dtype === 'q8_0' ? Math.abs(d) / 2 + 127 * Math.abs(d - dHat) : Math.abs(d) + 8 * Math.abs(d - dHat);
      for (let i = 0; i < 32; i++) {
        const e = Math.abs(x[i]! - y[i]!);
        // 1e-6 relative slack for float32 rounding of x·(1/d).
        if (e > bound * (1 + 1e-6)) assert.unreachable(`${dtype} trial ${trial} element ${i}: error ${e} > bound ${bound}`);
        worst = Math.max(worst, e / Math.abs(d));
      }
    }
    // The bound is tight: the worst error seen is close to it (0.5 and 1 in units of d).
    assert.ok(worst > (dtype === 'q8_0' ? 0.45 : 0.9), `${dtype} worst error ${worst}·d`);
  }
});

test('quantizeInto a few rows at a time equals quantising the whole tensor', () => {
  const r = rng(5);
  const x = Float32Array.from({ length: 32 * 12 }, () => r() * 2 - 1);
  for (const dtype of ['f16', 'bf16', 'q8_0', 'q4_0', 'q4_1'] as CompactDType[]) {
    const whole = quantize(dtype, x);
    const parts = new Uint8Array(whole.length);
    for (let s = 0; s < x.length; s += 96) quantizeInto(dtype, x.subarray(s, s + 96), parts, x.length, s);
    assert.ok(Buffer.from(parts).equals(Buffer.from(whole)), dtype);
  }
  assert.match(thrown(() => quantizeInto('q8_0', x.subarray(0, 40), new Uint8Array(compactBytes('q8_0', x.length)), x.length, 0)).message, /32-element blocks/);
});

test('gatherRows permutes whole rows (quants with their scales) like the float32 rows', () => {
  const r = rng(9);
  const rows = 6, cols = 64;
  const x = Float32Array.from({ length: rows * cols }, () => r() * 2 - 1);
  const from = [3, 0, 5, 1, 4, 2];
  for (const dtype of ['f16', 'bf16', 'q8_0', 'q4_0', 'q4_1'] as CompactDType[]) {
    const y = dequantize(dtype, gatherRows(dtype, quantize(dtype, x), rows, cols, from), rows * cols);
    const full = dequantize(dtype, quantize(dtype, x), rows * cols);
    for (let i = 0; i < rows; i++) sameValues(y.subarray(i * cols, (i + 1) * cols), full.subarray(from[i]! * cols, (from[i]! + 1) * cols), `${dtype} row ${i}`);
  }
});

// ---------------------------------------------------------------------------------------------
// f16 / bf16 rounding against references built from float64 and DataView

const F16_VALUES: Float64Array = (() => {
  // Every finite non-negative binary16 value, in increasing order (bits 0x0000..0x7bff).
  const v = new Float64Array(0x7c00);
  for (let h = 0; h < 0x7c00; h++) {
    const e = h >> 10, m = h & 0x3ff;
    v[h] = e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15);
  }
  return v;
})();

/** Round to the nearest binary16 value, ties to even bits, overflow past 65504 + ulp/2 to infinity. */
function refF16(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x), s = x < 0 || Object.is(x, -0) ? -1 : 1;
  if (a >= 65520) return s * Infinity;
  let lo = 0, hi = F16_VALUES.length - 1;
  while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (F16_VALUES[mid]! <= a) lo = mid; else hi = mid - 1; }
  const below = F16_VALUES[lo]!, above = lo + 1 < F16_VALUES.length ? F16_VALUES[lo + 1]! : 65536;
  const pick = a - below < above - a ? lo : a - below > above - a ? lo + 1 : lo % 2 === 0 ? lo : lo + 1;
  return s * (pick === F16_VALUES.length ? Infinity : F16_VALUES[pick]!);
}

/** Round a float32 to bfloat16 from its DataView bits: nearest of the two truncations, ties to even. */
function refBf16(x: number): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setFloat32(0, x, true);
  const bits = dv.getUint32(0, true);
  if (Number.isNaN(x)) return NaN;
  const low = bits & 0xffff0000;
  const val = (b: number) => { dv.setUint32(0, b >>> 0, true); return dv.getFloat32(0, true); };
  const down = val(low);
  if ((bits & 0xffff) === 0 || !Number.isFinite(down)) return down;
  const upBits = (low + 0x10000) >>> 0;
  // Past the largest finite bfloat16 the next value up is 2^128 (read as infinity).
  const up = (upBits & 0x7fffffff) === 0x7f800000 ? Math.sign(down) * 2 ** 128 : val(upBits);
  const f = Math.fround(x);
  const dDown = Math.abs(f - down), dUp = Math.abs(up - f);
  const r = dDown < dUp ? down : dDown > dUp ? up : (low & 0x10000) === 0 ? down : up;
  return Math.abs(r) === 2 ** 128 ? Math.sign(r) * Infinity : r;
}

function roundingCases(): Float32Array {
  const r = rng(21);
  const xs: number[] = [0, -0, Infinity, -Infinity, NaN, 65504, 65519, 65520, -65520, 65536, 1e9, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -14, 2 ** -14 - 2 ** -25, 1e-10, 3.4e38, -3.39e38];
  // Exact halfway points between neighbouring binary16 values (ties to even), in every binade.
  for (let h = 0; h < 0x7bff; h += 37) xs.push((F16_VALUES[h]! + F16_VALUES[h + 1]!) / 2);
  for (let i = 0; i < 20000; i++) {
    const mag = 2 ** (r() * 60 - 30);
    xs.push((r() < 0.5 ? -1 : 1) * mag);
  }
  // bfloat16 ties: a float32 whose low 16 bits are exactly 0x8000.
  const dv = new DataView(new ArrayBuffer(4));
  for (let i = 0; i < 200; i++) { dv.setUint32(0, ((Math.floor(r() * 0xff00) << 16) | 0x8000) >>> 0, true); xs.push(dv.getFloat32(0, true)); }
  return Float32Array.from(xs);
}

for (const [dtype, ref] of [['f16', refF16], ['bf16', refBf16]] as const) {
  test(`${dtype}: quantize rounds to nearest even (subnormals, overflow, ±0, ±inf, NaN) as the reference does`, () => {
    const xs = roundingCases();
    const y = dequantize(dtype, quantize(dtype, xs), xs.length);
    for (let i = 0; i < xs.length; i++) {
      const want = ref(xs[i]!);
      if (!Object.is(y[i], Math.fround(want)) && !(Number.isNaN(want) && Number.isNaN(y[i]!))) {
        assert.unreachable(`${dtype}(${xs[i]}) is ${y[i]}, expected ${want}`);
      }
    }
  });
}

test('f16: every binary16 value is a fixed point of quantize ∘ dequantize', () => {
  const raw = new Uint8Array(2 * 65536);
  for (let h = 0; h < 65536; h++) { raw[2 * h] = h & 0xff; raw[2 * h + 1] = h >> 8; }
  const y = dequantize('f16', raw, 65536);
  const back = dequantize('f16', quantize('f16', y), 65536);
  assert.ok(bitsEqual(back.map((v) => (Number.isNaN(v) ? 0 : v)), y.map((v) => (Number.isNaN(v) ? 0 : v))));
});

test.run();
