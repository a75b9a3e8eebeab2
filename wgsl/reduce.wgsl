// sum / mean of x over some axes. The host merges adjacent axes so that x is seen as kept dimensions
// (giving the output's index, row-major) and reduced dimensions (up to 4 of each), each with x's strides.
//   rows:   one workgroup per output element; threads stride over the reduced elements and combine in
//           shared memory (long reductions)
//   serial: one thread per output element (short reductions, many outputs)
// The result is multiplied by `factor` (1 for sum, 1/count for mean).

struct Params {
  outputs: u32,
  count: u32,
  keptRank: u32,
  redRank: u32,
  factor: f32,
  // Workgroups (rows) or threads (serial) along x of the folded grid.
  stride: u32,
  _p0: u32,
  _p1: u32,
  keptDims: vec4<u32>,
  keptStrides: vec4<u32>,
  redDims: vec4<u32>,
  redStrides: vec4<u32>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// Threads per output in `rows`: a power of two the host sizes to the reduction (see norm.wgsl).
override WG: u32 = 256u;
const SERIAL_WG = 256u;
var<workgroup> partial: array<f32, WG>;

fn baseOf(o: u32) -> u32 {
  var rest = o;
  var off = 0u;
  for (var k = i32(p.keptRank) - 1; k >= 0; k--) {
    let d = p.keptDims[k];
    off += (rest % d) * p.keptStrides[k];
    rest /= d;
  }
  return off;
}

fn redOffset(r: u32) -> u32 {
  var rest = r;
  var off = 0u;
  for (var k = i32(p.redRank) - 1; k >= 0; k--) {
    let d = p.redDims[k];
    off += (rest % d) * p.redStrides[k];
    rest /= d;
  }
  return off;
}

@compute @workgroup_size(WG)
fn rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let o = wg.y * p.stride + wg.x;
  // Uniform across the workgroup, so the early return cannot split a barrier.
  if (o >= p.outputs) { return; }
  let base = baseOf(o);
  var s = 0.0;
  for (var r = t; r < p.count; r += WG) { s += x[base + redOffset(r)]; }
  partial[t] = s;
  workgroupBarrier();
  for (var w = WG / 2u; w > 0u; w /= 2u) {
    if (t < w) { partial[t] += partial[t + w]; }
    workgroupBarrier();
  }
  if (t == 0u) { out[o] = partial[0] * p.factor; }
}

@compute @workgroup_size(SERIAL_WG)
fn serial(@builtin(global_invocation_id) id: vec3<u32>) {
  let o = id.y * p.stride + id.x;
  if (o >= p.outputs) { return; }
  let base = baseOf(o);
  var s = 0.0;
  for (var r = 0u; r < p.count; r++) { s += x[base + redOffset(r)]; }
  out[o] = s * p.factor;
}
