// Checkpoint segments on plain graphs: recomputed gradients equal the plain ones bit for bit, a node
// that writes in place is read as it is instead of being copied, and bad segments are refused by name.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createJsBackend } from '../../src/backends/js/index.js';
import * as F from '../../src/graph/api.js';
import { gradients } from '../../src/graph/autodiff.js';
import { type CheckpointSegment, segment } from '../../src/graph/checkpoint.js';
import { Graph, type Tensor } from '../../src/graph/graph.js';
import { Session } from '../../src/scheduler/session.js';
import { randn } from '../helpers.js';

/** Three residual MLP blocks x ← x + gelu(x·W1)·W2, each a segment when asked; gradients of every W. */
async function mlp(checkpoint: boolean): Promise<{ grads: Float32Array[]; recomputed: string[] }> {
  const g = new Graph();
  let x = g.input('x', [6, 4]);
  const ws: Tensor[] = [];
  const segments: CheckpointSegment[] = [];
  for (let l = 0; l < 3; l++) {
    const w1 = g.param(`w1.${l}`, [4, 8]), w2 = g.param(`w2.${l}`, [8, 4]);
    ws.push(w1, w2);
    const block = segment(g, `block${l}`, () => F.add(x, F.matmul(F.gelu(F.matmul(x, w1)), w2)));
    x = block.value;
    segments.push(block.segment);
  }
  const loss = F.sum(F.mul(x, x));
  const grads = gradients(loss, ws, checkpoint ? { checkpoint: segments } : {});
  const s = await Session.create(g, createJsBackend());
  s.set('x', Float32Array.from(randn(24, 1)));
  ws.forEach((w, i) => s.set(w, Float32Array.from(randn(32, 2 + i, 0.5))));
  await s.run();
  const out = await s.getMany(ws.map((w) => grads.get(w)));
  s.dispose();
  return { grads: out.map((a) => Float32Array.from(a)), recomputed: g.nodes.filter((n) => n.name?.endsWith('.recompute')).map((n) => `${n.name}:${n.op}`) };
}

test('segments of a plain graph: the same gradients bit for bit, with the inner values recomputed', async () => {
  const [plain, ckpt] = [await mlp(false), await mlp(true)];
  assert.equal(plain.recomputed, []);
  // Each block's matmul(x, W1) and gelu are read by the gradient rules (the residual add is not), last block first.
  assert.equal(ckpt.recomputed, [2, 1, 0].flatMap((l) => [`block${l}.recompute:matmul`, `block${l}.recompute:gelu`]));
  plain.grads.forEach((a, i) => assert.equal(Array.from(ckpt.grads[i]!), Array.from(a), `gradient ${i}`));
});

test('a node that writes in place is never recomputed: its value is read as it is', () => {
  const g = new Graph();
  const x = g.input('x', [3]), w = g.param('w', [3]), acc = g.state('acc', [3]);
  const { value: y, segment: s } = segment(g, 'seg', () => F.mul(F.exp(F.accumulate(acc, x)), w));
  const loss = F.sum(y);
  const grads = gradients(loss, [w], { checkpoint: [s] });
  const copies = g.nodes.filter((n) => n.name === 'seg.recompute');
  assert.equal(copies.map((n) => n.op), ['exp']);
  // The copied exp reads the accumulate node's own output.
  assert.is(copies[0]!.inputs[0], g.nodes.find((n) => n.op === 'accumulate')!.outputs[0]);
  assert.ok(grads.get(w));
});

test('overlapping or out-of-range segments are refused, naming them', () => {
  const g = new Graph();
  const w = g.param('w', [2]);
  const loss = F.sum(F.exp(F.exp(w)));
  assert.throws(() => gradients(loss, [w], { checkpoint: [{ name: 'a', start: 0, end: 2 }, { name: 'b', start: 1, end: 3 }] }), /segments a \[0, 2\) and b \[1, 3\) overlap/);
  assert.throws(() => gradients(loss, [w], { checkpoint: [{ name: 'far', start: 1, end: 9 }] }), /segment far \[1, 9\) is outside the forward nodes \[0, 3\)/);
});

test.run();
