import { isCompact } from '../../../graph/types.js';
import { dequantizeRange } from '../../../quant/codec.js';
import { type JsKernel, f, floats, i32 } from './types.js';

const last = (s: readonly number[]): number => s[s.length - 1]!;

// rmsnorm: y = x · r · w, r = 1/sqrt(mean(x²) + eps)
const rmsnorm: JsKernel = ([vx, vw], [vy], attrs) => {
  const X = f(vx), W = f(vw), Y = vy!.data, D = last(vx!.shape), eps = attrs.eps as number;
  for (let o = 0; o < X.length; o += D) {
    let ss = 0;
    for (let i = 0; i < D; i++) ss += X[o + i]! * X[o + i]!;
    const r = 1 / Math.sqrt(ss / D + eps);
    for (let i = 0; i < D; i++) Y[o + i] = X[o + i]! * r * W[i]!;
  }
};

// dx_i = r·w_i·dy_i − x_i·r³/D · Σ_j dy_j·w_j·x_j;  dw_i = Σ_rows dy_i·x_i·r
const rmsnormBackward: JsKernel = ([vx, vw, vdy], [vdx, vdw], attrs) => {
  const X = f(vx), W = f(vw), DY = f(vdy), DX = vdx!.data, DW = vdw!.data, D = last(vx!.shape), eps = attrs.eps as number;
  const dw = new Float64Array(D);
  for (let o = 0; o < X.length; o += D) {
    let ss = 0, dot = 0;
    for (let i = 0; i < D; i++) { ss += X[o + i]! * X[o + i]!; dot += DY[o + i]! * W[i]! * X[o + i]!; }
    const r = 1 / Math.sqrt(ss / D + eps);
    const c = (dot * r * r * r) / D;
    for (let i = 0; i < D; i++) {
      DX[o + i] = r * W[i]! * DY[o + i]! - X[o + i]! * c;
      dw[i]! += DY[o + i]! * X[o + i]! * r;
    }
  }
  DW.set(dw);
};

// layernorm: x̂ = (x − μ)·r, r = 1/sqrt(σ² + eps), y = x̂·w + b
const layernorm: JsKernel = ([vx, vw, vb], [vy], attrs) => {
  const X = f(vx), W = f(vw), B = f(vb), Y = vy!.data, D = last(vx!.shape), eps = attrs.eps as number;
  for (let o = 0; o < X.length; o += D) {
    let mu = 0;
    for (let i = 0; i < D; i++) mu += X[o + i]!;
    mu /= D;
    let v = 0;
    for (let i = 0; i < D; i++) v += (X[o + i]! - mu) ** 2;
    const r = 1 / Math.sqrt(v / D + eps);
    for (let i = 0; i < D; i++) Y[o + i] = (X[o + i]! - mu) * r * W[i]! + B[i]!;
  }
};

// g = dy·w;  dx = r·(g − mean(g) − x̂·mean(g·x̂));  dw = Σ dy·x̂;  db = Σ dy
const layernormBackward: JsKernel = ([vx, vw, vdy], [vdx, vdw, vdb], attrs) => {
  const X = f(vx), W = f(vw), DY = f(vdy), DX = vdx!.data, D = last(vx!.shape), eps = attrs.eps as number;
  const dw = new Float64Array(D), db = new Float64Array(D), xh = new Float64Array(D);
  for (let o = 0; o < X.length; o += D) {
    let mu = 0;
    for (let i = 0; i < D; i++) mu += X[o + i]!;
    mu /= D;
    let v = 0;
    for (let i = 0; i < D; i++) v += (X[o + i]! - mu) ** 2;
    const r = 1 / Math.sqrt(v / D + eps);
    let mg = 0, mgx = 0;
    for (let i = 0; i < D; i++) {
      xh[i] = (X[o + i]! - mu) * r;
      const g = DY[o + i]! * W[i]!;
      mg += g; mgx += g * xh[i]!;
      dw[i]! += DY[o + i]! * xh[i]!;
      db[i]! += DY[o + i]!;
    }
    mg /= D; mgx /= D;
    for (let i = 0; i < D; i++) DX[o + i] = r * (DY[o + i]! * W[i]! - mg - xh[i]! * mgx);
  }
  vdw!.data.set(dw);
  vdb!.data.set(db);
};

// rope on [B, T, H, D]: pair i rotates by angle p·θ^(−2i/D), p = positions[t] or offset + t.
// 'pairs' pairs (x[2i], x[2i+1]); 'half' pairs (x[i], x[i + D/2]). inverse rotates back (the adjoint).
const rope: JsKernel = ([vx, vpos], [vy], attrs) => {
  const X = f(vx), Y = vy!.data;
  const [B, T, H, D] = vx!.shape as [number, number, number, number];
  const theta = attrs.theta as number, offset = (attrs.offset as number | undefined) ?? 0;
  const sign = attrs.inverse === true ? -1 : 1, half = D / 2, pairs = attrs.layout === 'pairs';
  const pos = vpos ? i32(vpos) : null;
  // RoPE scaling: a per-pair frequency table and a factor on cos and sin.
  const freqs = attrs.freqs as number[] | undefined, m = freqs ? ((attrs.scale as number | undefined) ?? 1) : 1;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const p = pos ? pos[t]! : offset + t;
      for (let i = 0; i < half; i++) {
        const angle = freqs ? p * freqs[i]! : p * Math.pow(theta, (-2 * i) / D);
        const c = m * Math.cos(angle), s = m * sign * Math.sin(angle);
        const i0 = pairs ? 2 * i : i, i1 = pairs ? 2 * i + 1 : i + half;
        for (let h = 0; h < H; h++) {
          const o = ((b * T + t) * H + h) * D;
          const x0 = X[o + i0]!, x1 = X[o + i1]!;
          Y[o + i0] = x0 * c - x1 * s;
          Y[o + i1] = x0 * s + x1 * c;
        }
      }
    }
  }
};

interface AttnDims {
  B: number; T: number; Hq: number; D: number; S: number; Hkv: number; group: number; scale: number; causal: boolean;
  /** Sliding window (0: none) and soft-cap (0: none). */
  window: number; softcap: number;
  /** Valid keys of each batch row. */
  valid: Int32Array;
  /** Added to t for the query's position: kvLen − T with a KV cache, else S − T. */
  shift: Int32Array;
}
function attnDims(q: readonly number[], k: readonly number[], attrs: Record<string, unknown>, lengths?: Int32Array): AttnDims {
  const [B, T, Hq, D] = q as [number, number, number, number];
  const [, S, Hkv] = k as [number, number, number];
  const valid = new Int32Array(B).fill(S), shift = new Int32Array(B).fill(S - T);
  if (lengths && attrs.rowLengths === true) {
    for (let b = 0; b < B; b++) {
      const n = lengths[b]!;
      if (!(n >= 1 && n <= S)) throw new RangeError(`attention: key length ${n} of batch row ${b} is outside 1…${S}`);
      valid[b] = n;
    }
  } else if (lengths) {
    // Keys past kvLen (an unfilled KV cache) are never visible.
    const n = Math.max(0, Math.min(S, lengths[0]!));
    valid.fill(n); shift.fill(n - T);
  }
  return {
    B, T, Hq, D, S, Hkv, group: Hq / Hkv, scale: attrs.scale as number, causal: attrs.causal === true,
    window: (attrs.window as number | undefined) ?? 0, softcap: (attrs.softcap as number | undefined) ?? 0, valid, shift,
  };
}

/** The keys query t of batch row b sees: lo ≤ j < hi (hi ≤ lo: none). */
function keyRange(d: AttnDims, b: number, t: number): [number, number] {
  if (!d.causal) return [0, d.valid[b]!];
  const p = t + d.shift[b]!;
  return [d.window ? Math.max(0, p - d.window + 1) : 0, Math.min(d.valid[b]!, p + 1)];
}

/** Scores of one query row against keys lo…hi − 1, into s[lo…hi − 1] (soft-capped when asked). */
function scores(Q: Float32Array | Float64Array, K: Float32Array | Float64Array, d: AttnDims, b: number, t: number, h: number, lo: number, hi: number, s: Float64Array): void {
  const kvh = Math.floor(h / d.group);
  const qo = ((b * d.T + t) * d.Hq + h) * d.D;
  for (let j = lo; j < hi; j++) {
    const ko = ((b * d.S + j) * d.Hkv + kvh) * d.D;
    let dot = 0;
    for (let e = 0; e < d.D; e++) dot += Q[qo + e]! * K[ko + e]!;
    s[j] = d.softcap ? d.softcap * Math.tanh((dot * d.scale) / d.softcap) : dot * d.scale;
  }
}

// attention: one query row at a time (a row of S scores is the only score memory); lse kept for backward.
// An explicit mask (attr mask) is the last input, i32 [T, S]: key j is hidden from query t where it is 0.
const attention: JsKernel = (ins, [vo, vlse], attrs) => {
  const [vq, vk, vv] = ins;
  const vmask = attrs.mask === true ? ins[ins.length - 1] : undefined;
  const vlen = ins.length - (vmask ? 1 : 0) > 3 ? ins[3] : undefined;
  const Q = f(vq), K = f(vk), V = f(vv), O = vo!.data, LSE = vlse!.data;
  const d = attnDims(vq!.shape, vk!.shape, attrs, vlen ? i32(vlen) : undefined);
  const M = vmask ? i32(vmask) : undefined;
  const s = new Float64Array(d.S), acc = new Float64Array(d.D);
  for (let b = 0; b < d.B; b++) for (let h = 0; h < d.Hq; h++) for (let t = 0; t < d.T; t++) {
    const [lo, hi] = keyRange(d, b, t);
    scores(Q, K, d, b, t, h, lo, hi, s);
    if (M) for (let j = lo; j < hi; j++) if (M[t * d.S + j] === 0) s[j] = -Infinity;
    let mx = -Infinity;
    for (let j = lo; j < hi; j++) mx = Math.max(mx, s[j]!);
    let z = 0;
    acc.fill(0);
    const kvh = Math.floor(h / d.group);
    for (let j = lo; j < hi; j++) {
      if (s[j] === -Infinity) continue;
      const p = Math.exp(s[j]! - mx);
      z += p;
      const vo = ((b * d.S + j) * d.Hkv + kvh) * d.D;
      for (let e = 0; e < d.D; e++) acc[e]! += p * V[vo + e]!;
    }
    const oo = ((b * d.T + t) * d.Hq + h) * d.D;
    const seen = hi > lo && mx !== -Infinity;
    for (let e = 0; e < d.D; e++) O[oo + e] = seen ? acc[e]! / z : 0;
    LSE[(b * d.Hq + h) * d.T + t] = seen ? mx + Math.log(z) : -Infinity;
  }
};

// p_j = exp(s_j − lse); dP_j = dO·v_j; Δ = dO·O; dS_j = p_j(dP_j − Δ), times 1 − tanh² = 1 − (s_j/c)²
// under a soft-cap c; dq = scale·Σ dS_j k_j; dk_j += scale·dS_j q; dv_j += p_j dO
const attentionBackward: JsKernel = ([vq, vk, vv, vo, vlse, vdo, vlen], [vdq, vdk, vdv], attrs) => {
  const Q = f(vq), K = f(vk), V = f(vv), O = f(vo), LSE = f(vlse), DO = f(vdo);
  const d = attnDims(vq!.shape, vk!.shape, attrs, vlen ? i32(vlen) : undefined);
  const dq = new Float64Array(Q.length), dk = new Float64Array(K.length), dv = new Float64Array(V.length);
  const s = new Float64Array(d.S);
  for (let b = 0; b < d.B; b++) for (let h = 0; h < d.Hq; h++) for (let t = 0; t < d.T; t++) {
    const [lo, hi] = keyRange(d, b, t);
    scores(Q, K, d, b, t, h, lo, hi, s);
    const kvh = Math.floor(h / d.group);
    const qo = ((b * d.T + t) * d.Hq + h) * d.D;
    const lse = LSE[(b * d.Hq + h) * d.T + t]!;
    let delta = 0;
    for (let e = 0; e < d.D; e++) delta += DO[qo + e]! * O[qo + e]!;
    for (let j = lo; j < hi; j++) {
      const p = Math.exp(s[j]! - lse);
      const ko = ((b * d.S + j) * d.Hkv + kvh) * d.D;
      let dp = 0;
      for (let e = 0; e < d.D; e++) dp += DO[qo + e]! * V[ko + e]!;
      const th = d.softcap ? s[j]! / d.softcap : 0;
      const ds = p * (dp - delta) * d.scale * (1 - th * th);
      for (let e = 0; e < d.D; e++) {
        dq[qo + e]! += ds * K[ko + e]!;
        dk[ko + e]! += ds * Q[qo + e]!;
        dv[ko + e]! += p * DO[qo + e]!;
      }
    }
  }
  vdq!.data.set(dq); vdk!.data.set(dk); vdv!.data.set(dv);
};

// embedding: rows of the table by id; an id outside [0, V) gives a zero row. A compact table is decoded
// row by row (only the rows asked for).
const embedding: JsKernel = ([vt, vids], [vo]) => {
  const ids = i32(vids), O = vo!.data;
  const [V, D] = vt!.shape as [number, number];
  const dtype = vt!.dtype;
  const row = dtype !== undefined && isCompact(dtype)
    ? (id: number) => dequantizeRange(dtype, vt!.data as Uint8Array, V * D, id * D, D)
    : (id: number) => f(vt).subarray(id * D, id * D + D);
  for (let n = 0; n < ids.length; n++) {
    const id = ids[n]!;
    if (id >= 0 && id < V) O.set(row(id), n * D);
    else O.fill(0, n * D, n * D + D);
  }
};

// dequantize: a compact weight decoded to f32 (exact).
const dequantizeKernel: JsKernel = ([vw], [vo]) => { vo!.data.set(floats(vw)); };

const embeddingBackward: JsKernel = ([vids, vdy], [vdt]) => {
  const ids = i32(vids), DY = f(vdy), DT = vdt!.data;
  const [V, D] = vdt!.shape as [number, number];
  const acc = new Float64Array(DT.length);
  for (let n = 0; n < ids.length; n++) {
    const id = ids[n]!;
    if (id < 0 || id >= V) continue;
    for (let e = 0; e < D; e++) acc[id * D + e]! += DY[n * D + e]!;
  }
  DT.set(acc);
};

/** Rows that count: target within [0, V) and not the ignore index. */
function counted(T: Int32Array, V: number, ignore: number): number {
  let c = 0;
  // Stryker disable next-line EqualityOperator: `n <= T.length` reads T[T.length] = undefined, which no comparison counts
  for (let n = 0; n < T.length; n++) if (T[n] !== ignore && T[n]! >= 0 && T[n]! < V) c++;
  return c;
}

function logSumExp(L: Float32Array | Float64Array, o: number, V: number): number {
  let mx = -Infinity;
  for (let j = 0; j < V; j++) mx = Math.max(mx, L[o + j]!);
  let z = 0;
  for (let j = 0; j < V; j++) z += Math.exp(L[o + j]! - mx);
  return mx + Math.log(z);
}

const crossEntropy: JsKernel = ([vl, vt], [vo], attrs) => {
  const L = f(vl), T = i32(vt);
  const [N, V] = vl!.shape as [number, number];
  const ignore = (attrs.ignoreIndex as number | undefined) ?? -100;
  let total = 0;
  for (let n = 0; n < N; n++) {
    const t = T[n]!;
    if (t === ignore || t < 0 || t >= V) continue;
    total += logSumExp(L, n * V, V) - L[n * V + t]!;
  }
  vo!.data[0] = total / Math.max(1, counted(T, V, ignore));
};

const crossEntropyBackward: JsKernel = ([vl, vt, vdl], [vd], attrs) => {
  const L = f(vl), T = i32(vt), dl = f(vdl)[0]!, DL = vd!.data;
  const [N, V] = vl!.shape as [number, number];
  const ignore = (attrs.ignoreIndex as number | undefined) ?? -100;
  const scale = dl / Math.max(1, counted(T, V, ignore));
  // Stryker disable next-line EqualityOperator: with `n <= N` the extra row only writes past the end of the typed array, which is ignored
  for (let n = 0; n < N; n++) {
    const t = T[n]!;
    if (t === ignore || t < 0 || t >= V) { DL.fill(0, n * V, n * V + V); continue; }
    const lse = logSumExp(L, n * V, V);
    // Stryker disable next-line EqualityOperator: `j <= V` writes the next row's first element, which that row rewrites (or past the end)
    for (let j = 0; j < V; j++) DL[n * V + j] = (Math.exp(L[n * V + j]! - lse) - (j === t ? 1 : 0)) * scale;
  }
};

// kv_write: rows [B, T, H, D] into cache [B, S, H, D] at pos.. (outs[0] is the cache's own memory).
const kvWrite: JsKernel = ([, vr, vp], [vc]) => {
  const R = f(vr), C = vc!.data, pos = i32(vp)[0]!;
  const [B, S, H, D] = vc!.shape as [number, number, number, number];
  const T = vr!.shape[1]!, row = H * D;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T && pos + t < S; t++) {
      if (pos + t < 0) continue;
      C.set(R.subarray((b * T + t) * row, (b * T + t + 1) * row), (b * S + pos + t) * row);
    }
  }
};

export const nn: Record<string, JsKernel> = {
  kv_write: kvWrite,
  rmsnorm, rmsnorm_backward: rmsnormBackward, layernorm, layernorm_backward: layernormBackward, rope,
  attention, attention_backward: attentionBackward, embedding, embedding_backward: embeddingBackward, dequantize: dequantizeKernel,
  cross_entropy: crossEntropy, cross_entropy_backward: crossEntropyBackward,
};
