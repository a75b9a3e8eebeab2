// Training end to end on the js backend: the MLP and the one-block transformer learn their toy tasks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createJsBackend } from '../../src/backends/js/index.js';
import { trainMlp, trainTransformerBlock } from '../../src/toy/tasks.js';

test('MLP: loss falls by more than half in 50 steps', async () => {
  const { losses, trainer } = await trainMlp(createJsBackend(), { steps: 50 });
  trainer.dispose();
  assert.ok(losses[0]! > 1.0, `initial loss ${losses[0]} should be near log 4`);
  assert.ok(losses[49]! < losses[0]! * 0.5, `loss went ${losses[0]} → ${losses[49]}`);
});

test('one-block transformer: loss on the arithmetic task falls well below log V', async () => {
  const { losses, trainer } = await trainTransformerBlock(createJsBackend(), { steps: 50 });
  trainer.dispose();
  assert.ok(Math.abs(losses[0]! - Math.log(16)) < 0.6, `initial loss ${losses[0]} should be near log 16 = 2.77`);
  assert.ok(losses[49]! < 1.8, `loss after 50 steps ${losses[49]}`);
});

test('setTrainable freezes a tensor: its gradient work is skipped and it stops changing, the rest still trains', async () => {
  const { trainer, losses } = await trainMlp(createJsBackend(), { steps: 5 });
  const before = await trainer.trainableValues();
  trainer.setTrainable(['w2', 'b2']);
  assert.ok(trainer.skippedSteps > 0, 'some backward steps should be skipped');
  let last = losses[4]!;
  for (let i = 0; i < 10; i++) last = (await trainer.step()).loss;
  const after = await trainer.trainableValues();
  assert.equal(Array.from(after.get('w1')!), Array.from(before.get('w1')!));
  assert.ok(Array.from(after.get('w2')!).some((v, i) => v !== before.get('w2')![i]));
  assert.ok(last < losses[4]!, `loss ${losses[4]} → ${last}`);
  // Unfreezing brings the work back.
  trainer.setTrainable(['w1', 'b1', 'w2', 'b2']);
  assert.is(trainer.skippedSteps, 0);
  trainer.dispose();
});

test('gradient accumulation over 2 micro-batches equals one step on the concatenated batch', async () => {
  const { Graph } = await import('../../src/graph/graph.js');
  const F = await import('../../src/graph/api.js');
  const { Trainer } = await import('../../src/train/trainer.js');
  const x = Float32Array.from({ length: 8 }, (_, i) => Math.sin(i + 1)), y = Int32Array.of(0, 1, 1, 0);
  async function run(rows: number, accumulate: number) {
    const g = new Graph();
    const xi = g.input('x', [rows, 2]), yi = g.input('y', [rows], 'i32'), w = g.param('w', [2, 2]);
    const trainer = await Trainer.create({ graph: g, loss: F.crossEntropy(F.matmul(xi, w), yi), trainable: [w], backend: createJsBackend({ precision: 'f64' }), accumulate, optimizer: { lr: 0.1 } });
    trainer.session.set(w, Float32Array.of(0.1, -0.2, 0.3, 0.05));
    const micro = Array.from({ length: accumulate }, (_, k) => [[xi, x.slice(k * rows * 2, (k + 1) * rows * 2)], [yi, y.slice(k * rows, (k + 1) * rows)]] as [typeof xi, Float32Array | Int32Array][]);
    const r = await trainer.step(micro);
    const w1 = (await trainer.trainableValues()).get('w')!;
    trainer.dispose();
    return { r, w1 };
  }
  const one = await run(4, 1), two = await run(2, 2);
  assert.ok(Math.abs(one.r.gradNorm - two.r.gradNorm) < 1e-12, `${one.r.gradNorm} vs ${two.r.gradNorm}`);
  one.w1.forEach((v, i) => assert.ok(Math.abs(v - two.w1[i]!) < 1e-7));
});

test.run();
