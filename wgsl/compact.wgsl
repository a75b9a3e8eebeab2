// Reading a frozen weight in the layout it is stored in, not a kernel: files that bind such a weight
// declare `w: array<vec4<u32>>` holding its layout bytes and pull this in with `// #include compact`.
// Layouts (for n elements, row-major; the contract of src/quant):
//   f32   element i in word i
//   f16   element i in bytes [2i, 2i+2)                          (IEEE binary16)
//   bf16  element i in bytes [2i, 2i+2)                          (the top half of an f32)
//   q8_0  int8 quant i at byte i, then n/32 f32 scales           value = scale[i/32]·q
//   q4_0  block b's 32 nibbles in bytes [16b, 16b+16): byte j holds element 32b+j (low nibble) and
//         32b+j+16 (high nibble); then n/32 f32 scales           value = scale[i/32]·(nibble − 8)
// `scales` is the word index where the scale plane starts (q8_0: n/4, q4_0: n/8; unused otherwise).
// Every value is exact in f32: f16 and bf16 widen exactly, and a scale holds a binary16 value (11
// significant bits) times a quant of at most 8 bits.

// 0 f32, 1 f16, 2 bf16, 3 q8_0, 4 q4_0 (W_TYPES in src/backends/webgpu/kernels/compact.ts).
override W_TYPE: u32 = 0u;

fn wWord(i: u32) -> u32 { return w[i >> 2u][i & 3u]; }

// Byte e of x as a signed integer.
fn wInt8(x: u32, e: u32) -> f32 { return f32(bitcast<i32>(x << (24u - 8u * e)) >> 24u); }

// Element i.
fn wElem(i: u32, scales: u32) -> f32 {
  switch W_TYPE {
    case 1u: { return unpack2x16float(wWord(i >> 1u))[i & 1u]; }
    case 2u: {
      let x = wWord(i >> 1u);
      return bitcast<f32>(select(x << 16u, x & 0xffff0000u, (i & 1u) == 1u));
    }
    case 3u: { return bitcast<f32>(wWord(scales + (i >> 5u))) * wInt8(wWord(i >> 2u), i & 3u); }
    case 4u: {
      let j = i & 31u;
      let byte = (i >> 5u) * 16u + (j & 15u);
      let q = (wWord(byte >> 2u) >> (8u * (byte & 3u) + select(0u, 4u, j >= 16u))) & 15u;
      return bitcast<f32>(wWord(scales + (i >> 5u))) * (f32(q) - 8.0);
    }
    default: { return bitcast<f32>(wWord(i)); }
  }
}

// Elements 4g .. 4g+3 (a q8_0 / q4_0 block is 32 elements, so they share one scale).
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
    case 4u: {
      // Groups 0-3 of a block are the low nibbles of its 16 bytes, groups 4-7 the high ones.
      let x = wWord((g >> 3u) * 4u + (g & 3u));
      let y = (x >> select(0u, 4u, (g & 4u) != 0u)) & 0x0f0f0f0fu;
      let s = bitcast<f32>(wWord(scales + (g >> 3u)));
      return s * (vec4<f32>(f32(y & 255u), f32((y >> 8u) & 255u), f32((y >> 16u) & 255u), f32(y >> 24u)) - 8.0);
    }
    default: { return bitcast<vec4<f32>>(w[g]); }
  }
}
