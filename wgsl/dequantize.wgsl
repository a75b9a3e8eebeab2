// dequantize: out[i] = the value of element i of a weight in its compact layout (see compact.wgsl); exact.

struct Params {
  n: u32,
  // Threads along x of the folded grid.
  stride: u32,
  scales: u32,
  _p0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> w: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// #include compact

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.y * p.stride + gid.x;
  if (i >= p.n) { return; }
  out[i] = wElem(i, p.scales);
}
