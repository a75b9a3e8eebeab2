/** Layout ops: reshape (a view), transpose, slice and its adjoint pad, concat, and fill. */
import * as F from '../api.js';
import { numel, shapeStr } from '../types.js';
import { defineOp } from './registry.js';
import { expectInputs, normalizeAxis, numAttr, shapeAttr } from './shape.js';

defineOp({
  name: 'reshape',
  view: true,
  infer(ins, attrs) {
    expectInputs(ins, 1);
    const raw = attrs.shape;
    if (!Array.isArray(raw) || !raw.every((d) => typeof d === 'number' && Number.isInteger(d) && d >= -1)) {
      throw new Error(`attribute shape must be a list of integers ≥ -1 (got ${JSON.stringify(raw)})`);
    }
    const dims = raw as number[];
    const total = numel(ins[0]!.shape);
    const unknown = dims.filter((d) => d === -1).length;
    if (unknown > 1) throw new Error('at most one dimension may be -1');
    const known = dims.reduce((p, d) => (d === -1 ? p : p * d), 1);
    const shape = dims.map((d) => (d === -1 ? (known === 0 ? 0 : total / known) : d));
    if (numel(shape) !== total || shape.some((d) => !Number.isInteger(d))) {
      throw new Error(`cannot reshape ${shapeStr(ins[0]!.shape)} (${total} elements) to ${shapeStr(dims)}`);
    }
    return [{ shape, dtype: ins[0]!.dtype }];
  },
  grad({ inputs: [x], dOutputs: [dy] }) { return [F.reshape(dy!, x!.shape)]; },
});

defineOp({
  name: 'transpose',
  infer(ins, attrs) {
    expectInputs(ins, 1);
    const perm = shapeAttr(attrs, 'perm');
    const rank = ins[0]!.shape.length;
    if (perm.length !== rank || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
      throw new Error(`perm ${shapeStr(perm)} is not a permutation of ${rank} axes`);
    }
    return [{ shape: perm.map((p) => ins[0]!.shape[p]!), dtype: ins[0]!.dtype }];
  },
  grad({ node, dOutputs: [dy] }) {
    const perm = node.attrs.perm as number[];
    const inv = perm.map((_, i) => perm.indexOf(i));
    return [F.transpose(dy!, inv)];
  },
});

defineOp({
  name: 'slice',
  infer(ins, attrs) {
    expectInputs(ins, 1);
    const shape = [...ins[0]!.shape];
    const axis = normalizeAxis(attrs.axis, shape.length);
    const start = numAttr(attrs, 'start'), end = numAttr(attrs, 'end');
    if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start <= end && end <= shape[axis]!)) {
      throw new Error(`slice [${start}, ${end}) is outside axis ${axis} of size ${shape[axis]}`);
    }
    shape[axis] = end - start;
    return [{ shape, dtype: ins[0]!.dtype }];
  },
  grad({ node, inputs: [x], dOutputs: [dy] }) {
    const axis = normalizeAxis(node.attrs.axis, x!.rank);
    const start = node.attrs.start as number, end = node.attrs.end as number;
    return [F.pad(dy!, axis, start, x!.shape[axis]! - end)];
  },
});

defineOp({
  name: 'pad',
  infer(ins, attrs) {
    expectInputs(ins, 1);
    const shape = [...ins[0]!.shape];
    const axis = normalizeAxis(attrs.axis, shape.length);
    const before = numAttr(attrs, 'before'), after = numAttr(attrs, 'after');
    if (!(Number.isInteger(before) && Number.isInteger(after) && before >= 0 && after >= 0)) throw new Error('before and after must be integers ≥ 0');
    shape[axis] = shape[axis]! + before + after;
    return [{ shape, dtype: ins[0]!.dtype }];
  },
  grad({ node, inputs: [x], dOutputs: [dy] }) {
    const axis = normalizeAxis(node.attrs.axis, x!.rank);
    const before = node.attrs.before as number;
    return [F.slice(dy!, axis, before, before + x!.shape[axis]!)];
  },
});

defineOp({
  name: 'concat',
  infer(ins, attrs) {
    if (ins.length < 1) throw new Error('expects at least one input');
    const first = ins[0]!;
    const axis = normalizeAxis(attrs.axis, first.shape.length);
    const shape = [...first.shape];
    shape[axis] = 0;
    for (const v of ins) {
      const ok = v.dtype === first.dtype && v.shape.length === first.shape.length && v.shape.every((d, i) => i === axis || d === first.shape[i]);
      if (!ok) throw new Error(`inputs differ outside axis ${axis}`);
      shape[axis] += v.shape[axis]!;
    }
    return [{ shape, dtype: first.dtype }];
  },
  grad({ node, inputs, dOutputs: [dy], needs }) {
    const axis = normalizeAxis(node.attrs.axis, inputs[0]!.rank);
    let at = 0;
    return inputs.map((x, i) => {
      const start = at;
      at += x.shape[axis]!;
      return needs[i] ? F.slice(dy!, axis, start, at) : null;
    });
  },
});

defineOp({
  name: 'fill',
  infer(ins, attrs) {
    expectInputs(ins, 0);
    numAttr(attrs, 'value');
    return [{ shape: shapeAttr(attrs, 'shape'), dtype: 'f32' }];
  },
});
