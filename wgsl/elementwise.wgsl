// Elementwise f32 ops, selected by the override OP:
//   unary   out = f(x)                 scale(0) neg(1) exp(2) log(3) sqrt(4) silu(5) gelu(6) erf(7) tanh(8) relu(9)
//   binary  out = f(a, b) broadcast    add(0) sub(1) mul(2) div(3) silu_backward(4) gelu_backward(5) relu_backward(6)
//           (for the backward ops a is x and b is dy)
//   accumulate  acc += x  (in place)
//   dropout     out = keep(seed, i) ? x / (1 − p) : 0, with the counter hash of src/graph/ops/elementwise.ts
//   uniform     out = a number in (0, 1) from the same hash
// With CONTIG the operands have the output's shape and are read at the output's index; otherwise each
// operand's offset comes from its broadcast strides over the output's (merged) dimensions.

struct Params {
  n: u32,
  stride: u32,
  rank: u32,
  // dropout: words whose hash is below this are dropped (⌈p·2²⁴⌉); seed salt.
  threshold: u32,
  factor: f32,
  salt: i32,
  _p0: u32,
  _p1: u32,
  dims: array<vec4<u32>, 2>,
  sa: array<vec4<u32>, 2>,
  sb: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> seed: array<i32>;

override OP: u32 = 0u;
override CONTIG: bool = true;

const WG = 256u;
const GELU_C = 0.7978845608028654; // √(2/π)

fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }

// tanh through exp of a non-positive argument: no overflow, and odd symmetry restores the sign.
fn tanh_(x: f32) -> f32 {
  let e = exp(-2.0 * abs(x));
  return sign(x) * (1.0 - e) / (1.0 + e);
}

// erf by Numerical Recipes' Chebyshev-fitted erfc (fractional error below 1.2e-7), as the other backends.
fn erf_(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
    + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}

fn unaryOp(x: f32) -> f32 {
  switch (OP) {
    case 0u: { return x * p.factor; }
    case 1u: { return -x; }
    case 2u: { return exp(x); }
    case 3u: { return log(x); }
    case 4u: { return sqrt(x); }
    case 5u: { return x * sigmoid(x); }
    case 7u: { return erf_(x); }
    case 8u: { return tanh_(x); }
    case 9u: { return max(x, 0.0); }
    default: { return 0.5 * x * (1.0 + tanh_(GELU_C * (x + 0.044715 * x * x * x))); }
  }
}

fn binaryOp(x: f32, y: f32) -> f32 {
  switch (OP) {
    case 0u: { return x + y; }
    case 1u: { return x - y; }
    case 2u: { return x * y; }
    case 3u: { return x / y; }
    case 4u: {
      let s = sigmoid(x);
      return y * s * (1.0 + x * (1.0 - s));
    }
    case 6u: { return select(0.0, y, x > 0.0); }
    default: {
      let t = tanh_(GELU_C * (x + 0.044715 * x * x * x));
      return y * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * 0.044715 * x * x));
    }
  }
}

@compute @workgroup_size(WG)
fn unary(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.y * p.stride + id.x;
  if (i < p.n) { out[i] = unaryOp(a[i]); }
}

@compute @workgroup_size(WG)
fn binary(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.y * p.stride + id.x;
  if (i >= p.n) { return; }
  if (CONTIG) {
    out[i] = binaryOp(a[i], b[i]);
    return;
  }
  var rest = i;
  var ia = 0u;
  var ib = 0u;
  for (var k = i32(p.rank) - 1; k >= 0; k--) {
    let dim = p.dims[k / 4][k % 4];
    let idx = rest % dim;
    rest = rest / dim;
    ia += idx * p.sa[k / 4][k % 4];
    ib += idx * p.sb[k / 4][k % 4];
  }
  out[i] = binaryOp(a[ia], b[ib]);
}

@compute @workgroup_size(WG)
fn accumulate(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.y * p.stride + id.x;
  if (i < p.n) { out[i] = out[i] + a[i]; }
}

fn dropHash(s: i32, i: u32) -> u32 {
  var h = u32(s) * 0x9e3779b1u + i * 0x85ebca77u;
  h ^= h >> 15u; h *= 0x2c1b3c6du;
  h ^= h >> 12u; h *= 0x297a2d39u;
  h ^= h >> 15u;
  return h >> 8u;
}

// uniform_noise (the uniform op; `uniform` is a WGSL keyword): out = (⌊hash(seed + salt, i)/2⌋ + ½)·2⁻²³, exact in f32 (the uniform op of src/graph/ops/elementwise.ts).
@compute @workgroup_size(WG)
fn uniform_noise(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.y * p.stride + id.x;
  if (i >= p.n) { return; }
  out[i] = (f32(dropHash(seed[0] + p.salt, i) >> 1u) + 0.5) * (1.0 / 8388608.0);
}

@compute @workgroup_size(WG)
fn dropout(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.y * p.stride + id.x;
  if (i >= p.n) { return; }
  let s = seed[0] + p.salt;
  out[i] = select(0.0, a[i] * p.factor, dropHash(s, i) >= p.threshold);
}
