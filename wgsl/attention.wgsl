// Fused scaled-dot-product attention with grouped-query heads, forward and backward, in tiles: no T×S
// score matrix is ever stored (semantics in src/backends/js/kernels/nn.ts).
//   q [B, T, Hq, D], k and v [B, S, Hkv, D], query head h reads key/value head h / (Hq / Hkv);
//   query t of batch row b sees keys lo(t) ≤ j < hi(t): valid = kvLen, the row's length (per-row
//   lengths, clamped to 0…S: the host cannot check them) or S; with causal masking the position is
//   pos = t + shift (shift = kvLen − T with kvLen, else S − T), hi = min(valid, pos + 1), and a window w
//   gives lo = max(0, pos − w + 1); both bounds grow with t. A soft-cap c makes a score s into c·tanh(s/c)
//   (and multiplies dS by 1 − tanh²).
//
//   forward   workgroup per (query tile, head, batch): online softmax over key tiles (running max m
//             and sum l per row, accumulator rescaled by exp(m_old − m_new)); writes out and lse
//   bwd_delta Δ = rowsum(dO ∘ O), one thread per query row
//   bwd_dq    workgroup per (query tile, head, batch): dQ = scale · Σ_j dS_j k_j over key tiles
//   bwd_dkdv  workgroup per (key tile, kv head, batch): dK = scale · Σ dSᵀq and dV = Σ Pᵀ dO over the
//             query tiles and over every query head of the group, so no two workgroups write one row
//             (no atomics)
//   with P = exp(s − lse), dP = dO·v, dS = P ∘ (dP − Δ).
//
// A workgroup has 64 threads; TILE rows per tile (query or key), TPR = 64 / TILE threads per row, and
// each thread owns EPT = DPAD / TPR elements of its row's accumulators (elements sub, sub + TPR, …).
// The host picks TILE so that the tiles fit the device's workgroup memory, and pads D to DPAD.

struct Params {
  B: u32,
  T: u32,
  Hq: u32,
  D: u32,
  S: u32,
  Hkv: u32,
  group: u32,
  causal: u32,
  scale: f32,
  // 0: no lengths input; 1: lengths[0] is kvLen; 2: lengths[b] are per-row key lengths.
  lengthsKind: u32,
  // Threads along x of the folded grid (bwd_delta).
  stride: u32,
  // −∞ for the lse of a row that sees no key; WGSL constants cannot hold it, so the host passes it.
  negInf: f32,
  // 0: no window.
  window: u32,
  // 0: no soft-cap.
  softcap: f32,
  // 1: an explicit mask i32 [T, S] (forward only) hides key j from query t where mask[t·S + j] is 0.
  hasMask: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> q: array<f32>;
@group(0) @binding(2) var<storage, read_write> k: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<storage, read_write> lengths: array<i32>;
@group(0) @binding(7) var<storage, read_write> dout: array<f32>;
@group(0) @binding(8) var<storage, read_write> delta: array<f32>;
@group(0) @binding(9) var<storage, read_write> dq: array<f32>;
@group(0) @binding(10) var<storage, read_write> dk: array<f32>;
@group(0) @binding(11) var<storage, read_write> dv: array<f32>;
@group(0) @binding(12) var<storage, read_write> mask: array<i32>;

const WG = 64u;
const MAXE = 16u;
const MAXT = 16u;
// Masked scores: a finite stand-in for −∞ (WGSL does not promise infinities in arithmetic).
const NEG = -3.0e38;
const NEG_HALF = -1.0e38;

override TILE: u32 = 16u;
override DPAD: u32 = 64u;
override TPR: u32 = WG / TILE;
override EPT: u32 = DPAD / TPR;

var<workgroup> Qs: array<f32, TILE * DPAD>;
var<workgroup> Ks: array<f32, TILE * DPAD>;
var<workgroup> Vs: array<f32, TILE * DPAD>;
var<workgroup> Os: array<f32, TILE * DPAD>;
var<workgroup> Ss: array<f32, TILE * TILE>;
var<workgroup> Ps: array<f32, TILE * TILE>;
var<workgroup> rowLse: array<f32, TILE>;
var<workgroup> rowDelta: array<f32, TILE>;
var<workgroup> validShared: i32;
// tanh saturates in f32 past this; some tanh implementations overflow beyond it.
const TANH_MAX = 15.0;

fn qIndex(b: u32, t: u32, h: u32) -> u32 { return ((b * p.T + t) * p.Hq + h) * p.D; }
fn kIndex(b: u32, j: u32, h: u32) -> u32 { return ((b * p.S + j) * p.Hkv + h) * p.D; }

// Shift from query index to position (see the header).
fn shiftOf(valid: i32) -> i32 {
  if (p.lengthsKind == 1u) { return valid - i32(p.T); }
  return i32(p.S) - i32(p.T);
}

// One past the last key query t sees.
fn hiKey(t: u32, valid: i32, shift: i32) -> i32 {
  if (p.causal == 0u) { return valid; }
  return clamp(i32(t) + shift + 1, 0, valid);
}

// The first key query t sees.
fn loKey(t: u32, shift: i32) -> i32 {
  if (p.causal == 0u || p.window == 0u) { return 0; }
  return max(0, i32(t) + shift - i32(p.window) + 1);
}

fn sees(t: u32, j: u32, valid: i32, shift: i32) -> bool {
  return i32(j) >= loKey(t, shift) && i32(j) < hiKey(t, valid, shift);
}

// The explicit mask's verdict (only asked once sees() holds, so j < S).
fn shown(t: u32, j: u32) -> bool {
  return p.hasMask == 0u || mask[t * p.S + j] != 0;
}

// A scaled score, soft-capped when asked.
fn capped(x: f32) -> f32 {
  if (p.softcap == 0.0) { return x; }
  return p.softcap * tanh(clamp(x / p.softcap, -TANH_MAX, TANH_MAX));
}

// dS factor of the soft-cap at a capped score c·tanh: 1 − tanh².
fn capSlope(s: f32) -> f32 {
  if (p.softcap == 0.0) { return 1.0; }
  let th = s / p.softcap;
  return 1.0 - th * th;
}

// Valid keys of batch row b, read once and made workgroup-uniform (it bounds loops that contain barriers).
fn validKeys(tid: u32, b: u32) -> i32 {
  if (tid == 0u) {
    var n = i32(p.S);
    if (p.lengthsKind == 1u) { n = clamp(lengths[0], 0, i32(p.S)); }
    if (p.lengthsKind == 2u) { n = clamp(lengths[b], 0, i32(p.S)); }
    validShared = n;
  }
  return workgroupUniformLoad(&validShared);
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let t0 = wg.x * TILE;
  let h = wg.y;
  let b = wg.z;
  let kvh = h / p.group;
  let valid = validKeys(tid, b);
  let shift = shiftOf(valid);
  let r = tid / TPR;
  let sub = tid % TPR;
  let t = t0 + r;

  for (var idx = tid; idx < TILE * DPAD; idx += WG) {
    let tt = t0 + idx / DPAD;
    let e = idx % DPAD;
    var x = 0.0;
    if (tt < p.T && e < p.D) { x = q[qIndex(b, tt, h) + e]; }
    Qs[idx] = x;
  }
  let kEnd = u32(hiKey(min(t0 + TILE, p.T) - 1u, valid, shift));
  let kStart = (u32(loKey(t0, shift)) / TILE) * TILE;

  var m = NEG;
  var l = 0.0;
  var acc: array<f32, MAXE>;
  var pc: array<f32, MAXT>;
  for (var k0 = kStart; k0 < kEnd; k0 += TILE) {
    workgroupBarrier();
    for (var idx = tid; idx < TILE * DPAD; idx += WG) {
      let j = k0 + idx / DPAD;
      let e = idx % DPAD;
      var kx = 0.0;
      var vx = 0.0;
      if (j < p.S && e < p.D) {
        kx = k[kIndex(b, j, kvh) + e];
        vx = v[kIndex(b, j, kvh) + e];
      }
      Ks[idx] = kx;
      Vs[idx] = vx;
    }
    workgroupBarrier();
    for (var pi = tid; pi < TILE * TILE; pi += WG) {
      let rr = pi / TILE;
      let cc = pi % TILE;
      var dot = 0.0;
      for (var e = 0u; e < DPAD; e++) { dot += Qs[rr * DPAD + e] * Ks[cc * DPAD + e]; }
      let tt = t0 + rr;
      var s = NEG;
      if (tt < p.T && sees(tt, k0 + cc, valid, shift) && shown(tt, k0 + cc)) { s = capped(dot * p.scale); }
      Ss[pi] = s;
    }
    workgroupBarrier();
    var mx = m;
    for (var c = 0u; c < TILE; c++) { mx = max(mx, Ss[r * TILE + c]); }
    let alpha = exp(m - mx);
    var sum = 0.0;
    for (var c = 0u; c < TILE; c++) {
      let s = Ss[r * TILE + c];
      var pv = 0.0;
      if (s > NEG_HALF) { pv = exp(s - mx); }
      pc[c] = pv;
      sum += pv;
    }
    l = l * alpha + sum;
    m = mx;
    for (var j = 0u; j < EPT; j++) {
      let e = sub + TPR * j;
      var o = acc[j] * alpha;
      for (var c = 0u; c < TILE; c++) { o += pc[c] * Vs[c * DPAD + e]; }
      acc[j] = o;
    }
  }

  if (t < p.T) {
    let o = qIndex(b, t, h);
    for (var j = 0u; j < EPT; j++) {
      let e = sub + TPR * j;
      if (e < p.D) { out[o + e] = select(0.0, acc[j] / l, l > 0.0); }
    }
    if (sub == 0u) { lse[(b * p.Hq + h) * p.T + t] = select(p.negInf, m + log(l), l > 0.0); }
  }
}

@compute @workgroup_size(WG)
fn bwd_delta(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.y * p.stride + id.x;
  if (i >= p.B * p.Hq * p.T) { return; }
  let t = i % p.T;
  let h = (i / p.T) % p.Hq;
  let b = i / (p.T * p.Hq);
  let o = qIndex(b, t, h);
  var s = 0.0;
  for (var e = 0u; e < p.D; e++) { s += dout[o + e] * out[o + e]; }
  delta[i] = s;
}

@compute @workgroup_size(WG)
fn bwd_dq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let t0 = wg.x * TILE;
  let h = wg.y;
  let b = wg.z;
  let kvh = h / p.group;
  let valid = validKeys(tid, b);
  let shift = shiftOf(valid);
  let r = tid / TPR;
  let sub = tid % TPR;
  let t = t0 + r;

  for (var idx = tid; idx < TILE * DPAD; idx += WG) {
    let tt = t0 + idx / DPAD;
    let e = idx % DPAD;
    var qx = 0.0;
    var ox = 0.0;
    if (tt < p.T && e < p.D) {
      qx = q[qIndex(b, tt, h) + e];
      ox = dout[qIndex(b, tt, h) + e];
    }
    Qs[idx] = qx;
    Os[idx] = ox;
  }
  for (var rr = tid; rr < TILE; rr += WG) {
    let tt = t0 + rr;
    var a = 0.0;
    var d = 0.0;
    if (tt < p.T) {
      a = lse[(b * p.Hq + h) * p.T + tt];
      d = delta[(b * p.Hq + h) * p.T + tt];
    }
    rowLse[rr] = a;
    rowDelta[rr] = d;
  }
  let kEnd = u32(hiKey(min(t0 + TILE, p.T) - 1u, valid, shift));
  let kStart = (u32(loKey(t0, shift)) / TILE) * TILE;

  var acc: array<f32, MAXE>;
  for (var k0 = kStart; k0 < kEnd; k0 += TILE) {
    workgroupBarrier();
    for (var idx = tid; idx < TILE * DPAD; idx += WG) {
      let j = k0 + idx / DPAD;
      let e = idx % DPAD;
      var kx = 0.0;
      var vx = 0.0;
      if (j < p.S && e < p.D) {
        kx = k[kIndex(b, j, kvh) + e];
        vx = v[kIndex(b, j, kvh) + e];
      }
      Ks[idx] = kx;
      Vs[idx] = vx;
    }
    workgroupBarrier();
    for (var pi = tid; pi < TILE * TILE; pi += WG) {
      let rr = pi / TILE;
      let cc = pi % TILE;
      let tt = t0 + rr;
      var ds = 0.0;
      if (tt < p.T && sees(tt, k0 + cc, valid, shift)) {
        var s = 0.0;
        var dp = 0.0;
        for (var e = 0u; e < DPAD; e++) {
          s += Qs[rr * DPAD + e] * Ks[cc * DPAD + e];
          dp += Os[rr * DPAD + e] * Vs[cc * DPAD + e];
        }
        let sc = capped(s * p.scale);
        let pr = exp(sc - rowLse[rr]);
        ds = pr * (dp - rowDelta[rr]) * capSlope(sc);
      }
      Ss[pi] = ds;
    }
    workgroupBarrier();
    for (var j = 0u; j < EPT; j++) {
      let e = sub + TPR * j;
      var a = acc[j];
      for (var c = 0u; c < TILE; c++) { a += Ss[r * TILE + c] * Ks[c * DPAD + e]; }
      acc[j] = a;
    }
  }

  if (t < p.T) {
    let o = qIndex(b, t, h);
    for (var j = 0u; j < EPT; j++) {
      let e = sub + TPR * j;
      if (e < p.D) { dq[o + e] = acc[j] * p.scale; }
    }
  }
}

@compute @workgroup_size(WG)
fn bwd_dkdv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let k0 = wg.x * TILE;
  let kvh = wg.y;
  let b = wg.z;
  let valid = validKeys(tid, b);
  let shift = shiftOf(valid);
  let c = tid / TPR;
  let sub = tid % TPR;
  let j = k0 + c;

  for (var idx = tid; idx < TILE * DPAD; idx += WG) {
    let jj = k0 + idx / DPAD;
    let e = idx % DPAD;
    var kx = 0.0;
    var vx = 0.0;
    if (jj < p.S && e < p.D) {
      kx = k[kIndex(b, jj, kvh) + e];
      vx = v[kIndex(b, jj, kvh) + e];
    }
    Ks[idx] = kx;
    Vs[idx] = vx;
  }

  var accK: array<f32, MAXE>;
  var accV: array<f32, MAXE>;
  if (i32(k0) < valid) {
    // The first query that sees key k0 (visibility grows with t), rounded down to a tile, and one past
    // the last that sees key k0 + TILE − 1 (a window ends it).
    var first = 0;
    var last = i32(p.T);
    if (p.causal != 0u) { first = max(0, i32(k0) - shift); }
    if (p.causal != 0u && p.window != 0u) { last = clamp(i32(k0 + TILE) + i32(p.window) - 1 - shift, 0, i32(p.T)); }
    let qStart = (u32(first) / TILE) * TILE;
    for (var g = 0u; g < p.group; g++) {
      let h = kvh * p.group + g;
      for (var t0 = qStart; t0 < u32(last); t0 += TILE) {
        workgroupBarrier();
        for (var idx = tid; idx < TILE * DPAD; idx += WG) {
          let tt = t0 + idx / DPAD;
          let e = idx % DPAD;
          var qx = 0.0;
          var ox = 0.0;
          if (tt < p.T && e < p.D) {
            qx = q[qIndex(b, tt, h) + e];
            ox = dout[qIndex(b, tt, h) + e];
          }
          Qs[idx] = qx;
          Os[idx] = ox;
        }
        for (var rr = tid; rr < TILE; rr += WG) {
          let tt = t0 + rr;
          var a = 0.0;
          var d = 0.0;
          if (tt < p.T) {
            a = lse[(b * p.Hq + h) * p.T + tt];
            d = delta[(b * p.Hq + h) * p.T + tt];
          }
          rowLse[rr] = a;
          rowDelta[rr] = d;
        }
        workgroupBarrier();
        for (var pi = tid; pi < TILE * TILE; pi += WG) {
          let rr = pi / TILE;
          let cc = pi % TILE;
          let tt = t0 + rr;
          var pr = 0.0;
          var ds = 0.0;
          if (tt < p.T && sees(tt, k0 + cc, valid, shift)) {
            var s = 0.0;
            var dp = 0.0;
            for (var e = 0u; e < DPAD; e++) {
              s += Qs[rr * DPAD + e] * Ks[cc * DPAD + e];
              dp += Os[rr * DPAD + e] * Vs[cc * DPAD + e];
            }
            let sc = capped(s * p.scale);
            pr = exp(sc - rowLse[rr]);
            ds = pr * (dp - rowDelta[rr]) * capSlope(sc);
          }
          Ps[pi] = pr;
          Ss[pi] = ds;
        }
        workgroupBarrier();
        for (var jj = 0u; jj < EPT; jj++) {
          let e = sub + TPR * jj;
          var ak = accK[jj];
          var av = accV[jj];
          for (var rr = 0u; rr < TILE; rr++) {
            av += Ps[rr * TILE + c] * Os[rr * DPAD + e];
            ak += Ss[rr * TILE + c] * Qs[rr * DPAD + e];
          }
          accK[jj] = ak;
          accV[jj] = av;
        }
      }
    }
  }

  if (j < p.S) {
    let o = kIndex(b, j, kvh);
    for (var jj = 0u; jj < EPT; jj++) {
      let e = sub + TPR * jj;
      if (e < p.D) {
        dk[o + e] = accK[jj] * p.scale;
        dv[o + e] = accV[jj];
      }
    }
  }
}
