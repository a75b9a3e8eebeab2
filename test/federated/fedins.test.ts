// FedIns on stories260K: one client is central training step for step (every parameter equal); the server's
// global adapter is the shard-size-weighted mean of the clients' (float64 check); a row whose instance
// matches a planted key uses exactly that pool entry (equal to a plain SSF adapter with its scale and shift);
// the pool's gradients, key_match included, against finite differences; per-client held-out losses.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { SSF_POOL_KEYS, ssfPoolKeys } from '../../src/adapters/ssf-pool/index.js';
import { instanceFeatures } from '../../src/adapters/idpt/instance.js';
import type { ParamStore } from '../../src/adapters/types.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { blocksLoss, federatedTrain } from '../../src/federated/fedavg.js';
import { fineTune } from '../../src/train/finetune.js';
import { evalLoss, forwardLogits, gradientCheck, heroBlocks, randomizeParams, stories } from '../methods/helpers.js';

const ckpt = await stories();
const CONFIG = { poolSize: 3, topK: 2, targetModules: ['q_proj', 'v_proj', 'down_proj'] };
const make = () => { const m = new AdaptedModel(ckpt); m.addAdapter('pool', 'ssf-pool', CONFIG, { seed: 4 }); return m; };

test('one client is central training, step for step', async () => {
  const shard = heroBlocks(ckpt, 32, 12, 7);
  const fed = await federatedTrain({ makeModel: make, adapter: 'pool', backend: createJsBackend(), shards: [shard], rounds: 3, localSteps: 2, batch: 4, lr: 1e-2, seed: 1 });
  const central = make();
  await (await fineTune({ model: central, adapter: 'pool', backend: createJsBackend(), data: shard, steps: 6, batch: 4, lr: 1e-2, decay: 'constant', seed: 1 })).run.syncAdapter();
  let worst = 0, moved = 0;
  const start = make().get('pool').params;
  for (const [k, v] of central.get('pool').params) {
    const f = fed.get('pool').params.get(k)!.data;
    v.data.forEach((x, i) => { worst = Math.max(worst, Math.abs(x - f[i]!)); moved = Math.max(moved, Math.abs(x - start.get(k)!.data[i]!)); });
  }
  assert.ok(worst < 1e-6, `largest difference ${worst}`);
  assert.ok(moved > 1e-3, `training moved the pool (${moved})`);
});

test('the global adapter is the shard-size-weighted mean of the clients\'', async () => {
  const shards = [heroBlocks(ckpt, 32, 12, 7), heroBlocks(ckpt, 32, 4, 11)];
  let seen: { clients: readonly ParamStore[]; global: ParamStore } | undefined;
  await federatedTrain({ makeModel: make, adapter: 'pool', backend: createJsBackend(), shards, rounds: 1, localSteps: 2, batch: 4, lr: 1e-2, onRound: (_r, clients, global) => { seen = { clients, global }; } });
  const [a, b] = seen!.clients;
  let worst = 0, apart = 0;
  for (const [k, g] of seen!.global) {
    g.data.forEach((v, i) => {
      const want = (12 * a!.get(k)!.data[i]! + 4 * b!.get(k)!.data[i]!) / 16;
      worst = Math.max(worst, Math.abs(v - want));
      apart = Math.max(apart, Math.abs(a!.get(k)!.data[i]! - b!.get(k)!.data[i]!));
    });
  }
  assert.ok(worst < 1e-6, `largest difference ${worst}`);
  assert.ok(apart > 1e-4, 'the clients trained apart');
});

test('a row whose instance matches a planted key uses that entry alone', async () => {
  const m = new AdaptedModel(ckpt);
  const pool = m.addAdapter('pool', 'ssf-pool', { ...CONFIG, topK: 1, initStd: 0.3 }, { seed: 2 });
  const ids = Int32Array.from([1, 403, 407, 261, 300, 12, 1, 261, 300, 302, 305, 40]);
  const D = ckpt.config.dim, q = instanceFeatures(m.embeddingTable(), D, ids, undefined, 2, 6);
  // Entry 2's key is row 0's query; the others point away from it.
  const keys = pool.params.get(SSF_POOL_KEYS)!.data;
  for (let j = 0; j < D; j++) { keys[2 * D + j] = q[j]!; keys[j] = -q[j]!; keys[D + j] = -q[j]! + 0.1 * Math.sin(j); }
  const got = await forwardLogits(m, ids, 2, 6);
  const plain = new AdaptedModel(ckpt);
  const ssf = plain.addAdapter('ssf', 'ssf', { targetModules: CONFIG.targetModules });
  for (const mod of ssf.modules) {
    ssf.params.get(`${mod.name}.ssf_scale`)!.data.set(pool.params.get(ssfPoolKeys(mod.name, 2).scale)!.data);
    ssf.params.get(`${mod.name}.ssf_shift`)!.data.set(pool.params.get(ssfPoolKeys(mod.name, 2).shift)!.data);
  }
  const want = await forwardLogits(plain, ids, 2, 6);
  const row = 6 * ckpt.config.vocabSize;
  const gap = Math.max(...Array.from(want.subarray(0, row), (v, i) => Math.abs(v - got[i]!)));
  assert.ok(gap < 1e-5, `row 0 against entry 2 alone: ${gap}`);
  const base = await forwardLogits(new AdaptedModel(ckpt), ids, 2, 6);
  assert.ok(Math.max(...Array.from(base.subarray(0, row), (v, i) => Math.abs(v - got[i]!))) > 1e-2, 'the entry changes the output');
});

test('gradients (key_match included) match finite differences; per-client held-out losses', async () => {
  // Every entry chosen (topK = poolSize), so that each gets a gradient to check.
  const m = new AdaptedModel(ckpt);
  m.addAdapter('pool', 'ssf-pool', { ...CONFIG, topK: 3 }, { seed: 4 });
  randomizeParams(m, 'pool', 0.3);
  const { worst, keys } = await gradientCheck(m, 'pool', { stride: 4 });
  assert.ok(keys.includes(SSF_POOL_KEYS));
  assert.ok(worst < 1e-6, `relative error ${worst}`);
  const held = heroBlocks(ckpt, 32, 6, 99);
  const fed = make();
  const a = await blocksLoss(fed, held, createJsBackend(), 4);
  assert.ok(Math.abs(a.loss - await evalLoss(fed, held)) < 1e-5, 'blocksLoss scores as evaluation does');
});

test.run();
