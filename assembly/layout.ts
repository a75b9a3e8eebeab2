// Data movement: strided gathers (transpose, broadcast_to), row copies (slice, pad, concat, kv_write)
// and embedding lookup and its scatter-add. Elements are moved as 4-byte words, so f32 and i32 alike.
import { fill32 } from './simd';

// out[contiguous] = x[strided]. Descriptor (i32 words): out, x, rank, shape[rank], stride[rank], then
// rank words of index scratch; dimensions merged by the host.
export function gather(d: usize): void {
  const o = <usize>load<i32>(d);
  const x = <usize>load<i32>(d, 4);
  const r = load<i32>(d, 8);
  const shape = d + 12;
  const sx = shape + (<usize>r << 2);
  const idx = sx + (<usize>r << 2);
  const last = <usize>(r - 1) << 2;
  const n = load<i32>(shape + last);
  const inner = load<i32>(sx + last);
  let outer = 1;
  for (let k = 0; k < r - 1; k++) {
    outer *= load<i32>(shape + (<usize>k << 2));
    store<i32>(idx + (<usize>k << 2), 0);
  }
  let xo: usize = 0;
  for (let t = 0; t < outer; t++) {
    const dst = o + ((<usize>t * n) << 2);
    const src = x + (xo << 2);
    if (inner == 1) memory.copy(dst, src, <usize>n << 2);
    else if (inner == 0) fill32(dst, n, load<i32>(src));
    else for (let j = 0; j < n; j++) store<i32>(dst + (<usize>j << 2), load<i32>(src + ((<usize>j * inner) << 2)));
    for (let k = r - 2; k >= 0; k--) {
      const w = <usize>k << 2;
      const dim = load<i32>(shape + w);
      const v = load<i32>(idx + w) + 1;
      xo += <usize>load<i32>(sx + w);
      if (v < dim) {
        store<i32>(idx + w, v);
        break;
      }
      xo -= <usize>(load<i32>(sx + w) * dim);
      store<i32>(idx + w, 0);
    }
  }
}

/** rows × rowBytes from src (row stride srcStride bytes) to dst (row stride dstStride bytes). */
export function copyRows(dst: usize, dstStride: i32, src: usize, srcStride: i32, rows: i32, rowBytes: i32): void {
  for (let r = 0; r < rows; r++) {
    memory.copy(dst + <usize>r * <usize>dstStride, src + <usize>r * <usize>srcStride, <usize>rowBytes);
  }
}

export function zero(dst: usize, bytes: i32): void {
  memory.fill(dst, 0, <usize>bytes);
}

// kv_write: rows [B, T, row] into cache [B, S, row] at positions pos.. (pos read from memory); rows whose
// position falls outside [0, S) are dropped.
export function kvWrite(cache: usize, rows: usize, posPtr: usize, B: i32, T: i32, S: i32, row: i32): void {
  const pos = load<i32>(posPtr);
  const bytes = <usize>row << 2;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const p = pos + t;
      if (p < 0 || p >= S) continue;
      memory.copy(cache + <usize>(b * S + p) * bytes, rows + <usize>(b * T + t) * bytes, bytes);
    }
  }
}

// out[n] = table[ids[n]], or zeros for an id outside [0, V).
export function embedding(table: usize, ids: usize, out: usize, n: i32, V: i32, D: i32): void {
  const bytes = <usize>D << 2;
  for (let i = 0; i < n; i++) {
    const id = load<i32>(ids + (<usize>i << 2));
    const dst = out + <usize>i * bytes;
    if (id >= 0 && id < V) memory.copy(dst, table + <usize>id * bytes, bytes);
    else memory.fill(dst, 0, bytes);
  }
}

// dtable = 0; dtable[ids[n]] += dy[n] for ids inside [0, V), in order of n.
export function embeddingBackward(ids: usize, dy: usize, dtable: usize, n: i32, V: i32, D: i32): void {
  const bytes = <usize>D << 2;
  memory.fill(dtable, 0, <usize>V * bytes);
  for (let i = 0; i < n; i++) {
    const id = load<i32>(ids + (<usize>i << 2));
    if (id < 0 || id >= V) continue;
    const dst = dtable + <usize>id * bytes;
    const src = dy + <usize>i * bytes;
    let j = 0;
    for (; j + 4 <= D; j += 4) {
      const k = <usize>j << 2;
      v128.store(dst + k, f32x4.add(v128.load(dst + k), v128.load(src + k)));
    }
    for (; j < D; j++) {
      const k = <usize>j << 2;
      store<f32>(dst + k, load<f32>(dst + k) + load<f32>(src + k));
    }
  }
}
