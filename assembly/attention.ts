// Attention, q [B, T, Hq, D], k and v [B, S, Hkv, D], query head h reading kv head h / (Hq / Hkv).
// Query t of batch row b sees keys lo(t) ≤ j < hi(t) (semantics in src/backends/js/kernels/nn.ts):
// valid keys are kvLen, the row's own length (rowLen, i32 [B]) or S; with causal masking the query's
// position is p = t + kvLen − T (t + S − T without kvLen), hi = min(valid, p + 1), and a window w gives
// lo = max(0, p − w + 1). Both bounds grow with t. A soft-cap c turns each score s into c·tanh(s/c).
// Work goes in blocks of TB queries of one head: scores for the block's keys lo(t0)…hi(t0 + TB − 1)
// come from one gemm (Q·Kᵀ), softmax runs row by row in place, a second gemm gives P·V. Only a TB × S
// block of scores is ever held, per thread.
import { gemm, gemmScratchBytes } from './matmul';
import { expInPlace } from './loss';
import { dotf, expv, maxf, scalef } from './simd';
import { nextTask } from './tasks';

export const AT_Q = 0;
export const AT_K = 1;
export const AT_V = 2;
export const AT_OUT = 3;
export const AT_LSE = 4;
export const AT_B = 5;
export const AT_T = 6;
export const AT_HQ = 7;
export const AT_D = 8;
export const AT_S = 9;
export const AT_HKV = 10;
export const AT_SCALE = 11; // f32 bits
export const AT_CAUSAL = 12;
export const AT_KVLEN = 13; // pointer to an i32, or 0
export const AT_SCRATCH = 14;
export const AT_SCRATCH_STRIDE = 15;
export const AT_COUNTER = 16;
export const AT_DOUT = 17; // backward only
export const AT_DQ = 18;
export const AT_DK = 19;
export const AT_DV = 20;
export const AT_WINDOW = 21; // 0: none
export const AT_SOFTCAP = 22; // f32 bits; 0: none
export const AT_ROWLEN = 23; // pointer to i32 [B] (valid keys per batch row), or 0
export const AT_MASK = 24; // pointer to i32 [T, S] (0: key hidden from that query), or 0; forward only

const TB = 64;

/** Bytes of per-thread scratch for S keys: gemm packing plus two TB × S blocks. */
export function attentionScratchBytes(S: i32): i32 {
  return gemmScratchBytes() + 2 * TB * S * 4;
}

@inline function word(d: usize, i: i32): i32 {
  return load<i32>(d + (<usize>i << 2));
}

/** Valid keys of batch row b and the shift from query index to position (see the header). */
@inline function validKeys(d: usize, b: i32, S: i32): i32 {
  const rowLen = <usize>word(d, AT_ROWLEN), kvLen = <usize>word(d, AT_KVLEN);
  if (rowLen) return min(S, max(0, load<i32>(rowLen + (<usize>b << 2))));
  return kvLen ? min(S, max(0, load<i32>(kvLen))) : S;
}

@inline function shiftOf(d: usize, valid: i32, S: i32, T: i32): i32 {
  return word(d, AT_KVLEN) != 0 && word(d, AT_ROWLEN) == 0 ? valid - T : S - T;
}

@inline function hiKey(t: i32, shift: i32, valid: i32, causal: bool): i32 {
  return causal ? min(valid, max(0, t + shift + 1)) : valid;
}

@inline function loKey(t: i32, shift: i32, window: i32, causal: bool): i32 {
  return causal && window > 0 ? max(0, t + shift - window + 1) : 0;
}

/** x ← c·tanh(x/c) over n floats. */
function softcapf(x: usize, n: i32, c: f32): void {
  for (let i = 0; i < n; i++) {
    const at = x + (<usize>i << 2);
    store<f32>(at, <f32>(<f64>c * Math.tanh(<f64>load<f32>(at) / <f64>c)));
  }
}

export function attentionJob(d: usize, tid: i32, nth: i32): void {
  const q = <usize>word(d, AT_Q), k = <usize>word(d, AT_K), v = <usize>word(d, AT_V);
  const out = <usize>word(d, AT_OUT), lse = <usize>word(d, AT_LSE);
  const B = word(d, AT_B), T = word(d, AT_T), Hq = word(d, AT_HQ), D = word(d, AT_D);
  const S = word(d, AT_S), Hkv = word(d, AT_HKV);
  const scale = reinterpret<f32>(word(d, AT_SCALE));
  const causal = word(d, AT_CAUSAL) != 0;
  const window = word(d, AT_WINDOW);
  const cap = reinterpret<f32>(word(d, AT_SOFTCAP));
  const scratch = <usize>word(d, AT_SCRATCH) + <usize>tid * <usize>word(d, AT_SCRATCH_STRIDE);
  const sc = scratch + gemmScratchBytes();
  const mask = <usize>word(d, AT_MASK);
  const group = Hq / Hkv;
  const blocks = (T + TB - 1) / TB;
  const total = B * Hq * blocks;
  const ldq = Hq * D, ldk = Hkv * D;
  for (let task = nextTask(d + AT_COUNTER * 4); task < total; task = nextTask(d + AT_COUNTER * 4)) {
    const b = task / (Hq * blocks);
    const rest = task - b * Hq * blocks;
    const h = rest / blocks;
    const t0 = (rest - h * blocks) * TB;
    const tb = min(TB, T - t0);
    const kvh = h / group;
    const valid = validKeys(d, b, S), shift = shiftOf(d, valid, S, T);
    // Keys lo0…lo0 + n − 1 cover every row of the block.
    const lo0 = min(loKey(t0, shift, window, causal), valid);
    const n = max(0, hiKey(t0 + tb - 1, shift, valid, causal) - lo0);
    const qb = q + (<usize>((b * T + t0) * Hq + h) * <usize>D << 2);
    const kb = k + (<usize>((b * S + lo0) * Hkv + kvh) * <usize>D << 2);
    const vb = v + (<usize>((b * S + lo0) * Hkv + kvh) * <usize>D << 2);
    const ob = out + (<usize>((b * T + t0) * Hq + h) * <usize>D << 2);
    if (n > 0) gemm(qb, ldq, false, kb, ldk, true, sc, n, D, false, 0, tb, 0, n, scratch);
    for (let r = 0; r < tb; r++) {
      const t = t0 + r;
      const lo = min(n, max(0, loKey(t, shift, window, causal) - lo0));
      const vis = max(0, hiKey(t, shift, valid, causal) - lo0 - lo);
      const row = sc + (<usize>(r * n) << 2);
      const at = lse + (<usize>((b * Hq + h) * T + t) << 2);
      if (vis == 0) {
        memory.fill(row, 0, <usize>n << 2);
        store<f32>(at, -Infinity);
        continue;
      }
      const x = row + (<usize>lo << 2);
      scalef(x, x, vis, scale);
      if (cap != 0) softcapf(x, vis, cap);
      // An explicit mask: hidden keys get −∞ before the max, and exactly 0 after the exponential
      // (expv clamps its argument, so exp(−∞) would leave a denormal).
      const keys = lo0 + lo;
      const mrow = mask ? mask + (<usize>(t * S + keys) << 2) : 0;
      let shown = vis;
      if (mask) {
        shown = 0;
        for (let j = 0; j < vis; j++) {
          if (load<i32>(mrow + (<usize>j << 2)) == 0) store<f32>(x + (<usize>j << 2), -Infinity);
          else shown++;
        }
      }
      if (shown == 0) {
        memory.fill(row, 0, <usize>n << 2);
        store<f32>(at, -Infinity);
        continue;
      }
      const mx = maxf(x, vis);
      let z = expInPlace(x, vis, mx);
      if (mask) {
        for (let j = 0; j < vis; j++) {
          if (load<i32>(mrow + (<usize>j << 2)) != 0) continue;
          z -= <f64>load<f32>(x + (<usize>j << 2));
          store<f32>(x + (<usize>j << 2), 0);
        }
      }
      memory.fill(row, 0, <usize>lo << 2);
      memory.fill(x + (<usize>vis << 2), 0, <usize>(n - lo - vis) << 2);
      store<f32>(at, <f32>(<f64>mx + Math.log(z)));
      scalef(x, x, vis, <f32>(1 / z));
    }
    if (n > 0) gemm(sc, n, false, vb, ldk, false, ob, ldq, n, false, 0, tb, 0, D, scratch);
    else for (let r = 0; r < tb; r++) memory.fill(ob + <usize>(r * ldq) * 4, 0, <usize>D << 2);
  }
}

// p = exp(s·scale − lse); dP = dO·Vᵀ; Δ = dO·O; dS = p(dP − Δ)·scale; dQ = dS·K; dK += dSᵀ·Q; dV += Pᵀ·dO.
// With a soft-cap c the score is s' = c·tanh(s·scale/c), p = exp(s' − lse) and dS gains 1 − (s'/c)².
// One task per (batch, kv head), so each task owns its dK, dV rows and the result does not depend on
// the thread count.
export function attentionBackwardJob(d: usize, tid: i32, nth: i32): void {
  const q = <usize>word(d, AT_Q), k = <usize>word(d, AT_K), v = <usize>word(d, AT_V);
  const out = <usize>word(d, AT_OUT), lse = <usize>word(d, AT_LSE), dout = <usize>word(d, AT_DOUT);
  const dq = <usize>word(d, AT_DQ), dk = <usize>word(d, AT_DK), dv = <usize>word(d, AT_DV);
  const B = word(d, AT_B), T = word(d, AT_T), Hq = word(d, AT_HQ), D = word(d, AT_D);
  const S = word(d, AT_S), Hkv = word(d, AT_HKV);
  const scale = reinterpret<f32>(word(d, AT_SCALE));
  const causal = word(d, AT_CAUSAL) != 0;
  const window = word(d, AT_WINDOW);
  const cap = reinterpret<f32>(word(d, AT_SOFTCAP));
  const scratch = <usize>word(d, AT_SCRATCH) + <usize>tid * <usize>word(d, AT_SCRATCH_STRIDE);
  const pb = scratch + gemmScratchBytes();
  const db = pb + (<usize>(TB * S) << 2);
  const group = Hq / Hkv;
  const blocks = (T + TB - 1) / TB;
  const ldq = Hq * D, ldk = Hkv * D;
  const rowBytes = <usize>D << 2;
  const total = B * Hkv;
  for (let task = nextTask(d + AT_COUNTER * 4); task < total; task = nextTask(d + AT_COUNTER * 4)) {
    const b = task / Hkv;
    const kvh = task - b * Hkv;
    const valid = validKeys(d, b, S), shift = shiftOf(d, valid, S, T);
    const kvOff = <usize>(b * S * Hkv + kvh) * <usize>D << 2;
    for (let s = 0; s < S; s++) {
      memory.fill(dk + kvOff + <usize>(s * ldk) * 4, 0, rowBytes);
      memory.fill(dv + kvOff + <usize>(s * ldk) * 4, 0, rowBytes);
    }
    for (let h = kvh * group; h < (kvh + 1) * group; h++) {
      for (let blk = 0; blk < blocks; blk++) {
        const t0 = blk * TB;
        const tb = min(TB, T - t0);
        const qOff = <usize>((b * T + t0) * Hq + h) * <usize>D << 2;
        const qb = q + qOff, ob = out + qOff, gb = dout + qOff, dqb = dq + qOff;
        const lo0 = min(loKey(t0, shift, window, causal), valid);
        const n = max(0, hiKey(t0 + tb - 1, shift, valid, causal) - lo0);
        if (n == 0) {
          for (let r = 0; r < tb; r++) memory.fill(dqb + <usize>(r * ldq) * 4, 0, rowBytes);
          continue;
        }
        const keyOff = kvOff + (<usize>(lo0 * ldk) << 2);
        const kb = k + keyOff, vb = v + keyOff, dkb = dk + keyOff, dvb = dv + keyOff;
        gemm(qb, ldq, false, kb, ldk, true, pb, n, D, false, 0, tb, 0, n, scratch);
        gemm(gb, ldq, false, vb, ldk, true, db, n, D, false, 0, tb, 0, n, scratch);
        for (let r = 0; r < tb; r++) {
          const t = t0 + r;
          const lo = min(n, max(0, loKey(t, shift, window, causal) - lo0));
          const vis = max(0, hiKey(t, shift, valid, causal) - lo0 - lo);
          const prow = pb + (<usize>(r * n + lo) << 2);
          const drow = db + (<usize>(r * n + lo) << 2);
          const l = load<f32>(lse + (<usize>((b * Hq + h) * T + t) << 2));
          const delta = dotf(gb + <usize>(r * ldq) * 4, ob + <usize>(r * ldq) * 4, D);
          let j = 0;
          if (cap != 0) {
            for (; j < vis; j++) {
              const o = <usize>j << 2;
              const th = Math.tanh(<f64>(load<f32>(prow + o) * scale) / <f64>cap);
              const p = <f32>Math.exp(<f64>cap * th - <f64>l);
              store<f32>(prow + o, p);
              store<f32>(drow + o, p * (load<f32>(drow + o) - delta) * scale * <f32>(1 - th * th));
            }
          } else {
            const sv = f32x4.splat(scale), lv = f32x4.splat(l), dv4 = f32x4.splat(delta);
            for (; j + 4 <= vis; j += 4) {
              const o = <usize>j << 2;
              const p = expv(f32x4.sub(f32x4.mul(v128.load(prow + o), sv), lv));
              v128.store(prow + o, p);
              v128.store(drow + o, f32x4.mul(f32x4.mul(p, f32x4.sub(v128.load(drow + o), dv4)), sv));
            }
            for (; j < vis; j++) {
              const o = <usize>j << 2;
              const p = f32x4.extract_lane(expv(f32x4.splat(load<f32>(prow + o) * scale - l)), 0);
              store<f32>(prow + o, p);
              store<f32>(drow + o, p * (load<f32>(drow + o) - delta) * scale);
            }
          }
          const rowP = pb + (<usize>(r * n) << 2), rowD = db + (<usize>(r * n) << 2);
          memory.fill(rowP, 0, <usize>lo << 2);
          memory.fill(rowD, 0, <usize>lo << 2);
          memory.fill(prow + (<usize>vis << 2), 0, <usize>(n - lo - vis) << 2);
          memory.fill(drow + (<usize>vis << 2), 0, <usize>(n - lo - vis) << 2);
        }
        gemm(db, n, false, kb, ldk, false, dqb, ldq, n, false, 0, tb, 0, D, scratch);
        gemm(db, n, true, qb, ldq, false, dkb, ldk, tb, true, 0, n, 0, D, scratch);
        gemm(pb, n, true, gb, ldq, false, dvb, ldk, tb, true, 0, n, 0, D, scratch);
      }
    }
  }
}
