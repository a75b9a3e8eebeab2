/** Elementwise ops: binary with numpy broadcasting, unary, and the activations. */
import * as F from '../api.js';
import type { Tensor } from '../graph.js';
import { defineOp } from './registry.js';
import { broadcastShapes, expectInputs, numAttr, shapeAttr } from './shape.js';
import { reduceTo } from './reduce.js';

function f32Only(inputs: readonly { dtype: string }[]): void {
  for (const v of inputs) if (v.dtype !== 'f32') throw new Error('expects f32 inputs');
}

defineOp({
  name: 'add',
  infer(ins) { expectInputs(ins, 2); f32Only(ins); return [{ shape: broadcastShapes(ins[0]!.shape, ins[1]!.shape), dtype: 'f32' }]; },
  grad({ inputs: [a, b], dOutputs: [dy], needs }) {
    return [needs[0] ? reduceTo(dy!, a!.shape) : null, needs[1] ? reduceTo(dy!, b!.shape) : null];
  },
});

defineOp({
  name: 'sub',
  infer(ins) { expectInputs(ins, 2); f32Only(ins); return [{ shape: broadcastShapes(ins[0]!.shape, ins[1]!.shape), dtype: 'f32' }]; },
  grad({ inputs: [a, b], dOutputs: [dy], needs }) {
    return [needs[0] ? reduceTo(dy!, a!.shape) : null, needs[1] ? reduceTo(F.neg(dy!), b!.shape) : null];
  },
});

defineOp({
  name: 'mul',
  infer(ins) { expectInputs(ins, 2); f32Only(ins); return [{ shape: broadcastShapes(ins[0]!.shape, ins[1]!.shape), dtype: 'f32' }]; },
  grad({ inputs: [a, b], dOutputs: [dy], needs }) {
    return [needs[0] ? reduceTo(F.mul(dy!, b!), a!.shape) : null, needs[1] ? reduceTo(F.mul(dy!, a!), b!.shape) : null];
  },
});

defineOp({
  name: 'div',
  infer(ins) { expectInputs(ins, 2); f32Only(ins); return [{ shape: broadcastShapes(ins[0]!.shape, ins[1]!.shape), dtype: 'f32' }]; },
  // y = a / b: da = dy / b, db = −dy · y / b
  grad({ inputs: [a, b], outputs: [y], dOutputs: [dy], needs }) {
    return [
      needs[0] ? reduceTo(F.div(dy!, b!), a!.shape) : null,
      needs[1] ? reduceTo(F.neg(F.div(F.mul(dy!, y!), b!)), b!.shape) : null,
    ];
  },
});

function unary(name: string, grad: (x: Tensor, y: Tensor, dy: Tensor, factor: number) => Tensor, checkAttrs?: (a: Record<string, unknown>) => void): void {
  defineOp({
    name,
    infer(ins, attrs) { expectInputs(ins, 1); f32Only(ins); checkAttrs?.(attrs); return [{ shape: ins[0]!.shape, dtype: 'f32' }]; },
    grad({ node, inputs: [x], outputs: [y], dOutputs: [dy] }) {
      return [grad(x!, y!, dy!, typeof node.attrs.factor === 'number' ? node.attrs.factor : 1)];
    },
  });
}

unary('scale', (_x, _y, dy, f) => F.scale(dy, f), (a) => { numAttr(a as never, 'factor'); });
unary('neg', (_x, _y, dy) => F.neg(dy));
unary('exp', (_x, y, dy) => F.mul(dy, y));
unary('log', (x, _y, dy) => F.div(dy, x));
unary('sqrt', (_x, y, dy) => F.div(dy, F.scale(y, 2)));
unary('silu', (x, _y, dy) => x.graph.apply1('silu_backward', [x, dy]));
unary('gelu', (x, _y, dy) => x.graph.apply1('gelu_backward', [x, dy]));
// erf′(x) = 2/√π · exp(−x²)
unary('erf', (x, _y, dy) => F.mul(dy, F.scale(F.exp(F.neg(F.mul(x, x))), 2 / Math.sqrt(Math.PI))));
// tanh′ = 1 − y²
unary('tanh', (_x, y, dy) => F.sub(dy, F.mul(dy, F.mul(y, y))));
unary('relu', (x, _y, dy) => x.graph.apply1('relu_backward', [x, dy]));

// Backward kernels of the activations: dx = dy · f'(x). Not differentiated again.
for (const name of ['silu_backward', 'gelu_backward', 'relu_backward']) {
  defineOp({
    name,
    infer(ins) {
      expectInputs(ins, 2); f32Only(ins);
      if (ins[0]!.shape.join() !== ins[1]!.shape.join()) throw new Error('x and dy must have the same shape');
      return [{ shape: ins[0]!.shape, dtype: 'f32' }];
    },
  });
}

// dropout(x, seed i32 [1]) with rate p: element i is kept when u(seed + salt, i) ≥ p and scaled by 1/(1−p);
// the salt attribute (default 0) gives each dropout site its own mask from one step seed.
// u is a counter-based hash (dropoutUniform), identical on every backend, so the backward pass
// re-derives the same mask from the seed and dropout's adjoint is dropout itself.
defineOp({
  name: 'dropout',
  infer(ins, attrs) {
    expectInputs(ins, 2); f32Only([ins[0]!]);
    const p = numAttr(attrs, 'p');
    if (!(p >= 0 && p < 1)) throw new Error(`dropout rate p must be in [0, 1) (got ${p})`);
    if (ins[1]!.dtype !== 'i32' || ins[1]!.shape.join() !== '1') throw new Error('seed must be i32 [1]');
    return [{ shape: ins[0]!.shape, dtype: 'f32' }];
  },
  grad({ node, inputs: [, seed], dOutputs: [dy] }) { return [dy!.graph.apply1('dropout', [dy!, seed!], node.attrs), null]; },
});

/** The dropout hash: a uniform number in [0, 1) from (seed, index) with 32-bit integer mixing only. */
export function dropoutUniform(seed: number, i: number): number {
  let h = (Math.imul(seed, 0x9e3779b1) + Math.imul(i, 0x85ebca77)) >>> 0;
  h ^= h >>> 15; h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 12; h = Math.imul(h, 0x297a2d39);
  h ^= h >>> 15;
  return (h >>> 8) / 16777216;
}

// uniform(seed i32 [1]) → f32 [shape]: u_i = (⌊k/2⌋ + ½)·2⁻²³ with k = the dropout hash's 24 bits of
// (seed + salt, i). It lies in (0, 1) and is exact in f32, so every backend draws the same numbers from a
// step seed (the relaxed Bernoulli routing of Poly). Nothing flows back to an integer seed.
defineOp({
  name: 'uniform',
  infer(ins, attrs) {
    expectInputs(ins, 1);
    if (ins[0]!.dtype !== 'i32' || ins[0]!.shape.join() !== '1') throw new Error('seed must be i32 [1]');
    numAttr(attrs, 'salt', 0);
    return [{ shape: shapeAttr(attrs, 'shape'), dtype: 'f32' }];
  },
  grad() { return [null]; },
});

/** The uniform op's number i for a seed (salt included): see the op. */
export function uniformAt(seed: number, i: number): number {
  return (Math.floor(dropoutUniform(seed, i) * 8388608) + 0.5) / 8388608;
}

// stop_gradient(x) = x, but no gradient flows back through it (DoRA's detached weight norm).
defineOp({
  name: 'stop_gradient',
  view: true,
  infer(ins) { expectInputs(ins, 1); return [{ shape: ins[0]!.shape, dtype: ins[0]!.dtype }]; },
  grad() { return [null]; },
});

// accumulate(acc, x) → acc + x written into acc's memory (gradient accumulation across micro-batches).
defineOp({
  name: 'accumulate',
  inplace: true,
  infer(ins) {
    expectInputs(ins, 2); f32Only(ins);
    if (ins[0]!.shape.join() !== ins[1]!.shape.join()) throw new Error('acc and x must have the same shape');
    return [{ shape: ins[0]!.shape, dtype: 'f32' }];
  },
});
