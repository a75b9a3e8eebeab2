/** Mean cross-entropy and its gradient (wgsl/cross_entropy.wgsl). */
import type { KernelImpl, StepBuilder } from '../executable.js';
import { rowThreads, UniformWriter } from './util.js';

function setup(s: StepBuilder): { N: number; V: number; grid: [number, number, number]; p: ReturnType<StepBuilder['uniform']> } {
  const [N, V] = s.inShape(0) as [number, number];
  const grid = s.grid(N);
  const ignore = (s.attrs.ignoreIndex as number | undefined) ?? -100;
  const p = s.uniform(new UniformWriter().u32(N, V).i32(ignore).u32(grid[0]).bytes());
  return { N, V, grid, p };
}

export const crossEntropy: KernelImpl = async (s) => {
  const { N, V, grid, p } = setup(s);
  const rowLoss = s.scratch(N * 4), rowCount = s.scratch(N * 4);
  s.dispatch(await s.kernel('cross_entropy', 'rows', { WG: rowThreads(V) }), {
    p, logits: s.input(0), targets: s.input(1), rowLoss: { ...rowLoss, written: true }, rowCount: { ...rowCount, written: true },
  }, grid);
  s.dispatch(await s.kernel('cross_entropy', 'total', { WG: rowThreads(N) }), { p, rowLoss, rowCount, loss: s.output(0) }, [1]);
};

export const crossEntropyBackward: KernelImpl = async (s) => {
  const { N, V, grid, p } = setup(s);
  const count = s.scratch(16);
  s.dispatch(await s.kernel('cross_entropy', 'count', { WG: rowThreads(N) }), { p, targets: s.input(1), rowCount: { ...count, written: true } }, [1]);
  s.dispatch(await s.kernel('cross_entropy', 'grad_rows', { WG: rowThreads(V) }), {
    p, logits: s.input(0), targets: s.input(1), rowCount: count, dloss: s.input(2), dlogits: s.output(0),
  }, grid);
};
