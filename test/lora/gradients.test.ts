// LoRA and DoRA gradients on the real stories260K model against central finite differences, in float64.
// Tolerance 1e-6 relative to the largest probed gradient: eps 1e-5 on a loss of size ~1 leaves truncation
// error ~1e-10 and rounding ~1e-11, so only a wrong rule exceeds it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel, adapterParamName } from '../../src/adapters/adapted-model.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { loadCheckpoint } from '../../src/formats/checkpoint.js';
import * as F from '../../src/graph/api.js';
import { gradients } from '../../src/graph/autodiff.js';
import { Graph } from '../../src/graph/graph.js';
import { buildLlama } from '../../src/model/llama.js';
import { uploadWeights } from '../../src/model/runtime.js';
import { Session } from '../../src/scheduler/session.js';
import { STORIES_GGUF } from '../assets.js';
import { maxRelErr, randn, rng } from '../helpers.js';

const TOL = 1e-6;

async function check(config: Record<string, unknown>, probe: (name: string) => boolean = () => true) {
  const ckpt = await loadCheckpoint(STORIES_GGUF);
  const model = new AdaptedModel(ckpt);
  const a = model.addAdapter('t', 'lora', config, { seed: 3 });
  // B starts at zero, which would make A's gradient vanish: give every parameter random values.
  let k = 0;
  for (const p of a.params.values()) p.data.set(randn(p.data.length, 100 + k++, 0.05));
  const g = new Graph();
  const { hooks, built } = model.hooks({ training: false });
  const net = buildLlama(g, ckpt.config, { batch: 2, seq: 6, hooks });
  const targets = g.input('targets', [12], 'i32');
  const loss = F.crossEntropy(F.reshape(net.logits, [-1, ckpt.config.vocabSize]), targets);
  const params = [...built.get(g)!.values()];
  const grads = gradients(loss, params);
  g.markOutput(loss);
  const s = await Session.create(g, createJsBackend({ precision: 'f64' }));
  uploadWeights(s, net.weights, model.effectiveCheckpoint());
  model.uploadAdapterParams(s);
  const r = rng(5);
  s.set(net.ids, Int32Array.from({ length: 12 }, () => Math.floor(r() * 512)));
  s.set(targets, Int32Array.from({ length: 12 }, (_, i) => (i === 4 ? -100 : Math.floor(r() * 512))));
  await s.run();
  let worst = 0;
  const eps = 1e-5;
  const probed = params.filter((p, i) => probe(p.info.name!) && (i % 3 === 0 || !probe('')));
  // All analytic gradients at the unperturbed point, before any probe moves a parameter.
  const analytics = await s.getMany(probed.map((t) => grads.get(t)));
  for (const [ti, t] of probed.entries()) {
    const analytic = analytics[ti]!;
    const base = Float64Array.from(await s.get(t));
    const probes = Array.from({ length: 6 }, () => Math.floor(r() * base.length));
    const num: number[] = [], an: number[] = [];
    for (const i of probes) {
      const x = Float64Array.from(base);
      x[i] = base[i]! + eps; s.set(t, x); await s.run(); const up = (await s.get(loss))[0]!;
      x[i] = base[i]! - eps; s.set(t, x); await s.run(); const down = (await s.get(loss))[0]!;
      num.push((up - down) / (2 * eps)); an.push(analytic[i]!);
    }
    s.set(t, base);
    worst = Math.max(worst, maxRelErr(an, num));
  }
  s.dispose();
  return { worst, count: params.length, names: params.map((p) => p.info.name!) };
}

test('LoRA on all seven projections: gradients match finite differences', async () => {
  const { worst, names } = await check({ r: 4, alpha: 8, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] });
  assert.ok(names.includes(adapterParamName('t', 'model.layers.4.mlp.down_proj.lora_B.weight')));
  assert.ok(worst < TOL, `relative error ${worst}`);
});

// DoRA detaches the weight norm (its §4.3), so only the magnitude's gradient is the full derivative that
// finite differences measure; A and B follow the detached rule by design.
test('DoRA with rsLoRA scaling (magnitude gradients), and LoRA on the embedding: match finite differences', async () => {
  const { worst, names } = await check({ r: 2, alpha: 4, useRslora: true, useDora: true, targetModules: ['q_proj', 'down_proj'], layersToTransform: [0, 3] }, (n) => n.endsWith('lora_magnitude_vector'));
  assert.ok(names.some((n) => n.endsWith('lora_magnitude_vector')));
  assert.ok(!names.some((n) => n.includes('layers.1.')));
  assert.ok(worst < TOL, `relative error ${worst}`);
  const emb = await check({ r: 3, targetModules: ['embed_tokens', 'v_proj'] });
  assert.ok(emb.names.some((n) => n.endsWith('lora_embedding_A')));
  assert.ok(emb.worst < TOL, `embedding: relative error ${emb.worst}`);
});

test.run();
