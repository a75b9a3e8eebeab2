// Full fine-tuning, LISA, HFT, GreenTrainer, SpIEL and LT-SFT lower a held-out loss on stories260K hero stories, with the same loss curve
// and held-out loss on js, wasm (1 and 2 threads) and webgpu (1e-4 relative).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Backend } from '../../src/backends/backend.js';
import { batchAt } from '../../src/data/dataset.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import type { LlamaConfig } from '../../src/formats/checkpoint.js';
import { fullUpdater } from '../../src/updaters/full/index.js';
import { backwardCosts } from '../../src/updaters/greentrainer/costs.js';
import { greenTrainerUpdater } from '../../src/updaters/greentrainer/index.js';
import { hftUpdater } from '../../src/updaters/hft/index.js';
import { lisaUpdater } from '../../src/updaters/lisa/index.js';
import { spielUpdater } from '../../src/updaters/spiel/index.js';
import { ltSftUpdater } from '../../src/updaters/lt-sft/index.js';
import { trainBaseWeights } from '../../src/updaters/train.js';
import type { Updater } from '../../src/updaters/types.js';
import { curveDiff, js, otherBackends } from '../backends/backends.js';
import { storyData } from './helpers.js';

const STEPS = 4;
const methods: [string, (config: LlamaConfig) => Updater][] = [
  ['full', () => fullUpdater()],
  ['lisa', () => lisaUpdater({ layers: 2, interval: 2 })],
  ['hft', () => hftUpdater({ stage: 2 })],
  // Probe, selection, probe, selection.
  ['greentrainer', (config) => greenTrainerUpdater({ costs: backwardCosts(config, 4, 24), interval: 2 })],
  // Gradients accumulated at step 1, drop/grow at step 2 and 4 % 2 = 0 is the last step (none there).
  ['spiel', () => spielUpdater({ density: 0.05, interval: 2, accumulate: 1, rate: 0.5, steps: STEPS })],
  // Two full steps, then the top 20% retrained from the base for two.
  ['lt-sft', () => ltSftUpdater({ phase1Steps: 2, density: 0.2 })],
];

async function run(make: (config: LlamaConfig) => Updater, backend: Backend) {
  const { ckpt, train, held } = await storyData();
  return trainBaseWeights(make(ckpt.config), { checkpoint: ckpt, backend, data: train, evalData: held, steps: STEPS, batch: 4, lr: 1e-3, decay: 'constant', seed: 2 });
}

test('each method lowers the held-out loss; the same curves on wasm and webgpu', async () => {
  const { ckpt, held } = await storyData();
  const rt = new LlamaRuntime(ckpt, js());
  const b = batchAt(held, 0, held.rows), T = held.seq;
  const rows = Array.from({ length: held.rows }, (_, i) => Array.from(b.ids.subarray(i * T, (i + 1) * T)));
  const tgs = Array.from({ length: held.rows }, (_, i) => Array.from(b.targets.subarray(i * T, (i + 1) * T)));
  const before = (await rt.evalTargets(rows, tgs, { batch: 4, seq: T })).loss;
  rt.dispose();
  const ref = new Map<string, Awaited<ReturnType<typeof run>>>();
  for (const [name, make] of methods) {
    const r = await run(make, js());
    assert.ok(r.evalLoss! < before - 0.05, `${name}: held-out ${before} → ${r.evalLoss}`);
    ref.set(name, r);
  }
  for (const { name: bk, backend } of await otherBackends()) {
    for (const [name, make] of methods) {
      const r = await run(make, backend), want = ref.get(name)!;
      const diff = curveDiff(want.losses, r.losses);
      assert.ok(diff < 1e-4, `${name} on ${bk}: the curve differs by ${diff}`);
      assert.ok(Math.abs(r.evalLoss! - want.evalLoss!) < 1e-4 * want.evalLoss!, `${name} on ${bk}: held-out ${r.evalLoss} vs ${want.evalLoss}`);
    }
    backend.dispose();
  }
});

test.run();
