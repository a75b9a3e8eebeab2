// Embedding lookup and its adjoint (semantics in src/backends/js/kernels/nn.ts):
//   gather       out[n, e] = table[ids[n], e], a zero row for an id outside [0, V); the table `w` is f32
//                or a frozen table in its compact layout (compact.wgsl)
//   scatter_add  dtable[ids[n], e] += dy[n, e] for ids in range; dtable is zeroed first by the host.
//                WGSL has no floating-point atomics, so the add is a compare-exchange loop on the
//                word's bits; rows that repeat an id are summed in whatever order they land.

struct Params {
  N: u32,
  D: u32,
  V: u32,
  // Threads along x of the folded grid.
  stride: u32,
  // Word index of the table's scale plane (q8_0, q4_0, q4_1).
  scales: u32,
  _p0: u32,
  _p1: u32,
  _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> ids: array<i32>;
@group(0) @binding(2) var<storage, read_write> w: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dtable: array<atomic<u32>>;

// #include compact

const WG = 256u;

@compute @workgroup_size(WG)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.y * p.stride + gid.x;
  if (i >= p.N * p.D) { return; }
  let n = i / p.D;
  let e = i % p.D;
  let id = ids[n];
  var x = 0.0;
  if (id >= 0 && u32(id) < p.V) { x = wElem(u32(id) * p.D + e, p.scales); }
  out[i] = x;
}

@compute @workgroup_size(WG)
fn scatter_add(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.y * p.stride + gid.x;
  if (i >= p.N * p.D) { return; }
  let n = i / p.D;
  let e = i % p.D;
  let id = ids[n];
  if (id < 0 || u32(id) >= p.V) { return; }
  let at = u32(id) * p.D + e;
  let g = dy[i];
  var old = atomicLoad(&dtable[at]);
  loop {
    let r = atomicCompareExchangeWeak(&dtable[at], old, bitcast<u32>(bitcast<f32>(old) + g));
    if (r.exchanged) { break; }
    old = r.old_value;
  }
}
