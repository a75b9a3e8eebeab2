/** Fused attention forward and backward (wgsl/attention.wgsl). */
import type { KernelImpl, Range, StepBuilder } from '../executable.js';
import { WebgpuError } from '../errors.js';
import { threadGrid, UniformWriter } from './util.js';

const WG = 64;
const MAXE = 16;

type Pass = 'forward' | 'bwd_dq' | 'bwd_dkdv';

/** Workgroup memory a pass uses, in bytes, for a tile of `tile` rows and a padded head size `dpad`. */
function sharedBytes(pass: Pass, tile: number, dpad: number): number {
  const words = pass === 'forward' ? 3 * tile * dpad + tile * tile
    : pass === 'bwd_dq' ? 4 * tile * dpad + tile * tile + 2 * tile
      : 4 * tile * dpad + 2 * tile * tile + 2 * tile;
  return 4 * words + 4;
}

/** The largest tile (power of two ≤ 16) whose per-thread accumulators and workgroup memory fit. */
function tiling(s: StepBuilder, pass: Pass, D: number): { TILE: number; DPAD: number } {
  const limit = s.limits.maxComputeWorkgroupStorageSize;
  for (let tile = 16; tile >= 1; tile /= 2) {
    const tpr = WG / tile;
    const dpad = Math.max(tpr, Math.ceil(D / tpr) * tpr);
    if (dpad / tpr <= MAXE && sharedBytes(pass, tile, dpad) <= limit) return { TILE: tile, DPAD: dpad };
  }
  throw new WebgpuError(`${s.label}: head size ${D} does not fit the attention kernel on this device (workgroup memory ${limit} bytes)`);
}

interface Dims { B: number; T: number; Hq: number; D: number; S: number; Hkv: number }

function dimsOf(s: StepBuilder): Dims {
  const [B, T, Hq, D] = s.inShape(0) as [number, number, number, number];
  const [, S, Hkv] = s.inShape(1) as [number, number, number];
  return { B, T, Hq, D, S, Hkv };
}

/** Which lengths input the step has: 0 none, 1 kvLen (i32 [1]), 2 per-row key lengths (i32 [B]). */
function lengthsKind(s: StepBuilder, index: number): number {
  if (s.inputCount <= index) return 0;
  return s.attrs.rowLengths === true ? 2 : 1;
}

function params(s: StepBuilder, d: Dims, kind: number, stride = 0): Range {
  return s.uniform(new UniformWriter()
    .u32(d.B, d.T, d.Hq, d.D, d.S, d.Hkv, d.Hq / d.Hkv, s.attrs.causal === true ? 1 : 0)
    .f32(s.attrs.scale as number).u32(kind, stride).f32(-Infinity)
    .u32((s.attrs.window as number | undefined) ?? 0).f32((s.attrs.softcap as number | undefined) ?? 0)
    .u32(s.attrs.mask === true ? 1 : 0).bytes());
}

export const attention: KernelImpl = async (s) => {
  const d = dimsOf(s);
  // An explicit mask (attr mask) is the last input; the optional lengths come before it.
  const masked = s.attrs.mask === true;
  const kind = s.inputCount - (masked ? 1 : 0) > 3 ? lengthsKind(s, 3) : 0;
  const lengths = kind ? s.input(3) : s.constant(new Int32Array(4));
  const mask = masked ? s.input(s.inputCount - 1) : s.constant(new Int32Array(4));
  const k = await s.kernel('attention', 'forward', tiling(s, 'forward', d.D));
  const tile = tiling(s, 'forward', d.D).TILE;
  s.dispatch(k, {
    p: params(s, d, kind), q: s.input(0), k: s.input(1), v: s.input(2), lengths, mask, out: s.output(0), lse: s.output(1),
  }, [Math.ceil(d.T / tile), d.Hq, d.B]);
};

export const attentionBackward: KernelImpl = async (s) => {
  const d = dimsOf(s);
  const q = s.input(0), k = s.input(1), v = s.input(2), out = s.input(3), lse = s.input(4), dout = s.input(5);
  const kind = lengthsKind(s, 6);
  const lengths = kind ? s.input(6) : s.constant(new Int32Array(4));
  const rows = d.B * d.Hq * d.T;
  const delta = s.scratch(rows * 4);
  const { grid, stride } = threadGrid(s, rows, WG);
  const p = params(s, d, kind, stride);
  s.dispatch(await s.kernel('attention', 'bwd_delta'), { p, out, dout, delta: { ...delta, written: true } }, grid);
  const dqTiles = tiling(s, 'bwd_dq', d.D);
  s.dispatch(await s.kernel('attention', 'bwd_dq', dqTiles), {
    p, q, k, v, lse, lengths, dout, delta, dq: s.output(0),
  }, [Math.ceil(d.T / dqTiles.TILE), d.Hq, d.B]);
  const kvTiles = tiling(s, 'bwd_dkdv', d.D);
  s.dispatch(await s.kernel('attention', 'bwd_dkdv', kvTiles), {
    p, q, k, v, lse, lengths, dout, delta, dk: s.output(1), dv: s.output(2),
  }, [Math.ceil(d.S / kvTiles.TILE), d.Hkv, d.B]);
};
