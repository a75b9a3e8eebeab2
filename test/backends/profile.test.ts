// Kernel profiles (beginProfile/endProfile) on every backend: one entry per step that ran, in order, with
// its op and module name, AdamW updates included, skipped steps left out; timings finite and not all zero;
// and profiling changes no result (outputs bit-identical to an unprofiled run). Then the summary helpers
// and the `train --profile` report.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Backend, StepTime } from '../../src/backends/backend.js';
import { withDawnDefaults } from '../../src/backends/webgpu/device.js';
import type { WebgpuBackend } from '../../src/backends/webgpu/index.js';
import * as F from '../../src/graph/api.js';
import { Graph } from '../../src/graph/graph.js';
import { planGraph } from '../../src/scheduler/plan.js';
import { formatProfile, summarizeProfile, typicalStepMs } from '../../src/scheduler/profile.js';
import { STORIES_GGUF } from '../assets.js';
import { cli } from '../cli/run.js';
import { randn } from '../helpers.js';
import { js, otherBackends } from './backends.js';

const HYPER = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1, gradScale: 1 };

function graph() {
  const g = new Graph();
  const x = g.input('x', [48, 64]);
  const w = g.param('w', [64, 80]);
  const gw = g.input('gw', [64, 80]);
  const m = g.state('w.m', [64, 80]), v = g.state('w.v', [64, 80]);
  const y = g.within('model.layers.0.mlp', () => F.silu(F.matmul(x, w)));
  const out = F.sum(F.mul(y, y));
  g.markOutput(out, y);
  return { g, x, w, gw, m, v, y, out };
}

async function check(backend: Backend): Promise<void> {
  const { g, x, w, gw, m, v, y, out } = graph();
  const plan = planGraph(g);
  const load = async () => {
    const exe = await backend.load(plan);
    exe.write(x.id, Float32Array.from(randn(48 * 64, 1)));
    exe.write(w.id, Float32Array.from(randn(64 * 80, 2)).map((a) => a * 0.1));
    exe.write(gw.id, Float32Array.from(randn(64 * 80, 3)));
    exe.write(m.id, new Float32Array(64 * 80));
    exe.write(v.id, new Float32Array(64 * 80));
    return exe;
  };
  const plain = await load();
  await plain.run();
  plain.adamw(w.id, gw.id, m.id, v.id, HYPER);
  await plain.run();
  const ref = await plain.read([out.id, y.id, w.id]);
  plain.dispose();

  const exe = await load();
  exe.beginProfile();
  await exe.run();
  exe.adamw(w.id, gw.id, m.id, v.id, HYPER);
  const first = await exe.endProfile();
  await exe.run();
  const got = await exe.read([out.id, y.id, w.id]);
  got.forEach((a, i) => assert.equal(Array.from(a), Array.from(ref[i]!), `output ${i} changed under profiling`));
  const ops = (ts: readonly StepTime[]) => ts.map((t) => t.op);
  if (first === null) {
    // Only a WebGPU device without timestamp-query may decline, and then every profile is declined.
    assert.is(exe.backend, 'webgpu');
    assert.is((backend as WebgpuBackend).context.timestamps, false, 'the device has timestamp-query, yet no profile came back');
    exe.beginProfile();
    await exe.run();
    assert.is(await exe.endProfile(), null);
  } else {
    assert.equal(ops(first), [...plan.steps.map((s) => s.op), 'adamw']);
    const mm = first.find((t) => t.op === 'matmul')!;
    assert.is(mm.name, 'model.layers.0.mlp');
    assert.is(first[first.length - 1]!.name, 'w');
    for (const t of first) assert.ok(Number.isFinite(t.ms) && t.ms >= 0, `${t.op}: ${t.ms} ms`);
    assert.ok(first.reduce((a, t) => a + t.ms, 0) > 0, 'all timings are zero');

    // Nothing is recorded outside begin/end; skipped steps are absent.
    assert.equal(await exe.endProfile(), []);
    const skip = new Uint8Array(plan.steps.length);
    skip[plan.steps.length - 1] = 1;
    exe.beginProfile();
    await exe.run(skip);
    const second = await exe.endProfile();
    assert.equal(ops(second!), plan.steps.slice(0, -1).map((s) => s.op));
  }
  exe.dispose();
}

test('js: every step and the AdamW update are timed, results unchanged', async () => {
  await check(js());
});

test('wasm and webgpu: every step and the AdamW update are timed, results unchanged', async () => {
  for (const { name, backend } of await otherBackends()) {
    try {
      await check(backend);
    } catch (e) {
      throw new Error(`${name}: ${(e as Error).message}`);
    } finally {
      backend.dispose();
    }
  }
});

test('summaries: time per op largest first, the median step leaving out the first, the share in kernels', () => {
  const p = summarizeProfile('test', 'host', [
    { op: 'matmul', name: 'a', ms: 2 }, { op: 'add', name: '', ms: 0.5 }, { op: 'matmul', name: 'b', ms: 3 }, { op: 'adamw', name: 'w', ms: 0.5 },
  ], typicalStepMs([100, 8, 12, 10]));
  assert.equal(p.byOp, [{ op: 'matmul', calls: 2, ms: 5 }, { op: 'add', calls: 1, ms: 0.5 }, { op: 'adamw', calls: 1, ms: 0.5 }]);
  assert.is(p.kernelMs, 6);
  assert.is(p.wallMs, 10);
  assert.is(typicalStepMs([]), null);
  assert.is(typicalStepMs([7]), 7);
  assert.is(typicalStepMs([9, 4, 6]), 5);
  const text = formatProfile(p, 'step 3');
  assert.match(text, /step 3 \(test; host clock\): 4 kernels, 6\.00 ms of a 10\.00 ms step \(60\.0% in kernels\)/);
  assert.match(text, /matmul\s+2\s+5\.000\s+83\.3%/);
});

test('Dawn options: exact timestamps unless the caller says otherwise', () => {
  assert.equal(withDawnDefaults([]), ['disable-dawn-features=timestamp_quantization']);
  assert.equal(withDawnDefaults(['disable-dawn-features=foo']), ['disable-dawn-features=foo,timestamp_quantization']);
  assert.equal(withDawnDefaults(['enable-dawn-features=timestamp_quantization']), ['enable-dawn-features=timestamp_quantization']);
  assert.equal(withDawnDefaults(['enable-dawn-features=allow_unsafe_apis']), ['enable-dawn-features=allow_unsafe_apis', 'disable-dawn-features=timestamp_quantization']);
});

test('train --profile reports the last step\'s kernels by op and their share of a step', () => {
  const args = ['train', '--model', STORIES_GGUF, '--steps', '3', '--batch', '2', '--seq', '32', '--backend', 'wasm', '--profile'];
  const out = mkdtempSync(join(tmpdir(), 'adaptkit-profile-'));
  const r = cli([...args, '--out', out]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /profile of step 3 \(wasm .*; host clock\): \d+ kernels, [\d.]+ ms of a [\d.]+ ms step \([\d.]+% in kernels\)/);
  assert.match(r.stderr, /\n  matmul\s+\d+\s+[\d.]+\s+[\d.]+%/);
  // LoRA's A and B on 7 projections of stories260K's 5 layers: 70 AdamW updates.
  assert.match(r.stderr, /\n  adamw\s+70\s/);
  const j = cli([...args, '--json', '--out', out, '--overwrite']);
  assert.is(j.code, 0, j.stderr);
  const ev = j.stdout.trim().split('\n').map((l) => JSON.parse(l)).find((e) => e.event === 'profile');
  assert.ok(ev, 'no profile event');
  assert.is(ev.clock, 'host');
  assert.ok(ev.kernelMs > 0 && ev.stepMs > 0);
  assert.equal(ev.byOp.reduce((a: number, o: { calls: number }) => a + o.calls, 0), ev.kernels);
});

test.run();
