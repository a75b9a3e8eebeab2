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

test.run();
