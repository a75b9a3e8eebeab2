/** RMSNorm and LayerNorm, forward and backward (wgsl/norm.wgsl). */
import { numel } from '../../../graph/types.js';
import type { KernelImpl, Range, StepBuilder } from '../executable.js';
import { rowThreads, UniformWriter } from './util.js';

/** Rows summed by one thread of the weight-gradient pass before the chunks are added up. */
const CHUNK_ROWS = 64;

function dims(s: StepBuilder): { rows: number; D: number } {
  const x = s.inShape(0);
  const D = x[x.length - 1] ?? 1;
  return { rows: D === 0 ? 0 : numel(x) / D, D };
}

function params(s: StepBuilder, rows: number, D: number, stride: number): Range {
  const chunks = Math.ceil(rows / CHUNK_ROWS);
  return s.uniform(new UniformWriter().u32(rows, D).f32(s.attrs.eps as number).u32(CHUNK_ROWS, chunks, stride, 0, 0).bytes());
}

const forward = (layer: boolean): KernelImpl => async (s) => {
  const { rows, D } = dims(s);
  const grid = s.grid(rows);
  const p = params(s, rows, D, grid[0]);
  const k = await s.kernel('norm', layer ? 'layer_forward' : 'rms_forward', { WG: rowThreads(D) });
  const b: Record<string, Range> = { p, x: s.input(0), w: s.input(1), y: s.output(0) };
  if (layer) b.bias = s.input(2);
  s.dispatch(k, b, grid);
};

const backward = (layer: boolean): KernelImpl => async (s) => {
  const { rows, D } = dims(s);
  const grid = s.grid(rows);
  const p = params(s, rows, D, grid[0]);
  const stats = s.scratch(rows * (layer ? 2 : 1) * 4);
  const x = s.input(0), w = s.input(1), dy = s.input(2);
  const rowKernel = await s.kernel('norm', layer ? 'layer_backward' : 'rms_backward', { WG: rowThreads(D) });
  s.dispatch(rowKernel, { p, x, w, dy, y: s.output(0), stats: { ...stats, written: true } }, grid);

  const chunks = Math.ceil(rows / CHUNK_ROWS);
  const pw = s.scratch(chunks * D * 4);
  // RMSNorm has no bias: the bias bindings still exist in the shader, pointed at unused scratch.
  const pb = layer ? s.scratch(chunks * D * 4) : s.scratch(16);
  const dw = s.output(1);
  const db = layer ? s.output(2) : { ...s.scratch(16), written: true };
  const partial = await s.kernel('norm', 'col_partial', { LAYER: layer });
  s.dispatch(partial, { p, x, dy, stats, pw: { ...pw, written: true }, pb: { ...pb, written: true } }, [Math.ceil(D / 256), chunks]);
  const final = await s.kernel('norm', 'col_final', { LAYER: layer });
  s.dispatch(final, { p, pw, pb, dw, db }, [Math.ceil(D / 256)]);
};

export const norms: Record<string, KernelImpl> = {
  rmsnorm: forward(false),
  layernorm: forward(true),
  rmsnorm_backward: backward(false),
  layernorm_backward: backward(true),
};
