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
// B may be a frozen weight stored compactly (f16, bf16, q8_0, q4_0, q4_1: W_TYPE, see compact.wgsl), bound as
// its raw layout and dequantised while the tiles load; it is then 2-D ([N, K] or [K, N]) and its
// contiguous dimension a multiple of 32 for the quantised types, so its loads are whole groups of 4.
//
// `large` is the same scheme scaled up for big products (a GPU's regime): 128×128 tiles, an 8×8 register
// tile per thread read from shared memory as vec4s (64 FMAs per 4 shared loads), and the next K-slice
// fetched from global memory into registers while the current one is being multiplied.
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
  // Word index of B's scale plane (q8_0, q4_0, q4_1).
  wScales: u32,
  _p1: u32,
  _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> w: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

// #include compact

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

// B's elements come through compact.wgsl's readers, which are plain loads when W_TYPE is f32.
fn loadB(i: u32, n: u32) -> vec4<f32> {
  if (VEC_B) {
    if (n == 4u) { return wGroup(i >> 2u, p.wScales); }
    return vec4<f32>(0.0);
  }
  var v = vec4<f32>(0.0);
  for (var e = 0u; e < n; e++) {
    v[e] = wElem(i + e, p.wScales);
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

// ---------------------------------------------------------------------------------------------- large

const LBM = 128u;
const LBN = 128u;
const LBK = 8u;

// k-major like As/Bs, four consecutive m (n) per vec4: row k of the A tile is AsL[k*32 .. k*32+31].
var<workgroup> AsL: array<vec4<f32>, 256>; // LBK × LBM/4
var<workgroup> BsL: array<vec4<f32>, 256>; // LBK × LBN/4

// The one vec4 of the A (B) slice at k0 that thread t brings in: 128×8 values, 4 per thread.
fn fetchA(aBase: u32, m0: u32, k0: u32, t: u32) -> vec4<f32> {
  if (TRANS_A) {
    // A is [K, M], contiguous along m: thread t takes row k = t/32, m = 4·(t%32).
    let gk = k0 + t / 32u;
    let gm = m0 + (t % 32u) * 4u;
    return loadA(aBase + gk * p.M + gm, span(gm, p.M, gk < p.K));
  }
  // A is [M, K], contiguous along k: thread t takes m = t/2, k = 4·(t%2) (two threads share a row's 32 bytes).
  let gm = m0 + t / 2u;
  let gk = k0 + (t % 2u) * 4u;
  return loadA(aBase + gm * p.K + gk, span(gk, p.K, gm < p.M));
}

fn fetchB(bBase: u32, n0: u32, k0: u32, t: u32) -> vec4<f32> {
  if (TRANS_B) {
    // B is [N, K], contiguous along k.
    let gn = n0 + t / 2u;
    let gk = k0 + (t % 2u) * 4u;
    return loadB(bBase + gn * p.K + gk, span(gk, p.K, gn < p.N));
  }
  // B is [K, N], contiguous along n.
  let gk = k0 + t / 32u;
  let gn = n0 + (t % 32u) * 4u;
  return loadB(bBase + gk * p.N + gn, span(gn, p.N, gk < p.K));
}

// Put what fetchA returned where the tile wants it: as is when it runs along m, else spread over 4 k rows.
fn stashA(v: vec4<f32>, t: u32) {
  if (TRANS_A) {
    AsL[t] = v;
    return;
  }
  let m = t / 2u;
  let k = (t % 2u) * 4u;
  let i = k * 32u + m / 4u;
  let j = m % 4u;
  AsL[i][j] = v.x;
  AsL[i + 32u][j] = v.y;
  AsL[i + 64u][j] = v.z;
  AsL[i + 96u][j] = v.w;
}

fn stashB(v: vec4<f32>, t: u32) {
  if (!TRANS_B) {
    BsL[t] = v;
    return;
  }
  let n = t / 2u;
  let k = (t % 2u) * 4u;
  let i = k * 32u + n / 4u;
  let j = n % 4u;
  BsL[i][j] = v.x;
  BsL[i + 32u][j] = v.y;
  BsL[i + 64u][j] = v.z;
  BsL[i + 96u][j] = v.w;
}

// Four consecutive outputs of one row, those in range.
fn storeRow(cBase: u32, row: u32, col: u32, v: vec4<f32>) {
  if (row >= p.M) { return; }
  let at = cBase + row * p.N + col;
  if (col + 3u < p.N) {
    c[at] = v.x; c[at + 1u] = v.y; c[at + 2u] = v.z; c[at + 3u] = v.w;
    return;
  }
  for (var e = 0u; e < 4u; e++) {
    if (col + e < p.N) { c[at + e] = v[e]; }
  }
}

// Thread (tx, ty) owns rows {4ty .. 4ty+3} ∪ {64+4ty .. 64+4ty+3} and the same columns with tx: the
// halves 64 apart keep a warp's shared reads on distinct banks and its stores on neighbouring addresses.
@compute @workgroup_size(16, 16, 1)
fn large(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(local_invocation_index) t: u32,
) {
  let bi = p.batch0 + wg.z;
  let aBase = bi * p.strideA;
  let bBase = bi * p.strideB;
  let cBase = bi * p.strideC;
  let m0 = wg.y * LBM;
  let n0 = wg.x * LBN;
  let tx = lid.x;
  let ty = lid.y;

  // acc<r><h>: row r of the thread's 8 (r < 4: first half), column half h.
  var acc00 = vec4<f32>(0.0); var acc01 = vec4<f32>(0.0);
  var acc10 = vec4<f32>(0.0); var acc11 = vec4<f32>(0.0);
  var acc20 = vec4<f32>(0.0); var acc21 = vec4<f32>(0.0);
  var acc30 = vec4<f32>(0.0); var acc31 = vec4<f32>(0.0);
  var acc40 = vec4<f32>(0.0); var acc41 = vec4<f32>(0.0);
  var acc50 = vec4<f32>(0.0); var acc51 = vec4<f32>(0.0);
  var acc60 = vec4<f32>(0.0); var acc61 = vec4<f32>(0.0);
  var acc70 = vec4<f32>(0.0); var acc71 = vec4<f32>(0.0);

  var nextA = fetchA(aBase, m0, 0u, t);
  var nextB = fetchB(bBase, n0, 0u, t);
  for (var k0 = 0u; k0 < p.K; k0 += LBK) {
    stashA(nextA, t);
    stashB(nextB, t);
    workgroupBarrier();
    // The next slice's global loads are in flight while this one is multiplied.
    if (k0 + LBK < p.K) {
      nextA = fetchA(aBase, m0, k0 + LBK, t);
      nextB = fetchB(bBase, n0, k0 + LBK, t);
    }
    for (var k = 0u; k < LBK; k++) {
      let a0 = AsL[k * 32u + ty];
      let a1 = AsL[k * 32u + 16u + ty];
      let b0 = BsL[k * 32u + tx];
      let b1 = BsL[k * 32u + 16u + tx];
      acc00 = fma(vec4<f32>(a0.x), b0, acc00); acc01 = fma(vec4<f32>(a0.x), b1, acc01);
      acc10 = fma(vec4<f32>(a0.y), b0, acc10); acc11 = fma(vec4<f32>(a0.y), b1, acc11);
      acc20 = fma(vec4<f32>(a0.z), b0, acc20); acc21 = fma(vec4<f32>(a0.z), b1, acc21);
      acc30 = fma(vec4<f32>(a0.w), b0, acc30); acc31 = fma(vec4<f32>(a0.w), b1, acc31);
      acc40 = fma(vec4<f32>(a1.x), b0, acc40); acc41 = fma(vec4<f32>(a1.x), b1, acc41);
      acc50 = fma(vec4<f32>(a1.y), b0, acc50); acc51 = fma(vec4<f32>(a1.y), b1, acc51);
      acc60 = fma(vec4<f32>(a1.z), b0, acc60); acc61 = fma(vec4<f32>(a1.z), b1, acc61);
      acc70 = fma(vec4<f32>(a1.w), b0, acc70); acc71 = fma(vec4<f32>(a1.w), b1, acc71);
    }
    workgroupBarrier();
  }

  let r0 = m0 + ty * 4u;
  let r1 = m0 + 64u + ty * 4u;
  let q0 = n0 + tx * 4u;
  let q1 = n0 + 64u + tx * 4u;
  storeRow(cBase, r0, q0, acc00); storeRow(cBase, r0, q1, acc01);
  storeRow(cBase, r0 + 1u, q0, acc10); storeRow(cBase, r0 + 1u, q1, acc11);
  storeRow(cBase, r0 + 2u, q0, acc20); storeRow(cBase, r0 + 2u, q1, acc21);
  storeRow(cBase, r0 + 3u, q0, acc30); storeRow(cBase, r0 + 3u, q1, acc31);
  storeRow(cBase, r1, q0, acc40); storeRow(cBase, r1, q1, acc41);
  storeRow(cBase, r1 + 1u, q0, acc50); storeRow(cBase, r1 + 1u, q1, acc51);
  storeRow(cBase, r1 + 2u, q0, acc60); storeRow(cBase, r1 + 2u, q1, acc61);
  storeRow(cBase, r1 + 3u, q0, acc70); storeRow(cBase, r1 + 3u, q1, acc71);
}

// ---------------------------------------------------------------------------------------------- small

fn elemA(i: u32) -> f32 { return a[i >> 2u][i & 3u]; }
fn elemB(i: u32) -> f32 { return wElem(i, p.wScales); }

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
