/** The fused AdamW update (wgsl/adamw.wgsl); semantics in src/backends/js/kernels/adamw.ts. */
import type { AdamWHyper } from '../../backend.js';
import { numel } from '../../../graph/types.js';
import type { Range, StepBuilder } from '../executable.js';
import type { Kernel, PipelineCache } from '../pipelines.js';

export const ADAMW_HYPER_BYTES = 48;

export const adamwKernel = (p: PipelineCache): Promise<Kernel> => p.kernel('adamw', 'main');

/**
 * Records the update of one parameter (outputs: param, m, v, updated in place; input: grad) and returns
 * the encoder of its per-call uniform block.
 */
export function recordAdamw(s: StepBuilder, kernel: Kernel, hyper: Range): (h: AdamWHyper) => ArrayBuffer {
  const n = numel(s.outShape(0));
  const grid = s.grid(Math.ceil(n / 256));
  const stride = grid[0] * 256;
  s.dispatch(kernel, { h: hyper, param: s.output(0), grad: s.input(0), m: s.output(1), v: s.output(2) }, grid);
  return (h) => {
    const buf = new ArrayBuffer(ADAMW_HYPER_BYTES);
    // Bias corrections in float64, as the reference computes them, then rounded once.
    const bc1 = 1 - Math.pow(h.beta1, h.step), bc2 = 1 - Math.pow(h.beta2, h.step);
    new Float32Array(buf, 0, 10).set([h.lr, h.beta1, h.beta2, h.eps, 1 - h.lr * h.weightDecay, h.gradScale, bc1, bc2, 1 - h.beta1, 1 - h.beta2]);
    new Uint32Array(buf, 40, 2).set([n, stride]);
    return buf;
  };
}
