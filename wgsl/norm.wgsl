// RMSNorm and LayerNorm over the last axis (rows × D), forward and backward; semantics in
// src/backends/js/kernels/nn.ts.
//   rms_forward / layer_forward    one workgroup per row
//   rms_backward / layer_backward  one workgroup per row: dx, and the row's statistics kept in `stats`
//                                  (r for RMSNorm; mean and r for LayerNorm) for the weight gradient
//   col_partial                    weight (and bias) gradients summed over a chunk of rows per thread
//                                  column, into `pw` / `pb` ([chunks, D])
//   col_final                      sums the chunks into dw / db
// Row reductions run in two passes over the row (mean, then centred squares) as the reference does.

struct Params {
  rows: u32,
  D: u32,
  eps: f32,
  // Rows per chunk of the weight-gradient pass, and how many chunks.
  chunkRows: u32,
  chunks: u32,
  // Workgroups along x of the folded grid.
  stride: u32,
  _p0: u32,
  _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;
@group(0) @binding(7) var<storage, read_write> pw: array<f32>;
@group(0) @binding(8) var<storage, read_write> pb: array<f32>;
@group(0) @binding(9) var<storage, read_write> dw: array<f32>;
@group(0) @binding(10) var<storage, read_write> db: array<f32>;

override LAYER: bool = false;
// Threads per row: a power of two the host sizes to the row (many barrier steps over idle threads are
// what a CPU implementation of WebGPU pays most for). The column passes use COLS threads.
override WG: u32 = 256u;
const COLS = 256u;
var<workgroup> red0: array<f32, WG>;
var<workgroup> red1: array<f32, WG>;

// Sum of `v` over the workgroup; every thread gets the result.
fn sum0(t: u32, v: f32) -> f32 {
  red0[t] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (t < s) { red0[t] += red0[t + s]; }
    workgroupBarrier();
  }
  let r = red0[0];
  workgroupBarrier();
  return r;
}

// Two sums at once.
fn sum2(t: u32, u: f32, v: f32) -> vec2<f32> {
  red0[t] = u;
  red1[t] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (t < s) {
      red0[t] += red0[t + s];
      red1[t] += red1[t + s];
    }
    workgroupBarrier();
  }
  let r = vec2<f32>(red0[0], red1[0]);
  workgroupBarrier();
  return r;
}

fn rowOf(wg: vec3<u32>) -> u32 { return wg.y * p.stride + wg.x; }

@compute @workgroup_size(WG)
fn rms_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let row = rowOf(wg);
  if (row >= p.rows) { return; }
  let o = row * p.D;
  var ss = 0.0;
  for (var i = t; i < p.D; i += WG) { ss += x[o + i] * x[o + i]; }
  let r = 1.0 / sqrt(sum0(t, ss) / f32(p.D) + p.eps);
  for (var i = t; i < p.D; i += WG) { y[o + i] = x[o + i] * r * w[i]; }
}

@compute @workgroup_size(WG)
fn layer_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let row = rowOf(wg);
  if (row >= p.rows) { return; }
  let o = row * p.D;
  var s = 0.0;
  for (var i = t; i < p.D; i += WG) { s += x[o + i]; }
  let mu = sum0(t, s) / f32(p.D);
  var v = 0.0;
  for (var i = t; i < p.D; i += WG) { let c = x[o + i] - mu; v += c * c; }
  let r = 1.0 / sqrt(sum0(t, v) / f32(p.D) + p.eps);
  for (var i = t; i < p.D; i += WG) { y[o + i] = (x[o + i] - mu) * r * w[i] + bias[i]; }
}

// dx_i = r·w_i·dy_i − x_i·r³/D·Σ_j dy_j·w_j·x_j
@compute @workgroup_size(WG)
fn rms_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let row = rowOf(wg);
  if (row >= p.rows) { return; }
  let o = row * p.D;
  var ss = 0.0;
  var dot = 0.0;
  for (var i = t; i < p.D; i += WG) {
    let xi = x[o + i];
    ss += xi * xi;
    dot += dy[o + i] * w[i] * xi;
  }
  let sums = sum2(t, ss, dot);
  let r = 1.0 / sqrt(sums.x / f32(p.D) + p.eps);
  let c = sums.y * r * r * r / f32(p.D);
  for (var i = t; i < p.D; i += WG) { y[o + i] = r * w[i] * dy[o + i] - x[o + i] * c; }
  if (t == 0u) { stats[row] = r; }
}

// g = dy·w; dx = r·(g − mean(g) − x̂·mean(g·x̂))
@compute @workgroup_size(WG)
fn layer_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let row = rowOf(wg);
  if (row >= p.rows) { return; }
  let o = row * p.D;
  var s = 0.0;
  for (var i = t; i < p.D; i += WG) { s += x[o + i]; }
  let mu = sum0(t, s) / f32(p.D);
  var v = 0.0;
  for (var i = t; i < p.D; i += WG) { let c = x[o + i] - mu; v += c * c; }
  let r = 1.0 / sqrt(sum0(t, v) / f32(p.D) + p.eps);
  var mg = 0.0;
  var mgx = 0.0;
  for (var i = t; i < p.D; i += WG) {
    let g = dy[o + i] * w[i];
    mg += g;
    mgx += g * (x[o + i] - mu) * r;
  }
  let m = sum2(t, mg, mgx) / f32(p.D);
  for (var i = t; i < p.D; i += WG) {
    let xh = (x[o + i] - mu) * r;
    y[o + i] = r * (dy[o + i] * w[i] - m.x - xh * m.y);
  }
  if (t == 0u) {
    stats[2u * row] = mu;
    stats[2u * row + 1u] = r;
  }
}

// Thread (column i, chunk c): Σ over the chunk's rows of dy·x̂ (and dy for the bias).
@compute @workgroup_size(COLS)
fn col_partial(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x;
  let c = id.y;
  if (i >= p.D || c >= p.chunks) { return; }
  let r0 = c * p.chunkRows;
  let r1 = min(p.rows, r0 + p.chunkRows);
  var sw = 0.0;
  var sb = 0.0;
  for (var row = r0; row < r1; row++) {
    let g = dy[row * p.D + i];
    let xv = x[row * p.D + i];
    if (LAYER) {
      sw += g * (xv - stats[2u * row]) * stats[2u * row + 1u];
      sb += g;
    } else {
      sw += g * xv * stats[row];
    }
  }
  pw[c * p.D + i] = sw;
  if (LAYER) { pb[c * p.D + i] = sb; }
}

@compute @workgroup_size(COLS)
fn col_final(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x;
  if (i >= p.D) { return; }
  var sw = 0.0;
  var sb = 0.0;
  for (var c = 0u; c < p.chunks; c++) {
    sw += pw[c * p.D + i];
    if (LAYER) { sb += pb[c * p.D + i]; }
  }
  dw[i] = sw;
  if (LAYER) { db[i] = sb; }
}
