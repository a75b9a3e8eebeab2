// Data movement on 32-bit words, whatever their type (f32 or i32 bits pass through untouched):
//   fill     out[i] = word
//   copy     out[i] = src[i]                          (contiguous)
//   strided  out[dstBase + Σ idx·dstStride] = src[srcBase + Σ idx·srcStride] over an index space of up
//            to 8 dimensions: transpose, broadcast_to, slice, pad's interior, concat's parts
//   kv_write cache rows [pos, pos + T) ← rows, with pos read from the arena at run time
// Threads are laid out on a 2-D grid when one dimension's workgroup limit is too small; `stride` is
// the number of threads along x.

struct Flat {
  n: u32,
  stride: u32,
  word: u32,
  _pad: u32,
}

struct Strided {
  n: u32,
  stride: u32,
  rank: u32,
  srcBase: u32,
  dstBase: u32,
  _p0: u32,
  _p1: u32,
  _p2: u32,
  dims: array<vec4<u32>, 2>,
  srcStrides: array<vec4<u32>, 2>,
  dstStrides: array<vec4<u32>, 2>,
}

struct KvWrite {
  // Batch, cache length, rows per batch item, words per row (heads × head size).
  B: u32,
  S: u32,
  T: u32,
  row: u32,
  stride: u32,
  _p0: u32,
  _p1: u32,
  _p2: u32,
}

@group(0) @binding(0) var<uniform> flat: Flat;
@group(0) @binding(1) var<uniform> st: Strided;
@group(0) @binding(2) var<uniform> kv: KvWrite;
@group(0) @binding(3) var<storage, read_write> src: array<u32>;
@group(0) @binding(4) var<storage, read_write> dst: array<u32>;
@group(0) @binding(5) var<storage, read_write> pos: array<i32>;

const WG = 256u;

@compute @workgroup_size(WG)
fn fill(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.y * flat.stride + id.x;
  if (i < flat.n) { dst[i] = flat.word; }
}

@compute @workgroup_size(WG)
fn copy(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.y * flat.stride + id.x;
  if (i < flat.n) { dst[i] = src[i]; }
}

@compute @workgroup_size(WG)
fn strided(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.y * st.stride + id.x;
  if (i >= st.n) { return; }
  var rest = i;
  var s = st.srcBase;
  var d = st.dstBase;
  for (var k = i32(st.rank) - 1; k >= 0; k--) {
    let dim = st.dims[k / 4][k % 4];
    let idx = rest % dim;
    rest = rest / dim;
    s += idx * st.srcStrides[k / 4][k % 4];
    d += idx * st.dstStrides[k / 4][k % 4];
  }
  dst[d] = src[s];
}

@compute @workgroup_size(WG)
fn kv_write(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.y * kv.stride + id.x;
  if (i >= kv.B * kv.T * kv.row) { return; }
  let w = i % kv.row;
  let t = (i / kv.row) % kv.T;
  let b = i / (kv.row * kv.T);
  let p = pos[0] + i32(t);
  // Rows before the cache or past its end are dropped.
  if (p < 0 || p >= i32(kv.S)) { return; }
  dst[(b * kv.S + u32(p)) * kv.row + w] = src[i];
}
