// Every adapter method trains to the same loss curve on js, wasm and webgpu (relative difference ≤ 1e-4
// at every step), from the same seed on the hero task.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import type { Backend } from '../../src/backends/backend.js';
import { fineTune } from '../../src/train/finetune.js';
import { curveDiff, js, otherBackends } from '../backends/backends.js';
import { heroBlocks, stories } from './helpers.js';

const ALL = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const methods: [string, Record<string, unknown>][] = [
  ['ia3', {}], ['ssf', {}], ['adalora', { initR: 4, targetR: 2, tinit: 1, tfinal: 1, deltaT: 1, totalStep: 5 }], ['hydra', { r: 4 }],
  ['lamda', { r: 4 }], ['triadaptlora', { referenceRank: 4, targetModules: ALL }], ['bottleneck', {}], ['compacter', {}],
  ['prompt-tuning', { numVirtualTokens: 4 }], ['prefix-tuning', { numVirtualTokens: 4, projection: true }],
  ['ept', { numVirtualTokens: 4, r: 2, numSpaces: 2, spaceRank: 2 }],
  ['idpt', { numVirtualTokens: 3, generatorHidden: 4 }],
  ['cpt', { cptTokenIds: [403, 407, 261, 300], cptTokensTypeMask: [1, 2, 3, 4], projectionEpsilon: 0.5 }],
];
const ckpt = await stories();
const data = heroBlocks(ckpt, 24, 8, 7);
const backends = (await otherBackends()).filter((b) => b.name !== 'wasm 1 thread');

async function curve(method: string, config: Record<string, unknown>, backend: Backend): Promise<number[]> {
  const model = new AdaptedModel(ckpt);
  model.addAdapter('default', method, config, { seed: 1 });
  return (await fineTune({ model, adapter: 'default', backend, data, steps: 4, batch: 2, lr: 1e-2, decay: 'constant', seed: 1 })).losses;
}

for (const [method, config] of methods) {
  test(`${method}: the same loss curve on ${['js', ...backends.map((b) => b.name)].join(', ')}`, async () => {
    const ref = await curve(method, config, js());
    for (const { name, backend } of backends) {
      const d = curveDiff(await curve(method, config, backend), ref);
      assert.ok(d <= 1e-4, `${method} on ${name}: relative difference ${d}`);
    }
  });
}

test.run();
