// Rotary position embedding on x [B, T, H, D]: pair i of row (b, t, h) rotates by angle p·θ^(−2i/D),
// p = positions[t] or offset + t; 'pairs' layout pairs (x[2i], x[2i+1]), 'half' pairs (x[i], x[i + D/2]);
// `sign` −1 rotates back (the adjoint).
//   table:     positions known at load: cos and sin come from a [T, D/2] table computed in float64 on the
//              host, so the angles carry no f32 rounding
//   dynamic:   positions read at run time: |p| (< 2³²) is split into five 7-bit digits and the rotation
//              composed from five [128, D/2] cos/sin tables (digit·128^level·freq, float64 on the host)
//              by the angle-sum identities, so no f32 angle is ever formed (an f32 angle p·freq is off by
//              about p·2⁻²⁴ radians, 2.4e-4 at p = 4096)

struct Params {
  B: u32,
  T: u32,
  H: u32,
  D: u32,
  sign: f32,
  // Threads along x of the folded grid.
  stride: u32,
  _p0: u32,
  _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> cosTable: array<f32>;
@group(0) @binding(4) var<storage, read_write> sinTable: array<f32>;
@group(0) @binding(5) var<storage, read_write> positions: array<i32>;

override HALF_LAYOUT: bool = false;

const WG = 256u;

fn rotate(i: u32, c: f32, s0: f32) {
  let half = p.D / 2u;
  let pair = i % half;
  let rowIndex = i / half;
  let o = rowIndex * p.D;
  var i0 = pair;
  var i1 = pair + half;
  if (!HALF_LAYOUT) {
    i0 = 2u * pair;
    i1 = 2u * pair + 1u;
  }
  let s = p.sign * s0;
  let x0 = x[o + i0];
  let x1 = x[o + i1];
  y[o + i0] = x0 * c - x1 * s;
  y[o + i1] = x0 * s + x1 * c;
}

// Thread i handles pair (i mod D/2) of row i div (D/2); rows are (b, t, h) in order.
@compute @workgroup_size(WG)
fn table(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.y * p.stride + id.x;
  let half = p.D / 2u;
  if (i >= p.B * p.T * p.H * half) { return; }
  let t = (i / (half * p.H)) % p.T;
  let k = t * half + i % half;
  rotate(i, cosTable[k], sinTable[k]);
}

// cos and sin of digit·128^level·freq[i], from the level tables.
fn level(lv: u32, digit: u32, i: u32) -> vec2<f32> {
  let k = (lv * 128u + digit) * (p.D / 2u) + i;
  return vec2<f32>(cosTable[k], sinTable[k]);
}

// (cos, sin) of a + b from those of a and b.
fn addAngles(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  return vec2<f32>(a.x * b.x - a.y * b.y, a.y * b.x + a.x * b.y);
}

@compute @workgroup_size(WG)
fn dynamic(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.y * p.stride + id.x;
  let half = p.D / 2u;
  if (i >= p.B * p.T * p.H * half) { return; }
  let t = (i / (half * p.H)) % p.T;
  let pos = positions[t];
  let pair = i % half;
  // abs wraps at −2³¹, whose bits read as u32 are still its magnitude.
  let mag = u32(abs(pos));
  var cs = level(0u, mag & 127u, pair);
  for (var lv = 1u; lv < 5u; lv++) { cs = addAngles(cs, level(lv, (mag >> (7u * lv)) & 127u, pair)); }
  // A negative position turns the other way.
  if (pos < 0) { cs.y = -cs.y; }
  rotate(i, cs.x, cs.y);
}
