/** Reductions (sum, mean over axes) and their adjoint, broadcast_to. */
import * as F from '../api.js';
import type { Tensor } from '../graph.js';
import type { Shape } from '../types.js';
import { numel, shapeStr } from '../types.js';
import { defineOp } from './registry.js';
import { broadcastShapes, expectInputs, normalizeAxes, sameShape, shapeAttr } from './shape.js';

function reducedShape(shape: Shape, axes: number[], keepDims: boolean): number[] {
  const out: number[] = [];
  shape.forEach((d, i) => {
    if (!axes.includes(i)) out.push(d);
    else if (keepDims) out.push(1);
  });
  return out;
}

/** Sum `t` down to `shape` (the adjoint of broadcasting `shape` up to t's shape). */
export function reduceTo(t: Tensor, shape: Shape): Tensor {
  if (sameShape(t.shape, shape)) return t;
  const lead = t.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < t.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && t.shape[i] !== 1)) axes.push(i);
  }
  const s = axes.length ? F.sum(t, axes, true) : t;
  return sameShape(s.shape, shape) ? s : F.reshape(s, shape);
}

function reduceGrad(x: Tensor, dy: Tensor, axes: number[]): Tensor {
  const kept = reducedShape(x.shape, axes, true);
  return F.broadcastTo(F.reshape(dy, kept), x.shape);
}

for (const name of ['sum', 'mean'] as const) {
  defineOp({
    name,
    infer(ins, attrs) {
      expectInputs(ins, 1);
      if (ins[0]!.dtype !== 'f32') throw new Error('expects an f32 input');
      const axes = normalizeAxes(attrs.axes, ins[0]!.shape.length);
      return [{ shape: reducedShape(ins[0]!.shape, axes, attrs.keepDims === true), dtype: 'f32' }];
    },
    grad({ inputs: [x], dOutputs: [dy], node }) {
      const axes = normalizeAxes(node.attrs.axes, x!.rank);
      const g = reduceGrad(x!, dy!, axes);
      if (name === 'sum') return [g];
      const n = numel(x!.shape) / Math.max(1, numel(dy!.shape));
      return [F.scale(g, 1 / n)];
    },
  });
}

defineOp({
  name: 'broadcast_to',
  infer(ins, attrs) {
    expectInputs(ins, 1);
    const shape = shapeAttr(attrs, 'shape');
    const b = broadcastShapes(ins[0]!.shape, shape);
    if (!sameShape(b, shape)) throw new Error(`cannot broadcast ${shapeStr(ins[0]!.shape)} to ${shapeStr(shape)}`);
    return [{ shape, dtype: ins[0]!.dtype }];
  },
  grad({ inputs: [x], dOutputs: [dy] }) { return [reduceTo(dy!, x!.shape)]; },
});
