// Batched matmul, row-major f32: C[b] = op(A[b]) · op(B[b]), op = identity or transpose.
//   A is [batch?, M, K] ([batch?, K, M] when TRANS_A), B is [batch?, K, N] ([batch?, N, K] when TRANS_B),
//   C is [batch, M, N]. A side shared across the batch has stride 0.
//
// Each workgroup computes a BM×BN tile of C; its 16×16 threads each keep a 4×4 register tile whose rows
// and columns are 16 apart, so that neighbouring threads touch neighbouring shared-memory words (no bank
// conflicts) and neighbouring C addresses (coalesced stores). K advances in steps of BK through two
// shared tiles laid out k-major (As[k][m], Bs[k][n]), whatever the transposes, so the inner loop is the
// same for all four variants; only the loads differ.
//
// A and B are bound as arrays of vec4 so that a load along a contiguous dimension whose length is a
// multiple of 4 (VEC_A / VEC_B) is one 16-byte access; otherwise the same binding is read per scalar.
//
// `small` is for products too small or too thin to fill 64×64 tiles (LoRA's rank-r factors, one
// token's rows): one thread per output element, operands read straight from memory, no barriers.

struct Params {
  M: u32,
  N: u32,
  K: u32,
  // First batch item of this dispatch (dispatches are split when the batch exceeds the z limit).
  batch0: u32,
  strideA: u32,
  strideB: u32,
  strideC: u32,
  // `small`: threads along x of the folded grid, and the whole batch (one dispatch covers it).
  threads: u32,
  batch: u32,
  _p0: u32,
  _p1: u32,
  _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
// The contiguous dimension of A (B) is a multiple of 4, so every aligned group of 4 is wholly in range.
override VEC_A: bool = false;
override VEC_B: bool = false;

const BM = 64u;
const BN = 64u;
const BK = 16u;

var<workgroup> As: array<f32, 1024>; // BK × BM
var<workgroup> Bs: array<f32, 1024>; // BK × BN

// Four consecutive elements of A starting at flat index i, of which the first n are in range.
fn loadA(i: u32, n: u32) -> vec4<f32> {
  if (VEC_A) {
    if (n == 4u) { return a[i >> 2u]; }
    return vec4<f32>(0.0);
  }
  var v = vec4<f32>(0.0);
  for (var e = 0u; e < n; e++) {
    let j = i + e;
    v[e] = a[j >> 2u][j & 3u];
  }
  return v;
}

fn loadB(i: u32, n: u32) -> vec4<f32> {
  if (VEC_B) {
    if (n == 4u) { return b[i >> 2u]; }
    return vec4<f32>(0.0);
  }
  var v = vec4<f32>(0.0);
  for (var e = 0u; e < n; e++) {
    let j = i + e;
    v[e] = b[j >> 2u][j & 3u];
  }
  return v;
}

// How many of the 4 elements from `start` along a dimension of length `len` exist, given that the
// other coordinate is in range.
fn span(start: u32, len: u32, otherOk: bool) -> u32 {
  if (!otherOk || start >= len) { return 0u; }
  return min(4u, len - start);
}

@compute @workgroup_size(16, 16, 1)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(local_invocation_index) t: u32,
) {
  let M = p.M;
  let N = p.N;
  let K = p.K;
  let bi = p.batch0 + wg.z;
  let aBase = bi * p.strideA;
  let bBase = bi * p.strideB;
  let cBase = bi * p.strideC;
  let m0 = wg.y * BM;
  let n0 = wg.x * BN;

  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);

  for (var k0 = 0u; k0 < K; k0 += BK) {
    // A tile: 64×16 values, 4 per thread.
    if (TRANS_A) {
      // A is [K, M]: rows of the tile are k, contiguous along m.
      let kk = t / 16u;
      let mm = (t % 16u) * 4u;
      let gk = k0 + kk;
      let gm = m0 + mm;
      let v = loadA(aBase + gk * M + gm, span(gm, M, gk < K));
      let d = kk * BM + mm;
      As[d] = v.x; As[d + 1u] = v.y; As[d + 2u] = v.z; As[d + 3u] = v.w;
    } else {
      // A is [M, K]: contiguous along k; the 4 values go to 4 rows of As.
      let mm = t / 4u;
      let kk = (t % 4u) * 4u;
      let gm = m0 + mm;
      let gk = k0 + kk;
      let v = loadA(aBase + gm * K + gk, span(gk, K, gm < M));
      As[kk * BM + mm] = v.x;
      As[(kk + 1u) * BM + mm] = v.y;
      As[(kk + 2u) * BM + mm] = v.z;
      As[(kk + 3u) * BM + mm] = v.w;
    }
    // B tile: 16×64 values.
    if (TRANS_B) {
      // B is [N, K]: contiguous along k.
      let nn = t / 4u;
      let kk = (t % 4u) * 4u;
      let gn = n0 + nn;
      let gk = k0 + kk;
      let v = loadB(bBase + gn * K + gk, span(gk, K, gn < N));
      Bs[kk * BN + nn] = v.x;
      Bs[(kk + 1u) * BN + nn] = v.y;
      Bs[(kk + 2u) * BN + nn] = v.z;
      Bs[(kk + 3u) * BN + nn] = v.w;
    } else {
      // B is [K, N]: contiguous along n.
      let kk = t / 16u;
      let nn = (t % 16u) * 4u;
      let gk = k0 + kk;
      let gn = n0 + nn;
      let v = loadB(bBase + gk * N + gn, span(gn, N, gk < K));
      let d = kk * BN + nn;
      Bs[d] = v.x; Bs[d + 1u] = v.y; Bs[d + 2u] = v.z; Bs[d + 3u] = v.w;
    }
    workgroupBarrier();

    for (var k = 0u; k < BK; k++) {
      let ar = k * BM + lid.y;
      let br = k * BN + lid.x;
      let bv = vec4<f32>(Bs[br], Bs[br + 16u], Bs[br + 32u], Bs[br + 48u]);
      acc0 = fma(vec4<f32>(As[ar]), bv, acc0);
      acc1 = fma(vec4<f32>(As[ar + 16u]), bv, acc1);
      acc2 = fma(vec4<f32>(As[ar + 32u]), bv, acc2);
      acc3 = fma(vec4<f32>(As[ar + 48u]), bv, acc3);
    }
    workgroupBarrier();
  }

  let acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
  for (var i = 0u; i < 4u; i++) {
    let row = m0 + lid.y + 16u * i;
    if (row >= M) { break; }
    let rowBase = cBase + row * N;
    for (var j = 0u; j < 4u; j++) {
      let col = n0 + lid.x + 16u * j;
      if (col < N) { c[rowBase + col] = acc[i][j]; }
    }
  }
}

fn elemA(i: u32) -> f32 { return a[i >> 2u][i & 3u]; }
fn elemB(i: u32) -> f32 { return b[i >> 2u][i & 3u]; }

@compute @workgroup_size(64)
fn small(@builtin(global_invocation_id) id: vec3<u32>) {
  let M = p.M;
  let N = p.N;
  let K = p.K;
  let idx = id.y * p.threads + id.x;
  if (idx >= p.strideC * p.batch) { return; }
  let bi = idx / p.strideC;
  let m = (idx % p.strideC) / N;
  let n = idx % N;
  let aBase = bi * p.strideA;
  let bBase = bi * p.strideB;
  var s = 0.0;
  for (var k = 0u; k < K; k++) {
    var x: f32;
    var y: f32;
    if (TRANS_A) { x = elemA(aBase + k * M + m); } else { x = elemA(aBase + m * K + k); }
    if (TRANS_B) { y = elemB(bBase + n * K + k); } else { y = elemB(bBase + k * N + n); }
    s = fma(x, y, s);
  }
  c[idx] = s;
}
