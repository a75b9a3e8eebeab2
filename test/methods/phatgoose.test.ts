// PHATGOOSE on stories260K: one expert routed with k = 1 is that expert (logits within 1e-5); two experts
// with one gate and k = 2 are both LoRAs at half weight (1e-5); the top-k
// routing weights of planted tokens and gates equal a float64 brute force (1e-5) and pick the planted
// experts; the gate's gradient in gate training matches finite differences (1e-6 relative); gate training
// lowers the held-out loss; a saved PHATGOOSE folder reloads to the same loss; js and wasm route alike.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { attachPhatgoose, inventoryOf, trainGates } from '../../src/adapters/phatgoose/inventory.js';
import { routeWeights } from '../../src/adapters/phatgoose/layer.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import * as F from '../../src/graph/api.js';
import { Graph } from '../../src/graph/graph.js';
import { Session } from '../../src/scheduler/session.js';
import { createBackend } from '../../src/scheduler/backends.js';
import { evalLoss, forwardLogits, gradientCheck, heroBlocks, randomizeParams, roundTrip, stories, trainHero } from './helpers.js';

const ckpt = await stories();
const ALL = ['q_proj', 'v_proj', 'down_proj'];

/** n LoRA experts on the same modules, randomised so that each changes the output. */
function experts(n: number): AdaptedModel {
  const m = new AdaptedModel(ckpt);
  for (let i = 0; i < n; i++) {
    m.addAdapter(`e${i}`, 'lora', { r: 2 + i, alpha: 4 + i, targetModules: ALL }, { seed: i + 1 });
    randomizeParams(m, `e${i}`, 0.2);
    m.disable(`e${i}`);
  }
  return m;
}
const ids = Int32Array.from({ length: 16 }, (_, i) => (i * 53 + 7) % ckpt.config.vocabSize);
const gap = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

test('one expert routed with k = 1 is that expert', async () => {
  const inv = experts(1);
  const want = await (async () => { inv.enable('e0'); const l = await forwardLogits(inv, ids, 2, 8); inv.disable('e0'); return l; })();
  const m = new AdaptedModel(ckpt);
  const a = attachPhatgoose(m, 'pg', [inv.get('e0')], { mode: 'route', topK: 1 });
  randomizeParams(m, 'pg', 0.3, (k) => !k.endsWith('.gate'));
  const got = await forwardLogits(m, ids, 2, 8);
  assert.ok(gap(got, want) < 1e-5, `gap ${gap(got, want)}`);
  assert.is(a.modules.length, 3 * ckpt.config.nLayers);
  const base = await forwardLogits(new AdaptedModel(ckpt), ids, 2, 8);
  assert.ok(gap(got, base) > 1e-2, 'the expert changes the output');
});

test('two experts with the same gate and k = 2 are their average (each LoRA at half weight)', async () => {
  const inv = experts(2);
  const m = new AdaptedModel(ckpt);
  const shared = new Map(inv.get('e0').modules.map((mod, i) => [mod.name, Float32Array.from({ length: mod.inFeatures }, (_, j) => Math.sin(i + 0.7 * j))]));
  attachPhatgoose(m, 'pg', [inv.get('e0'), inv.get('e1')], { mode: 'route', topK: 2, gates: new Map([['e0', shared], ['e1', shared]]) });
  const got = await forwardLogits(m, ids, 2, 8);
  // The reference: both LoRAs on at once, each B halved.
  for (const e of ['e0', 'e1']) {
    inv.enable(e);
    for (const [key, p] of inv.get(e).params) if (key.includes('lora_B')) p.data.set(p.data.map((v) => v / 2));
  }
  const want = await forwardLogits(inv, ids, 2, 8);
  assert.ok(gap(got, want) < 1e-5, `gap ${gap(got, want)}`);
  inv.disable('e1');
  assert.ok(gap(got, await forwardLogits(inv, ids, 2, 8)) > 1e-3, 'the second expert matters');
});

test('top-k routing weights equal a float64 brute force and pick the planted experts', async () => {
  const N = 5, D = 8, E = 4, k = 2, tau = 0.3;
  // Token n is planted closest to expert n mod E, second to (n + 1) mod E.
  const gates = Array.from({ length: E }, (_, e) => Array.from({ length: D }, (_, j) => Math.sin(3 * e + j * (e + 1))));
  const x = Array.from({ length: N }, (_, n) => gates[n % E]!.map((v, j) => 2 * v + gates[(n + 1) % E]![j]! + 0.05 * Math.cos(n + j)));
  const g = new Graph();
  const tx = g.input('x', [N, D], 'f32'), tg = g.input('g', [E, D], 'f32');
  const w = routeWeights(tx, tg, k, tau);
  g.markOutput(w);
  const s = await Session.create(g, createJsBackend({ precision: 'f64' }));
  s.set(tx, Float64Array.from(x.flat()));
  s.set(tg, Float64Array.from(gates.flat()));
  await s.run();
  const got = await s.get(w);
  s.dispose();
  const std = (v: number[]) => { const m = v.reduce((a, b) => a + b) / v.length, sd = Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length); return v.map((t) => (t - m) / sd); };
  for (let n = 0; n < N; n++) {
    const c = gates.map((v) => std(x[n]!).reduce((a, t, j) => a + t * std(v)[j]!, 0) / D);
    const top = c.map((v, e) => [v, e] as const).sort((p, q) => q[0] - p[0]).slice(0, k).map(([, e]) => e);
    assert.equal([...top].sort(), [n % E, (n + 1) % E].sort(), `token ${n}: planted experts`);
    const z = top.reduce((a, e) => a + Math.exp((c[e]! - 1) / tau), 0);
    for (let e = 0; e < E; e++) {
      const want = top.includes(e) ? Math.exp((c[e]! - 1) / tau) / z : 0;
      assert.ok(Math.abs(got[n * E + e]! - want) < 1e-5, `token ${n}, expert ${e}: ${got[n * E + e]} vs ${want}`);
    }
  }
});

test('the gate\'s gradient in gate training matches finite differences; checks refuse mismatched experts', async () => {
  const inv = experts(2);
  const m = new AdaptedModel(ckpt);
  attachPhatgoose(m, 'pg', [inv.get('e1')], { mode: 'gate' });
  randomizeParams(m, 'pg', 0.3, (k) => !k.endsWith('.gate'));
  const { worst } = await gradientCheck(m, 'pg', { probe: (k) => k.endsWith('.gate'), stride: 3 });
  assert.ok(worst < 1e-6, `relative error ${worst}`);
  inv.addAdapter('odd', 'lora', { r: 2, targetModules: ['q_proj'] });
  assert.throws(() => inventoryOf([inv.get('e0'), inv.get('odd')]), /expert 'odd' adapts other modules than 'e0'/);
  inv.addAdapter('x', 'ia3', {});
  assert.throws(() => inventoryOf([inv.get('x')]), /'x' is a ia3 adapter/);
  assert.throws(() => attachPhatgoose(new AdaptedModel(ckpt), 'pg', [inv.get('e0')], { mode: 'route', topK: 2 }), /topK 2 exceeds the 1 experts/);
  assert.throws(() => inventoryOf([]), /inventory of experts is empty/);
});

test('gate training lowers the held-out loss; a saved folder reloads; js and wasm route alike', async () => {
  // An expert for the hero task, then its gate trained with the expert frozen.
  const inv = new AdaptedModel(ckpt);
  inv.addAdapter('hero', 'lora', { r: 4, targetModules: ALL }, { seed: 3 });
  await trainHero(inv, 'hero', { steps: 12, lr: 1e-2 });
  const other = experts(2);
  const held = heroBlocks(ckpt, 32, 8, 99);
  const gateModel = new AdaptedModel(ckpt);
  attachPhatgoose(gateModel, 'pg', [inv.get('hero')], { mode: 'gate' });
  const before = await evalLoss(gateModel, held);
  const gates = await trainGates(() => new AdaptedModel(ckpt), [inv.get('hero'), other.get('e0'), other.get('e1')], { backend: createJsBackend(), data: heroBlocks(ckpt, 32, 24, 7), steps: 10, lr: 5e-2 });
  const trained = new AdaptedModel(ckpt);
  attachPhatgoose(trained, 'pg', [inv.get('hero')], { mode: 'gate', gates });
  const after = await evalLoss(trained, held);
  assert.ok(after < before - 1e-3, `held-out loss with the gate ${before} → ${after}`);
  const routed = new AdaptedModel(ckpt);
  attachPhatgoose(routed, 'pg', [inv.get('hero'), other.get('e0'), other.get('e1')], { mode: 'route', topK: 2, gates });
  const rt = roundTrip(routed, 'pg');
  assert.is(rt.config.peft_type, 'PHATGOOSE');
  assert.is(rt.config.top_k, 2);
  assert.ok(rt.tensors.includes('base_model.model.model.layers.0.self_attn.q_proj.phatgoose.hero.gate'));
  assert.is(await evalLoss(rt.model, held), await evalLoss(routed, held));
  const wasm = (await createBackend('wasm', { threads: 1 })).backend;
  const [a, b] = [await evalLoss(routed, held), await evalLoss(routed, held, wasm)];
  assert.ok(Math.abs(a - b) < 1e-4 * a, `js ${a}, wasm ${b}`);
});

test.run();
