// Reading a frozen weight in the layout it is stored in, not a kernel: files that bind such a weight
// declare `w: array<vec4<u32>>` holding its layout bytes and pull this in with `// #include compact`.
// Layouts (for n elements, row-major; the contract of src/quant):
//   f32   element i in word i
//   f16   element i in bytes [2i, 2i+2)                          (IEEE binary16)
//   bf16  element i in bytes [2i, 2i+2)                          (the top half of an f32)
//   q8_0  int8 quant i at byte i, then n/32 f32 scales           value = scale[i/32]·q
//   q4_0  block b's 32 nibbles in bytes [16b, 16b+16): byte j holds element 32b+j (low nibble) and
//         32b+j+16 (high nibble); then n/32 f32 scales           value = scale[i/32]·(nibble − 8)
//   q4_1  nibbles as q4_0; then n/32 (f32 scale, f32 minimum) pairs
//                                                                value = scale[i/32]·nibble + min[i/32]
// `scales` is the word index where the scale plane starts (q8_0: n/4, q4_0 and q4_1: n/8; unused
// otherwise). Every value is exact in f32: f16 and bf16 widen exactly, and scale · q is exact (a scale
// has at most 17 significant bits, a quant at most 8), so q4_1's one addition rounds as the codec's does,
// fused or not.

// 0 f32, 1 f16, 2 bf16, 3 q8_0, 4 q4_0, 5 q4_1 (W_TYPES in src/backends/webgpu/kernels/compact.ts).
override W_TYPE: u32 = 0u;

fn wWord(i: u32) -> u32 { return w[i >> 2u][i & 3u]; }

// Byte e of x as a signed integer.
fn wInt8(x: u32, e: u32) -> f32 { return f32(bitcast<i32>(x << (24u - 8u * e)) >> 24u); }

// The nibble of element i in a q4_0 / q4_1 layout, as stored (0 … 15).
fn wNibble(i: u32) -> f32 {
  let j = i & 31u;
  let byte = (i >> 5u) * 16u + (j & 15u);
  return f32((wWord(byte >> 2u) >> (8u * (byte & 3u) + select(0u, 4u, j >= 16u))) & 15u);
}

// The nibbles of elements 4g .. 4g+3 in a q4_0 / q4_1 layout: groups 0-3 of a block are the low nibbles
// of its 16 bytes, groups 4-7 the high ones.
fn wNibbles(g: u32) -> vec4<f32> {
  let x = wWord((g >> 3u) * 4u + (g & 3u));
  let y = (x >> select(0u, 4u, (g & 4u) != 0u)) & 0x0f0f0f0fu;
  return vec4<f32>(f32(y & 255u), f32((y >> 8u) & 255u), f32((y >> 16u) & 255u), f32(y >> 24u));
}

// Element i.
fn wElem(i: u32, scales: u32) -> f32 {
  switch W_TYPE {
    case 1u: { return unpack2x16float(wWord(i >> 1u))[i & 1u]; }
    case 2u: {
      let x = wWord(i >> 1u);
      return bitcast<f32>(select(x << 16u, x & 0xffff0000u, (i & 1u) == 1u));
    }
    case 3u: { return bitcast<f32>(wWord(scales + (i >> 5u))) * wInt8(wWord(i >> 2u), i & 3u); }
    case 4u: { return bitcast<f32>(wWord(scales + (i >> 5u))) * (wNibble(i) - 8.0); }
    case 5u: {
      let s = scales + 2u * (i >> 5u);
      return bitcast<f32>(wWord(s)) * wNibble(i) + bitcast<f32>(wWord(s + 1u));
    }
    default: { return bitcast<f32>(wWord(i)); }
  }
}

// Elements 4g .. 4g+3 (a q8_0 / q4_0 / q4_1 block is 32 elements, so they share one scale).
fn wGroup(g: u32, scales: u32) -> vec4<f32> {
  switch W_TYPE {
    case 1u: {
      let v = w[g >> 1u];
      let h = select(v.xy, v.zw, (g & 1u) == 1u);
      return vec4<f32>(unpack2x16float(h.x), unpack2x16float(h.y));
    }
    case 2u: {
      let v = w[g >> 1u];
      let h = select(v.xy, v.zw, (g & 1u) == 1u);
      return bitcast<vec4<f32>>(vec4<u32>(h.x << 16u, h.x & 0xffff0000u, h.y << 16u, h.y & 0xffff0000u));
    }
    case 3u: {
      let x = wWord(g);
      let s = bitcast<f32>(wWord(scales + (g >> 3u)));
      return s * vec4<f32>(wInt8(x, 0u), wInt8(x, 1u), wInt8(x, 2u), wInt8(x, 3u));
    }
    case 4u: { return bitcast<f32>(wWord(scales + (g >> 3u))) * (wNibbles(g) - 8.0); }
    case 5u: {
      let s = scales + 2u * (g >> 3u);
      return bitcast<f32>(wWord(s)) * wNibbles(g) + bitcast<f32>(wWord(s + 1u));
    }
    default: { return bitcast<vec4<f32>>(w[g]); }
  }
}
