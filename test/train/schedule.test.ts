// Learning-rate multipliers against their definitions, step by step (1-based steps s of a run of `total`):
// warmup s/w for s ≤ w; then with progress p = min(1, (s − w)/(total − w)) the multiplier is
// min + (1 − min)·½(1 + cos πp) (cosine), min + (1 − min)(1 − p) (linear), or 1 (constant).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type DecayKind, lrSchedule } from '../../src/train/schedule.js';

function reference(kind: DecayKind, total: number, w: number, min: number, s: number): number {
  if (s <= w) return s / w;
  if (kind === 'constant') return 1;
  const p = Math.min(1, (s - w) / (total - w));
  return min + (1 - min) * (kind === 'cosine' ? (1 + Math.cos(Math.PI * p)) / 2 : 1 - p);
}

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);

for (const kind of ['cosine', 'linear', 'constant'] as const) {
  test(`${kind}: every step of runs with and without warmup and a floor, and steps past the end`, () => {
    for (const [total, w, min] of [[20, 0, 0], [20, 5, 0], [17, 4, 0.1], [9, 1, 0.25]] as const) {
      const f = lrSchedule(kind, total, w, min);
      for (let s = 1; s <= total + 3; s++) close(f(s), reference(kind, total, w, min, s), `${kind} total ${total} warmup ${w} min ${min} step ${s}`);
    }
  });
}

test('landmarks: warmup rises to 1, cosine is halfway at mid-run, both decays end at the floor', () => {
  const cos = lrSchedule('cosine', 14, 4, 0.2), lin = lrSchedule('linear', 14, 4, 0.2);
  close(cos(1), 0.25, 'first warmup step');
  close(cos(4), 1, 'last warmup step');
  close(cos(9), 0.6, 'cosine at half progress');
  close(lin(9), 0.6, 'linear at half progress');
  close(cos(14), 0.2, 'cosine at the end');
  close(lin(14), 0.2, 'linear at the end');
  close(lrSchedule('constant', 14, 4, 0.2)(9), 1, 'constant after warmup');
});

test('defaults: no warmup and a floor of 0; before the first step the decay has not started', () => {
  close(lrSchedule('cosine', 10)(10), 0, 'cosine end');
  close(lrSchedule('linear', 10)(5), 0.5, 'linear middle');
  close(lrSchedule('cosine', 10)(0), 1, 'step 0 without warmup');
  close(lrSchedule('cosine', 10, 2)(0), 0, 'step 0 with warmup');
});

test('a run no longer than its warmup decays to the floor right after it', () => {
  const f = lrSchedule('linear', 3, 3, 0.1);
  close(f(3), 1, 'last warmup step');
  close(f(4), 0.1, 'after the run');
  close(lrSchedule('cosine', 2, 4)(5), 0, 'warmup longer than the run');
});

test.run();
