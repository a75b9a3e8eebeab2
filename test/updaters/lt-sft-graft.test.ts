// LT-SFT top-K selection equals brute force; the L1 term's value and subgradient; grafting's mask initialisation
// keeps the top fraction, and its logit gradient matches central finite differences of a quadratic loss.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { l1TowardBase, topKDelta } from '../../src/updaters/lt-sft/select.js';
import { graft, initialMaskLogits, maskLogitGradient } from '../../src/updaters/graft/mask.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

test('LT-SFT keeps the global top-K |θ₁ − θ₀| (brute force)', () => {
  const r = rng(3);
  const base = new Map([['a', Float32Array.from({ length: 30 }, r)], ['b', Float32Array.from({ length: 50 }, r)]]);
  const tuned = new Map([...base].map(([n, t]) => [n, Float32Array.from(t, (x) => x + (r() - 0.5))] as [string, Float32Array]));
  const d = topKDelta(base, tuned, 7);
  const flat: number[] = [];
  for (const [n, t] of tuned) t.forEach((x, i) => flat.push(Math.abs(x - base.get(n)![i])));
  const thr = [...flat].sort((x, y) => y - x)[6];
  let count = 0;
  for (const [n, t] of d) t.indices.forEach((k, p) => {
    count++;
    assert.ok(Math.abs(t.values[p]) >= Math.fround(thr)); // fround is monotone: stored f32 vs f64 threshold
    assert.is(t.values[p], Math.fround(tuned.get(n)![k] - base.get(n)![k]));
  });
  assert.is(count, 7);
  assert.throws(() => topKDelta(base, tuned, 1000), /exceeds/);
});

test('L1 toward the base: value and subgradient', () => {
  const g = new Float32Array(3);
  const v = l1TowardBase(Float32Array.from([1, 2, 3]), Float32Array.from([1.5, 2, 2]), g, 0.1);
  assert.ok(Math.abs(v - 0.15) < 1e-7);
  assert.equal([...g], [-0.1, 0, 0.1].map(Math.fround));
});

test('graft mask: top fraction starts on; logit gradient equals finite differences', () => {
  const diff = Float32Array.from([0.1, -2, 0.3, 1.5, -0.05, 0.7]);
  const s = initialMaskLogits(new Map([['w', diff]]), 0.5).get('w')!;
  assert.equal([...s].map((x) => x > 0), [false, true, false, true, false, true]);
  const base = Float32Array.from([1, 2, 3, 4, 5, 6]), target = Float32Array.from([0, 1, 2, 3, 4, 5]);
  const logits = Float32Array.from([0.2, -0.4, 1.1, 0.3, -1.0, 0.5]);
  const loss = (l: Float64Array) => { let t = 0; for (let i = 0; i < 6; i++) { const th = base[i] + (1 / (1 + Math.exp(-l[i]))) * diff[i]; t += 0.5 * (th - target[i]) ** 2; } return t; };
  const th = graft(base, diff, logits, false);
  const gTheta = Float32Array.from(th, (x, i) => x - target[i]);
  const g = maskLogitGradient(gTheta, diff, logits);
  for (let i = 0; i < 6; i++) {
    const p = Float64Array.from(logits), m = Float64Array.from(logits);
    p[i] += 1e-5; m[i] -= 1e-5;
    assert.ok(Math.abs((loss(p) - loss(m)) / 2e-5 - g[i]) < 1e-5, `logit ${i}`);
  }
  assert.equal([...graft(base, diff, logits, true)], [...Float32Array.from(base, (b, i) => b + (logits[i] > 0 ? diff[i] : 0))]);
});

test.run();
