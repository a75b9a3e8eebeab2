// PHATGOOSE on js, wasm and webgpu: top-k routing (built from elementwise ops, no sort kernel) gives the
// same held-out loss and the same routing weights on every backend, and gate training follows the same
// loss curve (relative difference ≤ 1e-4).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { attachPhatgoose } from '../../src/adapters/phatgoose/inventory.js';
import { routeWeights } from '../../src/adapters/phatgoose/layer.js';
import type { Backend } from '../../src/backends/backend.js';
import { Graph } from '../../src/graph/graph.js';
import { Session } from '../../src/scheduler/session.js';
import { fineTune } from '../../src/train/finetune.js';
import { curveDiff, js, otherBackends } from '../backends/backends.js';
import { evalLoss, heroBlocks, randomizeParams, stories } from './helpers.js';

const ckpt = await stories();
const ALL = ['q_proj', 'v_proj', 'down_proj'];
const inv = new AdaptedModel(ckpt);
for (let i = 0; i < 3; i++) {
  inv.addAdapter(`e${i}`, 'lora', { r: 2 + i, alpha: 4, targetModules: ALL }, { seed: i + 1 });
  randomizeParams(inv, `e${i}`, 0.2);
}
const experts = [0, 1, 2].map((i) => inv.get(`e${i}`));
const backends = [{ name: 'js', backend: js() }, ...await otherBackends()];
const held = heroBlocks(ckpt, 24, 4, 99);

test(`top-2-of-3 routing: the same weights and held-out loss on ${backends.map((b) => b.name).join(', ')}`, async () => {
  // Routing weights of random tokens against random gates.
  const N = 12, D = 16, E = 3;
  const x = Float32Array.from({ length: N * D }, (_, i) => Math.sin(i * 1.7) + 0.3 * Math.cos(i * 0.31));
  const gv = Float32Array.from({ length: E * D }, (_, i) => Math.cos(i * 2.3 + 0.5));
  const weights = async (backend: Backend): Promise<Float32Array> => {
    const g = new Graph();
    const tx = g.input('x', [N, D], 'f32'), tg = g.input('g', [E, D], 'f32');
    const w = routeWeights(tx, tg, 2, 0.1);
    g.markOutput(w);
    const s = await Session.create(g, backend);
    s.set(tx, x);
    s.set(tg, gv);
    await s.run();
    const out = Float32Array.from(await s.get(w));
    s.dispose();
    return out;
  };
  const ref = await weights(backends[0]!.backend);
  assert.ok(ref.filter((v) => v === 0).length === N, 'one expert of three is left out for every token');
  for (const { name, backend } of backends.slice(1)) {
    const got = await weights(backend);
    const gap = got.reduce((m, v, i) => Math.max(m, Math.abs(v - ref[i]!)), 0);
    assert.ok(gap < 1e-5, `${name}: routing weights differ by ${gap}`);
  }
  // A routed model with random gates.
  const routed = new AdaptedModel(ckpt);
  attachPhatgoose(routed, 'pg', experts, { mode: 'route', topK: 2 });
  randomizeParams(routed, 'pg', 0.5, (k) => !k.endsWith('.gate'));
  const base = await evalLoss(new AdaptedModel(ckpt), held);
  const losses = [];
  for (const { backend } of backends) losses.push(await evalLoss(routed, held, backend));
  assert.ok(Math.abs(losses[0]! - base) > 1e-3, `routing changes the loss (${base} → ${losses[0]})`);
  for (const [i, { name }] of backends.entries()) assert.ok(Math.abs(losses[i]! - losses[0]!) <= 1e-4 * losses[0]!, `${name}: ${losses[i]} against js ${losses[0]}`);
});

test('gate training: the same loss curve on every backend', async () => {
  const data = heroBlocks(ckpt, 24, 8, 7);
  const curve = async (backend: Backend): Promise<number[]> => {
    const model = new AdaptedModel(ckpt);
    attachPhatgoose(model, 'gate', [experts[1]!], { mode: 'gate' });
    return (await fineTune({ model, adapter: 'gate', backend, data, steps: 4, batch: 2, lr: 5e-2, decay: 'constant', seed: 1 })).losses;
  };
  const ref = await curve(backends[0]!.backend);
  assert.ok(ref[3]! !== ref[0]!, 'the gate trains');
  for (const { name, backend } of backends.slice(1)) {
    const d = curveDiff(await curve(backend), ref);
    assert.ok(d <= 1e-4, `${name}: relative difference ${d}`);
  }
});

test.after(() => { for (const { backend } of backends) backend.dispose(); });

test.run();
