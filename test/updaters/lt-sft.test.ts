// LT-SFT through trainBaseWeights on stories260K (js): phase 2 moves only the K chosen entries (every other
// weight equals the base bit for bit), the sparse delta holds exactly K entries and applies to the base to give
// the trained model; the L1 term is logged by name apart from the task loss and pulls phase 1 toward the base.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createJsBackend } from '../../src/backends/js/index.js';
import { applySparseDelta } from '../../src/updaters/sparse/delta.js';
import { LT_SFT, ltSftUpdater } from '../../src/updaters/lt-sft/index.js';
import { trainBaseWeights } from '../../src/updaters/train.js';
import type { UpdaterContext } from '../../src/updaters/types.js';
import { storyData, valuesOf } from './helpers.js';

async function run(opts: Parameters<typeof ltSftUpdater>[0], steps: number) {
  const { ckpt, train } = await storyData();
  const u = ltSftUpdater(opts);
  const lines: string[] = [];
  let ctx: UpdaterContext | undefined;
  const inner = u.afterStep!;
  u.afterStep = async (c) => { ctx = c; return inner(c); };
  const r = await trainBaseWeights(u, { checkpoint: ckpt, backend: createJsBackend(), data: train, steps, batch: 4, lr: 1e-3, decay: 'constant', seed: 1, log: (l) => lines.push(l) });
  return { ckpt, u, r, lines, ctx: ctx! };
}

test('phase 2 changes only the K chosen entries; the delta has K entries and rebuilds the trained model', async () => {
  const K = 400;
  const { ckpt, u, r, ctx } = await run({ phase1Steps: 2, count: K }, 4);
  const base = valuesOf(ckpt), tuned = valuesOf(r.checkpoint);
  const delta = await u.sparseDelta!(ctx);
  let count = 0, moved = 0;
  for (const [, d] of delta) count += d.indices.length;
  assert.is(count, K);
  assert.is(u.kept(), K);
  const total = [...base.values()].reduce((a, x) => a + x.length, 0);
  assert.is(r.summary.ltsftKeptFraction, K / total);
  for (const [n, b] of base) {
    const t = tuned.get(n)!, keep = new Set(delta.get(n)?.indices ?? []);
    for (let i = 0; i < b.length; i++) {
      if (keep.has(i)) { if (t[i] !== b[i]) moved++; continue; }
      assert.ok(Object.is(t[i], b[i]), `${n}[${i}] moved outside the mask: ${b[i]} → ${t[i]}`);
    }
  }
  assert.ok(moved > K / 2, `only ${moved} of ${K} chosen entries moved in phase 2`);
  // base + (θ − θ₀) in f32 is θ up to one rounding of the sum.
  const rebuilt = applySparseDelta(base, delta);
  for (const [n, t] of tuned) {
    const x = rebuilt.get(n)!;
    for (let i = 0; i < t.length; i++) assert.ok(Math.abs(x[i] - t[i]) <= 1e-6 * Math.max(1, Math.abs(t[i])), `${n}[${i}]: ${x[i]} vs ${t[i]}`);
  }
});

test('the L1 term is logged by name beside the task loss and pulls phase 1 toward the base', async () => {
  const meanMove = (a: Map<string, Float32Array>, b: Map<string, Float32Array>) => {
    let s = 0, n = 0;
    for (const [k, x] of a) { const y = b.get(k)!; for (let i = 0; i < x.length; i++) { s += Math.abs(x[i] - y[i]); n++; } }
    return s / n;
  };
  // Steps = N1: the run ends at θ₁ (phase 2 never starts).
  const free = await run({ phase1Steps: 5, count: 10, l1: 0 }, 5);
  const pulled = await run({ phase1Steps: 5, count: 10, l1: 0.5 }, 5);
  assert.is(free.r.losses[0], pulled.r.losses[0], 'the first step\'s task loss must not include the L1 term');
  const l1Lines = pulled.lines.filter((l) => /^lt-sft: step \d+ l1 [\d.e+-]+$/.test(l));
  assert.is(l1Lines.length, 4, pulled.lines.join('\n')); // afterStep runs after every step but the last
  assert.ok(Number(l1Lines[3].split(' ').pop()) > 0);
  assert.not.ok(free.lines.some((l) => / l1 /.test(l)));
  const base = valuesOf(free.ckpt);
  const mFree = meanMove(valuesOf(free.r.checkpoint), base), mPulled = meanMove(valuesOf(pulled.r.checkpoint), base);
  assert.ok(mPulled < 0.9 * mFree, `mean |θ₁ − θ₀|: λ=0.5 ${mPulled} vs λ=0 ${mFree}`);
});

test('bad options are refused by name before any work', () => {
  assert.throws(() => ltSftUpdater({ phase1Steps: 0 }), /phase-1 steps/);
  assert.throws(() => ltSftUpdater({ phase1Steps: 2, density: 0 }), /density/);
  assert.throws(() => ltSftUpdater({ phase1Steps: 2, density: 1.5 }), /density/);
  assert.throws(() => ltSftUpdater({ phase1Steps: 2, count: 2.5 }), /count/);
  assert.throws(() => ltSftUpdater({ phase1Steps: 2, l1: -1 }), /l1/);
  assert.equal(Object.keys(LT_SFT.options).sort(), ['ltsft-count', 'ltsft-density', 'ltsft-l1', 'ltsft-phase1']);
});

test.run();
