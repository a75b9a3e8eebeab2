/** Embedding gather (from an f32 or a compact table) and scatter-add (wgsl/embedding.wgsl). */
import { numel } from '../../../graph/types.js';
import type { KernelImpl } from '../executable.js';
import { weightLayout } from './compact.js';
import { recordFill } from './elementwise.js';
import { threadGrid } from './util.js';

export const embedding: KernelImpl = async (s) => {
  const [V, D] = s.inShape(0) as [number, number];
  const N = numel(s.inShape(1));
  const { type, scales } = weightLayout(s.inInfo(0).dtype, V * D, s.label);
  const { grid, stride } = threadGrid(s, N * D, 256);
  const k = await s.kernel('embedding', 'gather', { W_TYPE: type });
  s.dispatch(k, { p: s.uniform(new Uint32Array([N, D, V, stride, scales, 0, 0, 0])), ids: s.input(1), w: s.input(0), out: s.output(0) }, grid);
};

export const embeddingBackward: KernelImpl = async (s) => {
  const [V, D] = s.outShape(0) as [number, number];
  const N = numel(s.inShape(0));
  await recordFill(s, s.output(0), V * D, 0);
  const { grid, stride } = threadGrid(s, N * D, 256);
  const k = await s.kernel('embedding', 'scatter_add');
  s.dispatch(k, { p: s.uniform(new Uint32Array([N, D, V, stride, 0, 0, 0, 0])), ids: s.input(0), dy: s.input(1), dtable: s.output(0) }, grid);
};
