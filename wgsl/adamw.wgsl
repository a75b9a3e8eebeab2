// Fused AdamW with decoupled weight decay, in place (see src/backends/js/kernels/adamw.ts):
//   g = grad · gradScale; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²
//   p = p · (1 − lr·wd) − lr · (m / bc1) / (√(v / bc2) + ε)
// The hyper-parameters change every step, so they come in a uniform written per call.

struct Hyper {
  lr: f32,
  beta1: f32,
  beta2: f32,
  eps: f32,
  decay: f32,
  gradScale: f32,
  bc1: f32,
  bc2: f32,
  // 1 − β1 and 1 − β2 from float64: 1 − f32(0.999) is off by 1.3e-5 relative.
  omb1: f32,
  omb2: f32,
  n: u32,
  // Threads along x of the folded 2-D grid.
  stride: u32,
}

@group(0) @binding(0) var<uniform> h: Hyper;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.y * h.stride + id.x;
  if (i >= h.n) { return; }
  let g = grad[i] * h.gradScale;
  let mi = h.beta1 * m[i] + h.omb1 * g;
  let vi = h.beta2 * v[i] + h.omb2 * g * g;
  m[i] = mi;
  v[i] = vi;
  param[i] = param[i] * h.decay - (h.lr * (mi / h.bc1)) / (sqrt(vi / h.bc2) + h.eps);
}
