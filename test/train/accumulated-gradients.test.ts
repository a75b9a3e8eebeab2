// With gradient accumulation, the gradients of the last step stay readable after it (as they do without):
// the running sum is cleared when the next step begins, not right after the update. Loss sum(w ⊙ x) has
// gradient x, so the expected mean over micro-batches is exact.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createJsBackend } from '../../src/backends/js/index.js';
import * as F from '../../src/graph/api.js';
import { Graph } from '../../src/graph/graph.js';
import { Trainer } from '../../src/train/trainer.js';

test('after an accumulated step, gradientValues is that step\'s mean gradient; the next step starts from zero', async () => {
  const g = new Graph();
  const w = g.param('w', [3]), x = g.input('x', [3]);
  const trainer = await Trainer.create({ graph: g, loss: F.sum(F.mul(w, x)), trainable: [w], backend: createJsBackend({ precision: 'f64' }), accumulate: 3, optimizer: { lr: 0.1 } });
  trainer.session.set(w, Float64Array.of(1, 2, 3));
  for (let s = 1; s <= 3; s++) {
    await trainer.step([1, 2, 3].map((k) => [[x, Float32Array.of(s * k, -k, 2)]]));
    // Mean of (s·k, −k, 2) over k = 1, 2, 3.
    assert.equal(Array.from((await trainer.gradientValues(['w'])).get('w')!), [2 * s, -2, 2], `after step ${s}`);
  }
  trainer.dispose();
});

test.run();
