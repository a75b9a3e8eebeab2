// Token choice: greedy, temperature, top-k, top-p, repetition penalty and Mirostat 2.0 against their definitions.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Sampler, argmax, softmax } from '../../src/model/sampling.js';

const logits = Float64Array.from({ length: 50 }, (_, i) => -Math.log(i + 1) * 1.2 + (i === 7 ? 0.9 : 0));

test('greedy is argmax; top-k = 1 is greedy at any temperature', () => {
  assert.is(new Sampler().next(logits), argmax(logits));
  const s = new Sampler({ temperature: 1.5, topK: 1, seed: 3 });
  for (let i = 0; i < 20; i++) assert.is(s.next(logits), argmax(logits));
});

test('temperature sampling draws tokens with softmax(logits / T) frequencies (within 4 standard errors)', () => {
  const T = 0.8, n = 20000, s = new Sampler({ temperature: T, seed: 11 });
  const counts = new Array(50).fill(0);
  for (let i = 0; i < n; i++) counts[s.next(logits)]++;
  const p = softmax(logits, T);
  for (const k of [0, 1, 7, 20]) {
    const se = Math.sqrt((p[k]! * (1 - p[k]!)) / n);
    assert.ok(Math.abs(counts[k] / n - p[k]!) < 4 * se + 1e-4, `token ${k}: ${counts[k] / n} vs ${p[k]}`);
  }
});

test('top-p keeps only the smallest nucleus reaching p; top-k only the k best', () => {
  const p = softmax(logits, 1);
  const order = [...p.keys()].sort((a, b) => p[b]! - p[a]!);
  let acc = 0, nucleus = 0;
  while (acc < 0.6) acc += p[order[nucleus++]!]!;
  const allowed = new Set(order.slice(0, nucleus));
  const s = new Sampler({ temperature: 1, topP: 0.6, seed: 5 });
  for (let i = 0; i < 2000; i++) assert.ok(allowed.has(s.next(logits)));
  const k = new Sampler({ temperature: 1, topK: 3, seed: 6 });
  const best3 = new Set(order.slice(0, 3));
  for (let i = 0; i < 2000; i++) assert.ok(best3.has(k.next(logits)));
});

test('repetition penalty demotes tokens already seen', () => {
  const shifted = logits.map((x) => x + 2);
  const top = argmax(shifted);
  assert.is.not(new Sampler({ repetitionPenalty: 10 }).next(shifted, [top]), top);
  assert.is(new Sampler({ repetitionPenalty: 1 }).next(shifted, [top]), top);
});

test('Mirostat 2.0 holds the observed surprise near the target τ', () => {
  // A Zipf-like distribution over 1000 tokens: without control, sampling at T = 1 gives a different surprise.
  const zipf = Float64Array.from({ length: 1000 }, (_, i) => -1.1 * Math.log(i + 1));
  for (const tau of [3, 5]) {
    const s = new Sampler({ mirostatTau: tau, mirostatEta: 0.1, seed: 17 });
    const p = softmax(zipf, 1);
    let total = 0, count = 0;
    for (let i = 0; i < 3000; i++) {
      const t = s.next(zipf);
      if (i >= 1000) { total += -Math.log2(p[t]!); count++; }
    }
    const mean = total / count;
    assert.ok(Math.abs(mean - tau) < 0.5, `τ=${tau}: mean surprise ${mean.toFixed(2)} bits`);
  }
});

test.run();
