/**
 * The wasm backend's kernel registry: for each op name, a function that prepares a step once at load
 * time (shapes, pointers, merged strides) and returns a closure that runs it. Semantics follow the js
 * kernel of the same name (src/backends/js/kernels), the oracle.
 */
import type { AdamWHyper, PlanStep } from '../backend.js';
import { broadcastStrides, strides } from '../js/kernels/types.js';
import { uniformAt } from '../../graph/ops/elementwise.js';
import { isCompact, numel, type Attrs, type DType, type Shape } from '../../graph/types.js';
import { dequantize, embedding as embeddingCompact } from './compact.js';
import { matmul } from './matmul.js';
import { JOB_ATTENTION, JOB_ATTENTION_BACKWARD, JOB_ROWS, type WasmRuntime } from './runtime.js';

export interface KernelContext {
  readonly rt: WasmRuntime;
  /** Byte offset of a value in the wasm memory. */
  ptr(value: number): number;
  shape(value: number): Shape;
  dtype(value: number): DType;
}

export type WasmKernel = (ctx: KernelContext, step: PlanStep) => () => void;

const noop = (): void => {};

// Op codes, mirrored from assembly/elementwise.ts.
const U = { scale: 0, neg: 1, exp: 2, log: 3, sqrt: 4, silu: 5, gelu: 6, erf: 7, tanh: 8, relu: 9 } as const;
const B = { add: 0, sub: 1, mul: 2, div: 3, silu_backward: 4, gelu_backward: 5, relu_backward: 6 } as const;

// Attention descriptor words, mirrored from assembly/attention.ts.
const AT = {
  Q: 0, K: 1, V: 2, OUT: 3, LSE: 4, B: 5, T: 6, HQ: 7, D: 8, S: 9, HKV: 10, SCALE: 11, CAUSAL: 12, KVLEN: 13,
  SCRATCH: 14, SCRATCH_STRIDE: 15, COUNTER: 16, DOUT: 17, DQ: 18, DK: 19, DV: 20, WINDOW: 21, SOFTCAP: 22, ROWLEN: 23,
  MASK: 24, WORDS: 25,
} as const;

// Kernels of the rows job, mirrored from assembly/rows.ts.
const R = {
  unary: 1, binary: 2, accumulate: 3, dropout: 4, adamw: 5, rmsnorm: 6, rmsnorm_backward: 7, layernorm: 8,
  layernorm_backward: 9, cross_entropy: 10, cross_entropy_backward: 11, rope: 12, reduce_rows: 13,
} as const;
/** Columns per block of reduce_rows, mirrored from assembly/reduce.ts. */
const REDUCE_COLS = 512;

/** Below this many flops attention runs on one thread. */
const PARALLEL_MIN_FLOPS = 1 << 21;
/** Elements per block of a rows job: small enough to balance, large enough to amortise a task. */
const BLOCK_ELEMENTS = 16384;
/** Below this many elements touched a rows job runs on one thread: waking workers costs more. */
const PARALLEL_MIN_ELEMENTS = 1 << 17;
/** Where a binary op's walker descriptor sits in the descriptor area, after the rows job's own words. */
const WALKER_OFFSET = 256;

/** At most this many blocks for kernels that keep a partial sum per block (norm weight gradients). */
const MAX_PARTIALS = 64;

/** Units (rows) per block when each unit is `width` elements wide. */
const blockOf = (width: number): number => Math.max(1, Math.floor(BLOCK_ELEMENTS / Math.max(1, width)));
/** The same, with blocks made longer where needed so that `count` units give at most MAX_PARTIALS. */
const partialBlockOf = (width: number, count: number): number => Math.max(blockOf(width), Math.ceil(count / MAX_PARTIALS));
const blocks = (count: number, block: number): number => Math.ceil(count / block);

/**
 * Runs a rows-job kernel over `count` units in blocks of `block` units; `args` go in as doubles.
 * `elements` (what the kernel touches) decides whether threads are worth waking.
 */
function runRows(rt: WasmRuntime, kernel: number, count: number, block: number, args: readonly number[], elements: number): void {
  if (count === 0) return;
  const d = rt.descWords();
  d[0] = kernel;
  d[1] = count;
  d[2] = block;
  d[3] = 0;
  new Float64Array(rt.memory.buffer, rt.desc + 16, args.length).set(args);
  rt.runJob(JOB_ROWS, elements >= PARALLEL_MIN_ELEMENTS ? rt.threads : 1);
}

/** Fused AdamW over n elements, in place (the Executable's adamw). */
export function adamwKernel(rt: WasmRuntime, p: number, g: number, m: number, v: number, n: number, h: AdamWHyper): void {
  runRows(rt, R.adamw, n, BLOCK_ELEMENTS, [
    p, g, m, v, h.lr, h.beta1, 1 - h.beta1, h.beta2, 1 - h.beta2, h.eps, 1 - h.lr * h.weightDecay,
    1 - Math.pow(h.beta1, h.step), 1 - Math.pow(h.beta2, h.step), h.gradScale,
  ], 4 * n);
}

const f32Bits = (x: number): number => new Int32Array(Float32Array.of(x).buffer)[0]!;
const last = (s: Shape): number => s[s.length - 1] ?? 1;
const axisOf = (a: unknown, rank: number): number => {
  const x = Number(a ?? 0);
  return x < 0 ? x + rank : x;
};

/**
 * Drops unit dimensions and merges neighbours that every operand walks contiguously, so the wasm
 * walkers see few dimensions and a long last one. Returns at least one dimension.
 */
function collapse(shape: Shape, strideLists: number[][]): { shape: number[]; strides: number[][] } {
  const dims: number[] = [];
  const out: number[][] = strideLists.map(() => []);
  shape.forEach((d, i) => {
    if (d === 1) return;
    const k = dims.length - 1;
    if (k >= 0 && strideLists.every((s, j) => out[j]![k] === s[i]! * d)) {
      dims[k] = dims[k]! * d;
      strideLists.forEach((s, j) => (out[j]![k] = s[i]!));
    } else {
      dims.push(d);
      strideLists.forEach((s, j) => out[j]!.push(s[i]!));
    }
  });
  if (dims.length === 0) return { shape: [1], strides: strideLists.map(() => [0]) };
  return { shape: dims, strides: out };
}

/** Runs `fn` with `words` copied into the runtime's descriptor area. */
function withDesc(rt: WasmRuntime, words: Int32Array, fn: (desc: number) => void): () => void {
  return () => {
    rt.descWords().set(words);
    fn(rt.desc);
  };
}

const unary = (op: number): WasmKernel => (ctx, s) => {
  const n = numel(ctx.shape(s.outputs[0]!));
  const args = [op, ctx.ptr(s.inputs[0]!), ctx.ptr(s.outputs[0]!), typeof s.attrs.factor === 'number' ? s.attrs.factor : 1];
  const rt = ctx.rt;
  return () => runRows(rt, R.unary, n, BLOCK_ELEMENTS, args, n);
};

const binary = (op: number): WasmKernel => (ctx, s) => {
  const [a, b] = s.inputs as [number, number];
  const o = s.outputs[0]!;
  const outShape = ctx.shape(o);
  const n = numel(outShape);
  if (n === 0) return noop;
  const c = collapse(outShape, [broadcastStrides(ctx.shape(a), outShape), broadcastStrides(ctx.shape(b), outShape)]);
  const r = c.shape.length;
  const walker = Int32Array.from([ctx.ptr(o), ctx.ptr(a), ctx.ptr(b), r, ...c.shape, ...c.strides[0]!, ...c.strides[1]!]);
  // Rank 1 splits into element ranges; otherwise into rows of the last dimension.
  const width = r === 1 ? 1 : c.shape[r - 1]!;
  const count = r === 1 ? n : n / width;
  const block = r === 1 ? BLOCK_ELEMENTS : blockOf(width);
  const rt = ctx.rt;
  return () => {
    const { base, stride } = rt.scratch(r * 4);
    rt.descWords().set(walker, WALKER_OFFSET / 4);
    runRows(rt, R.binary, count, block, [op, rt.desc + WALKER_OFFSET, base, stride], n);
  };
};

/** out = x read through per-dimension strides (in elements), for transpose and broadcast_to. */
function gather(ctx: KernelContext, x: number, o: number, outShape: Shape, xStrides: number[]): () => void {
  if (numel(outShape) === 0) return noop;
  const c = collapse(outShape, [xStrides]);
  const r = c.shape.length;
  const words = Int32Array.from([ctx.ptr(o), ctx.ptr(x), r, ...c.shape, ...c.strides[0]!, ...new Array<number>(r).fill(0)]);
  const ex = ctx.rt.exports;
  return withDesc(ctx.rt, words, (d) => ex.gather(d));
}

/** [outer, axis length, inner block] of a shape split around `axis`. */
function around(shape: Shape, axis: number): [number, number, number] {
  return [numel(shape.slice(0, axis)), shape[axis]!, numel(shape.slice(axis + 1))];
}

function reduction(mean: boolean): WasmKernel {
  return (ctx, s) => {
    const x = s.inputs[0]!, o = s.outputs[0]!;
    const shape = ctx.shape(x);
    const outN = numel(ctx.shape(o));
    const axes = s.attrs.axes === null || s.attrs.axes === undefined
      ? shape.map((_, i) => i)
      : (s.attrs.axes as number[]).map((a) => (a < 0 ? a + shape.length : a));
    const kept = shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const xN = numel(shape);
    // As the reference: the mean divides by the elements per output (0/0 for an empty input).
    const divisor = mean ? (outN === 0 ? 1 : xN / outN) : 1;
    const rt = ctx.rt, ex = rt.exports, out = ctx.ptr(o);
    if (xN === 0) {
      const value = mean ? 0 / divisor : 0;
      return () => ex.fill32(out, outN, f32Bits(value));
    }
    const c = collapse(shape, [broadcastStrides(kept, shape)]);
    const r = c.shape.length;
    const xp = ctx.ptr(x);
    const so = c.strides[0]!;
    // [R, C] or [outer, R, C] summed over R: column blocks with their accumulators in L1.
    const rows = (r === 2 && so[0] === 0 && so[1] === 1) ? [1, c.shape[0]!, c.shape[1]!]
      : (r === 3 && so[0] === c.shape[2] && so[1] === 0 && so[2] === 1) ? c.shape : undefined;
    if (rows) {
      const [outer, depth, C] = rows as [number, number, number];
      const colBlocks = outer * Math.ceil(C / REDUCE_COLS);
      return () => {
        const { base, stride } = rt.scratch(REDUCE_COLS * 8);
        runRows(rt, R.reduce_rows, colBlocks, blockOf(depth * REDUCE_COLS), [xp, out, depth, C, divisor, base, stride], xN);
      };
    }
    const tail = [r, ...c.shape, ...so, ...new Array<number>(r).fill(0)];
    return () => {
      const acc = rt.scratch(outN * 8).base;
      rt.descWords().set([acc, xp, ...tail]);
      ex.reduce(rt.desc, out, outN, divisor);
    };
  };
}

/**
 * The descriptor words attention and its backward share: q, k, v, out, lse, shapes, scale, masking;
 * `lengths` is the optional kvLen (i32 [1]) or, with the rowLengths attr, the per-row key lengths.
 */
function attentionWords(ctx: KernelContext, s: PlanStep, q: number, k: number, v: number, out: number, lse: number, lengths: number | undefined): Int32Array {
  const [Bn, T, Hq, D] = ctx.shape(q) as [number, number, number, number];
  const [, S, Hkv] = ctx.shape(k) as [number, number, number];
  const w = new Int32Array(AT.WORDS);
  w[AT.Q] = ctx.ptr(q); w[AT.K] = ctx.ptr(k); w[AT.V] = ctx.ptr(v); w[AT.OUT] = ctx.ptr(out); w[AT.LSE] = ctx.ptr(lse);
  w[AT.B] = Bn; w[AT.T] = T; w[AT.HQ] = Hq; w[AT.D] = D; w[AT.S] = S; w[AT.HKV] = Hkv;
  w[AT.SCALE] = f32Bits(s.attrs.scale as number);
  w[AT.CAUSAL] = s.attrs.causal === true ? 1 : 0;
  w[AT.WINDOW] = (s.attrs.window as number | undefined) ?? 0;
  w[AT.SOFTCAP] = f32Bits((s.attrs.softcap as number | undefined) ?? 0);
  if (lengths !== undefined) w[s.attrs.rowLengths === true ? AT.ROWLEN : AT.KVLEN] = ctx.ptr(lengths);
  return w;
}

/** Refuses per-row key lengths outside 1…S (read from memory just before the job runs). */
function checkRowLengths(rt: WasmRuntime, words: Int32Array): void {
  const at = words[AT.ROWLEN]!, S = words[AT.S]!;
  if (!at) return;
  const lens = new Int32Array(rt.memory.buffer, at, words[AT.B]!);
  lens.forEach((n, b) => {
    if (!(n >= 1 && n <= S)) throw new RangeError(`attention: key length ${n} of batch row ${b} is outside 1…${S}`);
  });
}

/** Runs an attention job; `flops` decides whether threads are worth waking. */
function runAttention(rt: WasmRuntime, job: number, words: Int32Array, flops: number): void {
  checkRowLengths(rt, words);
  const { base, stride } = rt.scratch(rt.exports.scratchBytes(job, words[AT.S]!));
  words[AT.SCRATCH] = base;
  words[AT.SCRATCH_STRIDE] = stride;
  words[AT.COUNTER] = 0;
  rt.descWords().set(words);
  rt.runJob(job, flops < PARALLEL_MIN_FLOPS ? 1 : rt.threads);
}

const attentionFlops = (w: Int32Array): number => 4 * w[AT.B]! * w[AT.HQ]! * w[AT.T]! * w[AT.S]! * w[AT.D]!;

const attention: WasmKernel = (ctx, s) => {
  // An explicit mask (attr mask) is the last input; the optional lengths come before it.
  const masked = s.attrs.mask === true;
  const [q, k, v] = s.inputs as [number, number, number];
  const lengths = s.inputs.length - (masked ? 1 : 0) > 3 ? s.inputs[3] : undefined;
  const [out, lse] = s.outputs as [number, number];
  const words = attentionWords(ctx, s, q, k, v, out, lse, lengths);
  if (masked) words[AT.MASK] = ctx.ptr(s.inputs[s.inputs.length - 1]!);
  const rt = ctx.rt, flops = attentionFlops(words);
  return () => runAttention(rt, JOB_ATTENTION, words, flops);
};

const attentionBackward: WasmKernel = (ctx, s) => {
  const [q, k, v, out, lse, dOut, lengths] = s.inputs as [number, number, number, number, number, number, number | undefined];
  const [dq, dk, dv] = s.outputs as [number, number, number];
  const words = attentionWords(ctx, s, q, k, v, out, lse, lengths);
  words[AT.DOUT] = ctx.ptr(dOut); words[AT.DQ] = ctx.ptr(dq); words[AT.DK] = ctx.ptr(dk); words[AT.DV] = ctx.ptr(dv);
  // Five products of the forward's size (S, dP, dQ, dK, dV) against its two.
  const rt = ctx.rt, flops = 2.5 * attentionFlops(words);
  return () => runAttention(rt, JOB_ATTENTION_BACKWARD, words, flops);
};

const matmulKernel: WasmKernel = (ctx, s) => {
  const [a, b] = s.inputs as [number, number];
  const c = s.outputs[0]!;
  const sa = ctx.shape(a), sb = ctx.shape(b), sc = ctx.shape(c);
  const transA = s.attrs.transA === true, transB = s.attrs.transB === true;
  const M = sc[sc.length - 2]!, N = sc[sc.length - 1]!;
  const K = sa[transA ? sa.length - 2 : sa.length - 1]!;
  const batch = numel(sc.slice(0, -2));
  // A compact B (a frozen weight: 2-D, A not transposed, as the graph checks) is read in its own type.
  const bType = ctx.dtype(b);
  const call = {
    a: ctx.ptr(a), b: ctx.ptr(b), c: ctx.ptr(c), batch, M, N, K, transA, transB,
    strideA: sa.length > 2 ? M * K : 0, strideB: sb.length > 2 ? K * N : 0, strideC: M * N,
    bType: isCompact(bType) ? bType : 'f32' as const,
  };
  const rt = ctx.rt;
  return () => matmul(rt, call);
};

const rowsOf = (ctx: KernelContext, x: number): [number, number] => {
  const shape = ctx.shape(x);
  const D = last(shape);
  return [D === 0 ? 0 : numel(shape) / D, D];
};

const eps = (attrs: Attrs): number => attrs.eps as number;

export const wasmKernels: Readonly<Record<string, WasmKernel>> = {
  matmul: matmulKernel,

  add: binary(B.add),
  sub: binary(B.sub),
  mul: binary(B.mul),
  div: binary(B.div),
  silu_backward: binary(B.silu_backward),
  gelu_backward: binary(B.gelu_backward),
  relu_backward: binary(B.relu_backward),
  scale: unary(U.scale),
  neg: unary(U.neg),
  exp: unary(U.exp),
  log: unary(U.log),
  sqrt: unary(U.sqrt),
  silu: unary(U.silu),
  gelu: unary(U.gelu),
  erf: unary(U.erf),
  tanh: unary(U.tanh),
  relu: unary(U.relu),
  accumulate: (ctx, s) => {
    const n = numel(ctx.shape(s.outputs[0]!));
    const args = [ctx.ptr(s.outputs[0]!), ctx.ptr(s.inputs[1]!)];
    const rt = ctx.rt;
    return () => runRows(rt, R.accumulate, n, BLOCK_ELEMENTS, args, n);
  },
  fill: (ctx, s) => {
    const o = ctx.ptr(s.outputs[0]!), n = numel(ctx.shape(s.outputs[0]!)), bits = f32Bits(s.attrs.value as number);
    const ex = ctx.rt.exports;
    return () => ex.fill32(o, n, bits);
  },
  // A handful of numbers per step (Poly's routing noise): written from here into the wasm memory, with the
  // js kernel's function, so the values are the same bits.
  uniform: (ctx, s) => {
    const o = ctx.ptr(s.outputs[0]!), n = numel(ctx.shape(s.outputs[0]!)), seedAt = ctx.ptr(s.inputs[0]!);
    const salt = (s.attrs.salt as number | undefined) ?? 0, rt = ctx.rt;
    return () => {
      const seed = (new Int32Array(rt.memory.buffer, seedAt, 1)[0]! + salt) | 0, out = new Float32Array(rt.memory.buffer, o, n);
      for (let i = 0; i < n; i++) out[i] = uniformAt(seed, i);
    };
  },
  dropout: (ctx, s) => {
    const n = numel(ctx.shape(s.outputs[0]!));
    const p = s.attrs.p as number, salt = (s.attrs.salt as number | undefined) ?? 0;
    // u = k / 2^24 ≥ p  ⇔  k ≥ ceil(p · 2^24): an exact integer test, whatever p's rounding in f32.
    const args = [ctx.ptr(s.inputs[0]!), ctx.ptr(s.outputs[0]!), ctx.ptr(s.inputs[1]!), salt | 0, Math.ceil(p * 16777216), 1 / (1 - p)];
    const rt = ctx.rt;
    return () => runRows(rt, R.dropout, n, BLOCK_ELEMENTS, args, n);
  },

  broadcast_to: (ctx, s) => {
    const x = s.inputs[0]!, o = s.outputs[0]!, outShape = ctx.shape(o);
    return gather(ctx, x, o, outShape, broadcastStrides(ctx.shape(x), outShape));
  },
  transpose: (ctx, s) => {
    const x = s.inputs[0]!, o = s.outputs[0]!;
    const st = strides(ctx.shape(x));
    return gather(ctx, x, o, ctx.shape(o), (s.attrs.perm as number[]).map((p) => st[p]!));
  },
  slice: (ctx, s) => {
    const x = s.inputs[0]!, o = s.outputs[0]!, shape = ctx.shape(x);
    const [outer, len, inner] = around(shape, axisOf(s.attrs.axis, shape.length));
    const start = s.attrs.start as number, n = (s.attrs.end as number) - start;
    const src = ctx.ptr(x) + start * inner * 4, dst = ctx.ptr(o);
    const ex = ctx.rt.exports;
    return () => ex.copyRows(dst, n * inner * 4, src, len * inner * 4, outer, n * inner * 4);
  },
  pad: (ctx, s) => {
    const x = s.inputs[0]!, o = s.outputs[0]!, shape = ctx.shape(x);
    const axis = axisOf(s.attrs.axis, shape.length);
    const [outer, len, inner] = around(shape, axis);
    const total = ctx.shape(o)[axis]!, before = s.attrs.before as number;
    const src = ctx.ptr(x), out = ctx.ptr(o), bytes = numel(ctx.shape(o)) * 4;
    const ex = ctx.rt.exports;
    return () => {
      ex.zero(out, bytes);
      ex.copyRows(out + before * inner * 4, total * inner * 4, src, len * inner * 4, outer, len * inner * 4);
    };
  },
  concat: (ctx, s) => {
    const o = s.outputs[0]!, outShape = ctx.shape(o);
    const axis = axisOf(s.attrs.axis, outShape.length);
    const [outer, total, inner] = around(outShape, axis);
    const parts: [number, number][] = [];
    for (const x of s.inputs) {
      const len = ctx.shape(x)[axis]!;
      parts.push([ctx.ptr(x), len]);
    }
    const out = ctx.ptr(o), ex = ctx.rt.exports;
    return () => {
      let offset = 0;
      for (const [src, len] of parts) {
        ex.copyRows(out + offset * inner * 4, total * inner * 4, src, len * inner * 4, outer, len * inner * 4);
        offset += len;
      }
    };
  },

  sum: reduction(false),
  mean: reduction(true),

  rmsnorm: (ctx, s) => {
    const [x, w] = s.inputs as [number, number];
    const [rows, D] = rowsOf(ctx, x);
    const args = [ctx.ptr(x), ctx.ptr(w), ctx.ptr(s.outputs[0]!), D, eps(s.attrs)];
    const rt = ctx.rt;
    return () => runRows(rt, R.rmsnorm, rows, blockOf(D), args, rows * D);
  },
  rmsnorm_backward: (ctx, s) => {
    const [x, w, dy] = s.inputs as [number, number, number];
    const [dx, dw] = s.outputs as [number, number];
    const [rows, D] = rowsOf(ctx, x);
    const block = partialBlockOf(D, rows), parts = blocks(rows, block);
    const args = [ctx.ptr(x), ctx.ptr(w), ctx.ptr(dy), ctx.ptr(dx), D, eps(s.attrs)];
    const pdw = ctx.ptr(dw), rt = ctx.rt;
    return () => {
      const partials = rt.scratch(parts * D * 8).base;
      runRows(rt, R.rmsnorm_backward, rows, block, [...args, partials], 3 * rows * D);
      rt.exports.sumPartials(partials, parts, D * 8, D, pdw);
    };
  },
  layernorm: (ctx, s) => {
    const [x, w, b] = s.inputs as [number, number, number];
    const [rows, D] = rowsOf(ctx, x);
    const block = blockOf(D), parts = blocks(rows, block);
    const args = [ctx.ptr(x), ctx.ptr(w), ctx.ptr(b), ctx.ptr(s.outputs[0]!), D, eps(s.attrs)];
    const rt = ctx.rt;
    return () => runRows(rt, R.layernorm, rows, block, [...args, rt.scratch(parts * 16).base], rows * D);
  },
  layernorm_backward: (ctx, s) => {
    const [x, w, dy] = s.inputs as [number, number, number];
    const [dx, dw, db] = s.outputs as [number, number, number];
    const [rows, D] = rowsOf(ctx, x);
    const block = partialBlockOf(D, rows), parts = blocks(rows, block), stride = D * 16 + 16;
    const args = [ctx.ptr(x), ctx.ptr(w), ctx.ptr(dy), ctx.ptr(dx), D, eps(s.attrs)];
    const pdw = ctx.ptr(dw), pdb = ctx.ptr(db), rt = ctx.rt;
    return () => {
      const partials = rt.scratch(parts * stride).base;
      runRows(rt, R.layernorm_backward, rows, block, [...args, partials], 3 * rows * D);
      rt.exports.sumPartials(partials, parts, stride, D, pdw);
      rt.exports.sumPartials(partials + D * 8, parts, stride, D, pdb);
    };
  },
  rope: (ctx, s) => {
    const [x, positions] = s.inputs as [number, number | undefined];
    const [Bn, T, H, D] = ctx.shape(x) as [number, number, number, number];
    const block = blockOf(Bn * H * D), parts = blocks(T, block);
    const args = [
      ctx.ptr(x), positions === undefined ? 0 : ctx.ptr(positions), ctx.ptr(s.outputs[0]!), Bn, T, H, D,
      s.attrs.theta as number, (s.attrs.offset as number | undefined) ?? 0, s.attrs.inverse === true ? 1 : 0,
      s.attrs.layout === 'pairs' ? 1 : 0,
    ];
    const rt = ctx.rt, freqs = s.attrs.freqs as number[] | undefined, scale = (s.attrs.scale as number | undefined) ?? 1;
    const cs = parts * (D * 8 + 16);
    if (!freqs) return () => runRows(rt, R.rope, T, block, [...args, rt.scratch(cs).base, 0, 1], Bn * T * H * D);
    // RoPE scaling: the frequency table (float64) follows the tasks' cos/sin scratch.
    return () => {
      const base = rt.scratch(cs + freqs.length * 8).base;
      new Float64Array(rt.memory.buffer, base + cs, freqs.length).set(freqs);
      runRows(rt, R.rope, T, block, [...args, base, base + cs, scale], Bn * T * H * D);
    };
  },
  attention,
  attention_backward: attentionBackward,
  kv_write: (ctx, s) => {
    const [, rows, pos] = s.inputs as [number, number, number];
    const cache = s.outputs[0]!;
    const [Bn, S, H, D] = ctx.shape(cache) as [number, number, number, number];
    const T = ctx.shape(rows)[1]!;
    const p = [ctx.ptr(cache), ctx.ptr(rows), ctx.ptr(pos)] as const, ex = ctx.rt.exports;
    return () => ex.kvWrite(...p, Bn, T, S, H * D);
  },
  embedding: (ctx, s) => {
    const [table, ids] = s.inputs as [number, number];
    const [V, D] = ctx.shape(table) as [number, number];
    const n = numel(ctx.shape(ids));
    const p = [ctx.ptr(table), ctx.ptr(ids), ctx.ptr(s.outputs[0]!)] as const, rt = ctx.rt, ex = rt.exports;
    const dtype = ctx.dtype(table);
    if (isCompact(dtype)) return () => embeddingCompact(rt, dtype, ...p, n, V, D);
    return () => ex.embedding(...p, n, V, D);
  },
  dequantize: (ctx, s) => {
    const w = s.inputs[0]!;
    const dtype = ctx.dtype(w), n = numel(ctx.shape(w));
    if (!isCompact(dtype)) throw new Error(`dequantize expects a compact weight, got ${dtype}`);
    const src = ctx.ptr(w), dst = ctx.ptr(s.outputs[0]!), rt = ctx.rt;
    return () => dequantize(rt, dtype, src, n, dst);
  },
  embedding_backward: (ctx, s) => {
    const [ids, dy] = s.inputs as [number, number];
    const dt = s.outputs[0]!;
    const [V, D] = ctx.shape(dt) as [number, number];
    const n = numel(ctx.shape(ids));
    const p = [ctx.ptr(ids), ctx.ptr(dy), ctx.ptr(dt)] as const, ex = ctx.rt.exports;
    return () => ex.embeddingBackward(...p, n, V, D);
  },
  cross_entropy: (ctx, s) => {
    const [logits, targets] = s.inputs as [number, number];
    const [N, V] = ctx.shape(logits) as [number, number];
    const ignore = (s.attrs.ignoreIndex as number | undefined) ?? -100;
    const block = blockOf(V), parts = blocks(N, block);
    const pl = ctx.ptr(logits), pt = ctx.ptr(targets), out = ctx.ptr(s.outputs[0]!), rt = ctx.rt;
    return () => {
      const partials = rt.scratch(parts * 8).base;
      runRows(rt, R.cross_entropy, N, block, [pl, pt, V, ignore, partials], N * V);
      rt.exports.crossEntropyFinish(partials, parts, pt, N, V, ignore, out);
    };
  },
  cross_entropy_backward: (ctx, s) => {
    const [logits, targets, dl] = s.inputs as [number, number, number];
    const [N, V] = ctx.shape(logits) as [number, number];
    const ignore = (s.attrs.ignoreIndex as number | undefined) ?? -100;
    const args = [ctx.ptr(logits), ctx.ptr(targets), ctx.ptr(dl), ctx.ptr(s.outputs[0]!), N, V, ignore];
    const rt = ctx.rt;
    return () => runRows(rt, R.cross_entropy_backward, N, blockOf(V), args, 2 * N * V);
  },
};
