// Batched f32 matmul, row-major: C[b] = op(A[b]) · op(B[b]), op = identity or transpose.
// Goto/BLIS structure: B is packed into KC×NR micro-panels (one stays in L1 while a micro-kernel call
// runs), A into MR×KC micro-panels of an MC×KC block (kept in L2), and an MR×8 register tile does the
// arithmetic. V8 gives a function 15 xmm registers on x64 (it keeps one as scratch); see tile().
import { hsum, madd } from './simd';
import { nextTask } from './tasks';
import { DT_BF16, DT_F16, DT_F32, DT_Q4_0, DT_Q4_1, DT_Q8_0, dequant4, dequant8, dequantOne, dequantRow } from './compact';

// Job descriptor, i32 words (byte pointers into linear memory).
export const MM_A = 0;
export const MM_B = 1;
export const MM_C = 2;
export const MM_BATCH = 3;
export const MM_M = 4;
export const MM_N = 5;
export const MM_K = 6;
export const MM_FLAGS = 7; // 1: transA, 2: transB, 4: accumulate into C
export const MM_STRIDE_A = 8; // elements between batch items; 0 = shared by all
export const MM_STRIDE_B = 9;
export const MM_STRIDE_C = 10;
export const MM_SCRATCH = 11; // per-thread scratch: base + tid * MM_SCRATCH_STRIDE
export const MM_SCRATCH_STRIDE = 12;
export const MM_COUNTER = 13;
export const MM_B_TYPE = 14; // how B is stored: DT_* of assembly/compact.ts (compact B is 2-D, shared)
export const MM_B_SCALES = 15; // byte pointer to B's block scales (q8_0, q4_0)

const MR = ASC_FEATURE_RELAXED_SIMD ? 6 : 5;
const NR = 8;
const KC = 256;
const MC = 120;
const NC = 1024;
// At most this many rows of C go through gemv(): packing B would cost more than the product itself.
// Whole jobs split rows only in runs of several MR, so this choice never depends on the thread count.
const GEMV_ROWS = 4;
const GEMV_COLS = 1024;

// Bytes of scratch one thread needs for gemm(): a packed A block, a packed B block, one spill tile and
// NR rows of a compact B widened before packing.
export function gemmScratchBytes(): i32 {
  return (MC * KC + KC * NC + MR * NR + NR * KC) * 4;
}

// One MR×NR tile over kc steps: C = tile (add false) or C += tile (add true); ldc in bytes. Inlined
// into two wrappers so neither has a branch on `add`. Adding C after the loop made V8 spill
// accumulators inside it; starting the accumulators from C does not.
// Rows beyond MR compile away. V8's scheduler hoists all of one k step's loads above its FMAs, so a
// tile fits when accumulators + NR/4 + MR <= 15; 6x8 with fused madd fits, while plain mul+add needs a
// product register too and runs best at 5x8.
@inline function tile(kc: i32, pa: usize, pb: usize, c: usize, ldc: usize, add: bool): void {
  let c00 = f32x4.splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  let c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  if (add) {
    c00 = v128.load(c); c01 = v128.load(c, 16);
    c10 = v128.load(c + ldc); c11 = v128.load(c + ldc, 16);
    c20 = v128.load(c + 2 * ldc); c21 = v128.load(c + 2 * ldc, 16);
    c30 = v128.load(c + 3 * ldc); c31 = v128.load(c + 3 * ldc, 16);
    c40 = v128.load(c + 4 * ldc); c41 = v128.load(c + 4 * ldc, 16);
    if (MR > 5) {
      c50 = v128.load(c + 5 * ldc); c51 = v128.load(c + 5 * ldc, 16);
    }
  }
  for (let k = 0; k < kc; k++) {
    const b0 = v128.load(pb);
    const b1 = v128.load(pb, 16);
    let a = v128.load32_splat(pa);
    c00 = madd(a, b0, c00); c01 = madd(a, b1, c01);
    a = v128.load32_splat(pa, 4);
    c10 = madd(a, b0, c10); c11 = madd(a, b1, c11);
    a = v128.load32_splat(pa, 8);
    c20 = madd(a, b0, c20); c21 = madd(a, b1, c21);
    a = v128.load32_splat(pa, 12);
    c30 = madd(a, b0, c30); c31 = madd(a, b1, c31);
    a = v128.load32_splat(pa, 16);
    c40 = madd(a, b0, c40); c41 = madd(a, b1, c41);
    if (MR > 5) {
      a = v128.load32_splat(pa, 20);
      c50 = madd(a, b0, c50); c51 = madd(a, b1, c51);
    }
    pa += MR * 4;
    pb += NR * 4;
  }
  v128.store(c, c00); v128.store(c, c01, 16); c += ldc;
  v128.store(c, c10); v128.store(c, c11, 16); c += ldc;
  v128.store(c, c20); v128.store(c, c21, 16); c += ldc;
  v128.store(c, c30); v128.store(c, c31, 16); c += ldc;
  v128.store(c, c40); v128.store(c, c41, 16);
  if (MR > 5) {
    c += ldc;
    v128.store(c, c50); v128.store(c, c51, 16);
  }
}

function tileStore(kc: i32, pa: usize, pb: usize, c: usize, ldc: usize): void {
  tile(kc, pa, pb, c, ldc, false);
}

function tileAdd(kc: i32, pa: usize, pb: usize, c: usize, ldc: usize): void {
  tile(kc, pa, pb, c, ldc, true);
}

function copyTile(src: usize, lds: usize, dst: usize, ldd: usize, rows: i32, cols: i32): void {
  for (let r = 0; r < rows; r++) {
    memory.copy(dst + <usize>r * ldd, src + <usize>r * lds, <usize>cols << 2);
  }
}

// Reads four rows of four floats (row stride ld bytes) and stores them transposed: the four values of
// column q go to dst + q·dstStep. The packing routines use it to turn row-major strips k-major.
@inline function transposeStore4(src: usize, ld: usize, dst: usize, dstStep: usize): void {
  const r0 = v128.load(src), r1 = v128.load(src + ld), r2 = v128.load(src + 2 * ld), r3 = v128.load(src + 3 * ld);
  const t0 = i32x4.shuffle(r0, r1, 0, 4, 1, 5);
  const t1 = i32x4.shuffle(r2, r3, 0, 4, 1, 5);
  const t2 = i32x4.shuffle(r0, r1, 2, 6, 3, 7);
  const t3 = i32x4.shuffle(r2, r3, 2, 6, 3, 7);
  v128.store(dst, i64x2.shuffle(t0, t1, 0, 2));
  v128.store(dst + dstStep, i64x2.shuffle(t0, t1, 1, 3));
  v128.store(dst + 2 * dstStep, i64x2.shuffle(t2, t3, 0, 2));
  v128.store(dst + 3 * dstStep, i64x2.shuffle(t2, t3, 1, 3));
}

// Packs rows [i0, i0+mc) × depth [k0, k0+kc) of op(A) into MR-row micro-panels, k-major, zero-padded.
// lda is the row length of A as stored, in elements.
function packA(a: usize, lda: i32, trans: bool, i0: i32, mc: i32, k0: i32, kc: i32, dst: usize): void {
  for (let ir = 0; ir < mc; ir += MR) {
    const rows = min(MR, mc - ir);
    if (trans) {
      // A stored [K, M]: the MR values of one k are contiguous.
      let src = a + ((<usize>k0 * lda + i0 + ir) << 2);
      const step = <usize>lda << 2;
      if (rows == MR) {
        for (let k = 0; k < kc; k++) {
          v128.store(dst, v128.load(src));
          if (MR > 5) store<u64>(dst, load<u64>(src, 16), 16);
          else store<f32>(dst, load<f32>(src, 16), 16);
          src += step;
          dst += MR * 4;
        }
      } else {
        for (let k = 0; k < kc; k++) {
          let r = 0;
          for (; r < rows; r++) store<f32>(dst + (r << 2), load<f32>(src + (r << 2)));
          for (; r < MR; r++) store<f32>(dst + (r << 2), 0);
          src += step;
          dst += MR * 4;
        }
      }
    } else if (rows == MR) {
      // A stored [M, K], a full panel: rows 0-3 go through 4×4 transposes, the rest one by one.
      const src = a + ((<usize>(i0 + ir) * lda + k0) << 2);
      const ld = <usize>lda << 2;
      let k = 0;
      for (; k + 4 <= kc; k += 4) {
        transposeStore4(src + (<usize>k << 2), ld, dst + (<usize>k * MR << 2), MR * 4);
      }
      for (; k < kc; k++) {
        for (let r = 0; r < 4; r++) store<f32>(dst + ((<usize>k * MR + r) << 2), load<f32>(src + <usize>r * ld + (<usize>k << 2)));
      }
      for (let r = 4; r < MR; r++) {
        let d = dst + (<usize>r << 2);
        let p = src + <usize>r * ld;
        for (k = 0; k < kc; k++) {
          store<f32>(d, load<f32>(p));
          p += 4;
          d += MR * 4;
        }
      }
      dst += <usize>kc * MR * 4;
    } else {
      // A stored [M, K]: read each row contiguously, scatter with stride MR.
      for (let r = 0; r < MR; r++) {
        let d = dst + (r << 2);
        if (r < rows) {
          let src = a + ((<usize>(i0 + ir + r) * lda + k0) << 2);
          for (let k = 0; k < kc; k++) {
            store<f32>(d, load<f32>(src));
            src += 4;
            d += MR * 4;
          }
        } else {
          for (let k = 0; k < kc; k++) {
            store<f32>(d, 0);
            d += MR * 4;
          }
        }
      }
      dst += <usize>kc * MR * 4;
    }
  }
}

// Packs depth [k0, k0+kc) × columns [j0, j0+nc) of op(B) into NR-column micro-panels, k-major, zero-padded.
function packB(b: usize, ldb: i32, trans: bool, k0: i32, kc: i32, j0: i32, nc: i32, dst: usize): void {
  for (let jr = 0; jr < nc; jr += NR) {
    const cols = min(NR, nc - jr);
    if (!trans) {
      // B stored [K, N]: the NR values of one k are contiguous.
      let src = b + ((<usize>k0 * ldb + j0 + jr) << 2);
      const step = <usize>ldb << 2;
      if (cols == NR) {
        for (let k = 0; k < kc; k++) {
          v128.store(dst, v128.load(src));
          v128.store(dst, v128.load(src, 16), 16);
          src += step;
          dst += NR * 4;
        }
      } else {
        for (let k = 0; k < kc; k++) {
          let j = 0;
          for (; j < cols; j++) store<f32>(dst + (j << 2), load<f32>(src + (j << 2)));
          for (; j < NR; j++) store<f32>(dst + (j << 2), 0);
          src += step;
          dst += NR * 4;
        }
      }
    } else if (cols == NR) {
      // B stored [N, K], a full panel: 4×4 transposes of rows j..j+3 and j+4..j+7.
      const src = b + ((<usize>(j0 + jr) * ldb + k0) << 2);
      const ld = <usize>ldb << 2;
      let k = 0;
      for (; k + 4 <= kc; k += 4) {
        transposeStore4(src + (<usize>k << 2), ld, dst + (<usize>k * NR << 2), NR * 4);
        transposeStore4(src + 4 * ld + (<usize>k << 2), ld, dst + (<usize>k * NR << 2) + 16, NR * 4);
      }
      for (; k < kc; k++) {
        for (let j = 0; j < NR; j++) store<f32>(dst + ((<usize>k * NR + j) << 2), load<f32>(src + <usize>j * ld + (<usize>k << 2)));
      }
      dst += <usize>kc * NR * 4;
    } else {
      // B stored [N, K], a partial panel: read each column of op(B) contiguously, scatter with stride NR.
      for (let j = 0; j < NR; j++) {
        let d = dst + (j << 2);
        if (j < cols) {
          let src = b + ((<usize>(j0 + jr + j) * ldb + k0) << 2);
          for (let k = 0; k < kc; k++) {
            store<f32>(d, load<f32>(src));
            src += 4;
            d += NR * 4;
          }
        } else {
          for (let k = 0; k < kc; k++) {
            store<f32>(d, 0);
            d += NR * 4;
          }
        }
      }
      dst += <usize>kc * NR * 4;
    }
  }
}

// Two rows of A against four rows of B stored [N, K] (op(B) = Bᵀ): eight dot products over K, written
// to C (or added to it). a1 == a0 makes it one row (the duplicate results are not stored).
function dots2x4(a0: usize, a1: usize, b: usize, ldb: usize, K: i32, c0: usize, c1: usize, two: bool, accumulate: bool): void {
  let s00 = f32x4.splat(0), s01 = s00, s02 = s00, s03 = s00, s10 = s00, s11 = s00, s12 = s00, s13 = s00;
  const b1 = b + ldb, b2 = b1 + ldb, b3 = b2 + ldb;
  let k = 0;
  for (; k + 4 <= K; k += 4) {
    const o = <usize>k << 2;
    const x0 = v128.load(a0 + o), x1 = v128.load(a1 + o);
    const y0 = v128.load(b + o), y1 = v128.load(b1 + o), y2 = v128.load(b2 + o), y3 = v128.load(b3 + o);
    s00 = madd(x0, y0, s00); s01 = madd(x0, y1, s01); s02 = madd(x0, y2, s02); s03 = madd(x0, y3, s03);
    s10 = madd(x1, y0, s10); s11 = madd(x1, y1, s11); s12 = madd(x1, y2, s12); s13 = madd(x1, y3, s13);
  }
  let r00 = hsum(s00), r01 = hsum(s01), r02 = hsum(s02), r03 = hsum(s03);
  let r10 = hsum(s10), r11 = hsum(s11), r12 = hsum(s12), r13 = hsum(s13);
  for (; k < K; k++) {
    const o = <usize>k << 2;
    const x0 = load<f32>(a0 + o), x1 = load<f32>(a1 + o);
    const y0 = load<f32>(b + o), y1 = load<f32>(b1 + o), y2 = load<f32>(b2 + o), y3 = load<f32>(b3 + o);
    r00 += x0 * y0; r01 += x0 * y1; r02 += x0 * y2; r03 += x0 * y3;
    r10 += x1 * y0; r11 += x1 * y1; r12 += x1 * y2; r13 += x1 * y3;
  }
  if (accumulate) {
    r00 += load<f32>(c0); r01 += load<f32>(c0, 4); r02 += load<f32>(c0, 8); r03 += load<f32>(c0, 12);
  }
  store<f32>(c0, r00); store<f32>(c0, r01, 4); store<f32>(c0, r02, 8); store<f32>(c0, r03, 12);
  if (two) {
    if (accumulate) {
      r10 += load<f32>(c1); r11 += load<f32>(c1, 4); r12 += load<f32>(c1, 8); r13 += load<f32>(c1, 12);
    }
    store<f32>(c1, r10); store<f32>(c1, r11, 4); store<f32>(c1, r12, 8); store<f32>(c1, r13, 12);
  }
}

// A few rows of C as matrix-vector products that read B once per row pair, with no packing: decoding
// one token, or attention for one query. A row of op(A) that is strided (transA) is copied to `tmp`.
// B is read in its stored type (assembly/compact.ts); tmp holds 4·K floats for the copies of A and
// 4·K more for widened rows of a compact B stored [N, K].
@inline function gemvT(
  type: i32, a: usize, lda: i32, transA: bool, b: usize, scales: usize, ldb: i32, transB: bool, c: usize,
  ldcElems: i32, K: i32, accumulate: bool, m0: i32, m1: i32, n0: i32, n1: i32, tmp: usize,
): void {
  const ldc = <usize>ldcElems << 2;
  // Contiguous copies of the rows of op(A), each K floats, when A is stored transposed.
  if (transA) {
    for (let i = m0; i < m1; i++) {
      const dst = tmp + (<usize>(i - m0) * K << 2);
      for (let k = 0; k < K; k++) store<f32>(dst + (<usize>k << 2), load<f32>(a + ((<usize>k * lda + i) << 2)));
    }
  }
  const rowBase = transA ? tmp : a + (<usize>m0 * lda << 2);
  const rowStride: usize = transA ? <usize>K << 2 : <usize>lda << 2;
  if (transB) {
    // Four rows of B at a time, against every row pair. A compact B's four rows are first widened into
    // tmp (after the copies of A), 8 values at a time, and then read as float32.
    const wide = tmp + (transA ? <usize>(m1 - m0) * K << 2 : 0);
    for (let j = n0; j < n1; j += 4) {
      const rows = min(4, n1 - j);
      let bj = b + (<usize>j * ldb << 2), ld = <usize>ldb << 2;
      if (type != DT_F32) {
        for (let r = 0; r < rows; r++) dequantRow(type, b, scales, <usize>(j + r) * ldb, <usize>K, wide + (<usize>r * K << 2));
        bj = wide;
        ld = <usize>K << 2;
      }
      for (let i = m0; i < m1; i += 2) {
        const two = i + 1 < m1;
        const a0 = rowBase + <usize>(i - m0) * rowStride, a1 = two ? a0 + rowStride : a0;
        const c0 = c + <usize>i * ldc + (<usize>j << 2), c1 = two ? c0 + ldc : c0;
        if (rows == 4) {
          dots2x4(a0, a1, bj, ld, K, c0, c1, two, accumulate);
          continue;
        }
        for (let r = 0; r < rows; r++) {
          const br = bj + <usize>r * ld, o = <usize>r << 2;
          let r0: f32 = accumulate ? load<f32>(c0 + o) : 0;
          let r1: f32 = two && accumulate ? load<f32>(c1 + o) : 0;
          let s0: f32 = 0, s1: f32 = 0;
          for (let k = 0; k < K; k++) {
            const y = load<f32>(br + (<usize>k << 2));
            s0 += load<f32>(a0 + (<usize>k << 2)) * y;
            s1 += load<f32>(a1 + (<usize>k << 2)) * y;
          }
          store<f32>(c0 + o, r0 + s0);
          if (two) store<f32>(c1 + o, r1 + s1);
        }
      }
    }
    return;
  }
  // B stored [K, N]: each C row is Σ_k a_k · B[k, :], over column blocks that stay in L1.
  for (let j0 = n0; j0 < n1; j0 += GEMV_COLS) {
    const nb = min(GEMV_COLS, n1 - j0);
    for (let i = m0; i < m1; i++) {
      if (!accumulate) memory.fill(c + <usize>i * ldc + (<usize>j0 << 2), 0, <usize>nb << 2);
    }
    for (let k = 0; k < K; k++) {
      const ek = <usize>k * ldb + j0;
      for (let i = m0; i < m1; i++) {
        const x = load<f32>(rowBase + <usize>(i - m0) * rowStride + (<usize>k << 2));
        const xv = f32x4.splat(x);
        const crow = c + <usize>i * ldc + (<usize>j0 << 2);
        let j = 0;
        for (; j + 4 <= nb; j += 4) {
          const o = <usize>j << 2;
          v128.store(crow + o, madd(xv, dequant4(type, b, scales, ek + j), v128.load(crow + o)));
        }
        for (; j < nb; j++) {
          const o = <usize>j << 2;
          store<f32>(crow + o, load<f32>(crow + o) + x * dequantOne(type, b, scales, ek + j));
        }
      }
    }
  }
}

function gemv(
  type: i32, a: usize, lda: i32, transA: bool, b: usize, scales: usize, ldb: i32, transB: bool, c: usize,
  ldc: i32, K: i32, accumulate: bool, m0: i32, m1: i32, n0: i32, n1: i32, tmp: usize,
): void {
  if (type == DT_F32) gemvT(DT_F32, a, lda, transA, b, scales, ldb, transB, c, ldc, K, accumulate, m0, m1, n0, n1, tmp);
  else if (type == DT_F16) gemvT(DT_F16, a, lda, transA, b, scales, ldb, transB, c, ldc, K, accumulate, m0, m1, n0, n1, tmp);
  else if (type == DT_BF16) gemvT(DT_BF16, a, lda, transA, b, scales, ldb, transB, c, ldc, K, accumulate, m0, m1, n0, n1, tmp);
  else if (type == DT_Q8_0) gemvT(DT_Q8_0, a, lda, transA, b, scales, ldb, transB, c, ldc, K, accumulate, m0, m1, n0, n1, tmp);
  else if (type == DT_Q4_0) gemvT(DT_Q4_0, a, lda, transA, b, scales, ldb, transB, c, ldc, K, accumulate, m0, m1, n0, n1, tmp);
  else gemvT(DT_Q4_1, a, lda, transA, b, scales, ldb, transB, c, ldc, K, accumulate, m0, m1, n0, n1, tmp);
}

// packB for a compact B: the same panels, of the exact dequantised values. Stored [N, K] (transposed),
// the panel's rows are widened into `tmp` and packed from there as float32; stored [K, N], the NR
// values of one k are contiguous and widen straight into place (8 at a time, which for the q types
// needs the row length to be a multiple of 32, as their layout does).
@inline function packRowsT(type: i32, b: usize, scales: usize, ldb: usize, k0: i32, kc: i32, col: usize, dst: usize): void {
  let e = <usize>k0 * ldb + col;
  for (let k = 0; k < kc; k++) {
    dequant8(type, b, scales, e, dst);
    e += ldb;
    dst += NR * 4;
  }
}

function packBCompact(
  type: i32, b: usize, scales: usize, ldb: i32, trans: bool, k0: i32, kc: i32, j0: i32, nc: i32, dst: usize, tmp: usize,
): void {
  for (let jr = 0; jr < nc; jr += NR) {
    const cols = min(NR, nc - jr);
    const panel = dst + <usize>jr * kc * 4;
    if (trans) {
      for (let j = 0; j < cols; j++) {
        dequantRow(type, b, scales, <usize>(j0 + jr + j) * ldb + k0, <usize>kc, tmp + <usize>j * kc * 4);
      }
      packB(tmp, kc, true, 0, kc, 0, cols, panel);
    } else if (cols == NR) {
      const col = <usize>(j0 + jr), ld = <usize>ldb;
      if (type == DT_F16) packRowsT(DT_F16, b, scales, ld, k0, kc, col, panel);
      else if (type == DT_BF16) packRowsT(DT_BF16, b, scales, ld, k0, kc, col, panel);
      else if (type == DT_Q8_0) packRowsT(DT_Q8_0, b, scales, ld, k0, kc, col, panel);
      else if (type == DT_Q4_0) packRowsT(DT_Q4_0, b, scales, ld, k0, kc, col, panel);
      else packRowsT(DT_Q4_1, b, scales, ld, k0, kc, col, panel);
    } else {
      let d = panel;
      for (let k = 0; k < kc; k++) {
        dequantRow(type, b, scales, <usize>(k0 + k) * ldb + j0 + jr, <usize>cols, d);
        memory.fill(d + (<usize>cols << 2), 0, <usize>(NR - cols) << 2);
        d += NR * 4;
      }
    }
  }
}

// C[m0:m1, n0:n1] (+)= op(A) · op(B). lda, ldb, ldc: elements between rows of A, B, C as stored, so
// a matrix may be a strided view (one head of a [T, H, D] tensor). scratch: gemmScratchBytes().
// bType: how B is stored (DT_*); a compact B is widened to the exact float32 values while it is packed,
// so the result is bit for bit the float32 product of the dequantised weight.
export function gemm(
  a: usize, lda: i32, transA: bool, b: usize, ldb: i32, transB: bool, c: usize, ldcElems: i32,
  K: i32, accumulate: bool, m0: i32, m1: i32, n0: i32, n1: i32, scratch: usize,
  bType: i32 = DT_F32, bScales: usize = 0,
): void {
  const pa = scratch;
  const pb = pa + MC * KC * 4;
  const spill = pb + KC * NC * 4;
  const widen = spill + MR * NR * 4;
  const ldc = <usize>ldcElems << 2;
  if (K == 0) {
    if (!accumulate) {
      for (let i = m0; i < m1; i++) memory.fill(c + <usize>i * ldc + (<usize>n0 << 2), 0, <usize>(n1 - n0) << 2);
    }
    return;
  }
  // (A transposed is first copied into the B packing area, which must hold those rows, and then the
  // widened rows of a compact B stored transposed.)
  const gemvTmp = (transA ? (m1 - m0) * K : 0) + (bType != DT_F32 && transB ? 4 * K : 0);
  if (m1 - m0 <= GEMV_ROWS && gemvTmp <= KC * NC) {
    gemv(bType, a, lda, transA, b, bScales, ldb, transB, c, ldcElems, K, accumulate, m0, m1, n0, n1, pb);
    return;
  }
  for (let jc = n0; jc < n1; jc += NC) {
    const nc = min(NC, n1 - jc);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = min(KC, K - pc);
      const add = accumulate || pc > 0;
      if (bType == DT_F32) packB(b, ldb, transB, pc, kc, jc, nc, pb);
      else packBCompact(bType, b, bScales, ldb, transB, pc, kc, jc, nc, pb, widen);
      for (let ic = m0; ic < m1; ic += MC) {
        const mc = min(MC, m1 - ic);
        packA(a, lda, transA, ic, mc, pc, kc, pa);
        for (let jr = 0; jr < nc; jr += NR) {
          const cols = min(NR, nc - jr);
          const pbj = pb + <usize>jr * kc * 4;
          for (let ir = 0; ir < mc; ir += MR) {
            const rows = min(MR, mc - ir);
            const pai = pa + <usize>ir * kc * 4;
            const cp = c + <usize>(ic + ir) * ldc + (<usize>(jc + jr) << 2);
            if (rows == MR && cols == NR) {
              if (add) tileAdd(kc, pai, pbj, cp, ldc);
              else tileStore(kc, pai, pbj, cp, ldc);
            } else {
              // An edge tile goes through a full-size spill tile. Both tile functions keep two call
              // sites this way, so binaryen leaves them out of line with their own register allocation.
              if (add) {
                copyTile(cp, ldc, spill, NR * 4, rows, cols);
                tileAdd(kc, pai, pbj, spill, NR * 4);
              } else {
                tileStore(kc, pai, pbj, spill, NR * 4);
              }
              copyTile(spill, NR * 4, cp, ldc, rows, cols);
            }
          }
        }
      }
    }
  }
}

// Splits each batch item into tm × tn tasks, enough for every thread to pull a couple so that load
// evens out, but not so many that re-packing B for every row range costs much. Every thread computes
// the same split. A task's rows and columns never change how any element is summed, so results are
// bit-identical for every thread count.
export function matmulJob(d: usize, tid: i32, nth: i32): void {
  const a = <usize>load<i32>(d, MM_A * 4);
  const b = <usize>load<i32>(d, MM_B * 4);
  const c = <usize>load<i32>(d, MM_C * 4);
  const batch = load<i32>(d, MM_BATCH * 4);
  const M = load<i32>(d, MM_M * 4);
  const N = load<i32>(d, MM_N * 4);
  const K = load<i32>(d, MM_K * 4);
  const flags = load<i32>(d, MM_FLAGS * 4);
  const sa = <usize>load<i32>(d, MM_STRIDE_A * 4) << 2;
  const sb = <usize>load<i32>(d, MM_STRIDE_B * 4) << 2;
  const sc = <usize>load<i32>(d, MM_STRIDE_C * 4) << 2;
  const scratch = <usize>load<i32>(d, MM_SCRATCH * 4) + <usize>tid * <usize>load<i32>(d, MM_SCRATCH_STRIDE * 4);
  const bType = load<i32>(d, MM_B_TYPE * 4);
  const bScales = <usize>load<i32>(d, MM_B_SCALES * 4);
  const mBlocks = (M + MR - 1) / MR;
  const nBlocks = (N + NR - 1) / NR;
  let tm = 1, tn = 1;
  if (nth > 1) {
    const perItem = (2 * nth + batch - 1) / batch;
    if (bType == DT_F32) {
      tm = min(perItem, max(1, mBlocks / 4));
      tn = min((perItem + tm - 1) / tm, max(1, nBlocks / 4));
    } else {
      // Columns first: every task widens the part of a compact B it uses, so tasks over the same
      // columns would widen it again, while re-packing f32 rows of A costs little.
      tn = min(perItem, max(1, nBlocks / 4));
      tm = min((perItem + tn - 1) / tn, max(1, mBlocks / 4));
    }
  }
  const perItem = tm * tn;
  const total = batch * perItem;
  for (let t = nextTask(d + MM_COUNTER * 4); t < total; t = nextTask(d + MM_COUNTER * 4)) {
    const item = t / perItem;
    const r = t - item * perItem;
    const mi = r / tn;
    const ni = r - mi * tn;
    const m0 = (mi * mBlocks / tm) * MR;
    const m1 = min(M, ((mi + 1) * mBlocks / tm) * MR);
    const n0 = (ni * nBlocks / tn) * NR;
    const n1 = min(N, ((ni + 1) * nBlocks / tn) * NR);
    const transA = (flags & 1) != 0;
    const transB = (flags & 2) != 0;
    gemm(
      a + <usize>item * sa, transA ? M : K, transA, b + <usize>item * sb, transB ? K : N, transB,
      c + <usize>item * sc, N, K, (flags & 4) != 0, m0, m1, n0, n1, scratch, bType, bScales,
    );
  }
}
