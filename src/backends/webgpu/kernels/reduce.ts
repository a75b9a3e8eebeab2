/** sum and mean over axes (wgsl/reduce.wgsl). */
import { numel } from '../../../graph/types.js';
import type { KernelImpl } from '../executable.js';
import { contiguousStrides, padTo, rowThreads, threadGrid, UniformWriter } from './util.js';

/** Below this many elements per output, one thread per output beats a workgroup per output. */
const SERIAL_MAX = 64;

const reduce = (mean: boolean): KernelImpl => async (s) => {
  const shape = s.inShape(0);
  const rank = shape.length;
  const axes = s.attrs.axes === null || s.attrs.axes === undefined
    ? shape.map((_, i) => i)
    : (s.attrs.axes as number[]).map((a) => (a < 0 ? a + rank : a));
  const st = contiguousStrides(shape);
  // Runs of adjacent axes of one kind (kept or reduced) merge: x is contiguous.
  const kept: [number, number][] = [], red: [number, number][] = [];
  let prevKind: boolean | null = null;
  for (let d = 0; d < rank; d++) {
    if (shape[d] === 1) continue;
    const isRed = axes.includes(d);
    const list = isRed ? red : kept;
    if (prevKind === isRed && list.length) {
      const last = list[list.length - 1]!;
      last[0] *= shape[d]!;
      last[1] = st[d]!;
    } else {
      list.push([shape[d]!, st[d]!]);
    }
    prevKind = isRed;
  }
  const outputs = numel(s.outShape(0));
  const count = numel(red.map(([d]) => d));
  const factor = mean ? 1 / (numel(shape) / Math.max(1, outputs)) : 1;
  const serial = count <= SERIAL_MAX;
  const entry = serial ? 'serial' : 'rows';
  const { grid, stride } = serial ? threadGrid(s, outputs, 256) : { grid: s.grid(outputs), stride: s.grid(outputs)[0] };
  const u = new UniformWriter()
    .u32(outputs, count, kept.length, red.length).f32(factor).u32(stride, 0, 0)
    .u32(...padTo(kept.map(([d]) => d), 4, 1, s.label)).u32(...padTo(kept.map(([, x]) => x), 4, 0, s.label))
    .u32(...padTo(red.map(([d]) => d), 4, 1, s.label)).u32(...padTo(red.map(([, x]) => x), 4, 0, s.label));
  const k = await s.kernel('reduce', entry, serial ? {} : { WG: rowThreads(count) });
  s.dispatch(k, { p: s.uniform(u.bytes()), x: s.input(0), out: s.output(0) }, grid);
};

export const reductions: Record<string, KernelImpl> = { sum: reduce(false), mean: reduce(true) };
