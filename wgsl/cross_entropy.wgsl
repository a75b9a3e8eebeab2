// Mean cross-entropy of logits [N, V] against targets (i32 [N]); a row counts when its target is in
// [0, V) and is not ignoreIndex (semantics in src/backends/js/kernels/nn.ts).
//   rows        one workgroup per row: log-sum-exp (max, then sum of exp), the row's loss and whether
//               it counts, into `rowLoss` / `rowCount`
//   total       one workgroup: loss = Σ rowLoss / max(1, Σ rowCount)
//   count       one workgroup: the number of counted rows, into `rowCount[0]`
//   grad_rows   one workgroup per row: dlogits = (softmax − onehot(target)) · dloss / count, zero rows
//               for rows that do not count

struct Params {
  N: u32,
  V: u32,
  ignoreIndex: i32,
  // Workgroups along x of the folded grid.
  stride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> targets: array<i32>;
@group(0) @binding(3) var<storage, read_write> rowLoss: array<f32>;
@group(0) @binding(4) var<storage, read_write> rowCount: array<f32>;
@group(0) @binding(5) var<storage, read_write> loss: array<f32>;
@group(0) @binding(6) var<storage, read_write> dloss: array<f32>;
@group(0) @binding(7) var<storage, read_write> dlogits: array<f32>;

// Threads per workgroup: a power of two the host sizes to the row (see norm.wgsl).
override WG: u32 = 256u;
var<workgroup> red: array<f32, WG>;
var<workgroup> red2: array<f32, WG>;
var<workgroup> rowCounts: u32;

fn counts(t: i32) -> bool { return t != p.ignoreIndex && t >= 0 && u32(t) < p.V; }

fn reduceMax(tid: u32, v: f32) -> f32 {
  red[tid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (tid < s) { red[tid] = max(red[tid], red[tid + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

fn reduceSum(tid: u32, v: f32) -> f32 {
  red[tid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (tid < s) { red[tid] += red[tid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

fn logSumExp(tid: u32, o: u32) -> f32 {
  var mx = -3.0e38;
  for (var j = tid; j < p.V; j += WG) { mx = max(mx, logits[o + j]); }
  mx = reduceMax(tid, mx);
  var z = 0.0;
  for (var j = tid; j < p.V; j += WG) { z += exp(logits[o + j] - mx); }
  return mx + log(reduceSum(tid, z));
}

@compute @workgroup_size(WG)
fn rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let n = wg.y * p.stride + wg.x;
  if (n >= p.N) { return; }
  let o = n * p.V;
  let lse = logSumExp(tid, o);
  if (tid == 0u) {
    let t = targets[n];
    if (counts(t)) {
      rowLoss[n] = lse - logits[o + u32(t)];
      rowCount[n] = 1.0;
    } else {
      rowLoss[n] = 0.0;
      rowCount[n] = 0.0;
    }
  }
}

@compute @workgroup_size(WG)
fn total(@builtin(local_invocation_index) tid: u32) {
  var s = 0.0;
  var c = 0.0;
  for (var n = tid; n < p.N; n += WG) {
    s += rowLoss[n];
    c += rowCount[n];
  }
  red2[tid] = c;
  let sum = reduceSum(tid, s);
  // red2 is reduced by hand: reduceSum owns `red`.
  workgroupBarrier();
  for (var w = WG / 2u; w > 0u; w /= 2u) {
    if (tid < w) { red2[tid] += red2[tid + w]; }
    workgroupBarrier();
  }
  if (tid == 0u) { loss[0] = sum / max(1.0, red2[0]); }
}

@compute @workgroup_size(WG)
fn count(@builtin(local_invocation_index) tid: u32) {
  var c = 0.0;
  for (var n = tid; n < p.N; n += WG) {
    if (counts(targets[n])) { c += 1.0; }
  }
  let total = reduceSum(tid, c);
  if (tid == 0u) { rowCount[0] = total; }
}

@compute @workgroup_size(WG)
fn grad_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let n = wg.y * p.stride + wg.x;
  if (n >= p.N) { return; }
  let o = n * p.V;
  let t = targets[n];
  // Read by every thread and branched on below: made uniform through workgroup memory first.
  if (tid == 0u) { rowCounts = select(0u, 1u, counts(t)); }
  let counted = workgroupUniformLoad(&rowCounts) != 0u;
  if (!counted) {
    for (var j = tid; j < p.V; j += WG) { dlogits[o + j] = 0.0; }
    return;
  }
  let lse = logSumExp(tid, o);
  let scale = dloss[0] / max(1.0, rowCount[0]);
  for (var j = tid; j < p.V; j += WG) {
    let onehot = select(0.0, 1.0, j == u32(t));
    dlogits[o + j] = (exp(logits[o + j] - lse) - onehot) * scale;
  }
}
