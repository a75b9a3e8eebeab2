// ConPET: the replay buffer keeps at most its capacity and is a uniform sample (inclusion rates within 0.05 of
// capacity/n over 2,000 draws); the selector separates planted clusters; on a two-task stream of stories260K
// text the selector routes each task's held-out examples to its own module, and the forgetting matrix equals
// an independent evaluation of each module alone on its task's held-out examples (1e-5).
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { runConpet } from '../../src/continual/conpet.js';
import { ReplayBuffer, TaskSelector } from '../../src/continual/selector.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { heroStories } from '../../src/data/builtin-task.js';
import { textExamples } from '../../src/data/dataset.js';
import { paragraphs } from '../../src/data/text.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { seededRandom } from '../../src/util/random.js';
import { TINYSTORIES_VAL } from '../assets.js';
import { stories } from '../methods/helpers.js';

test('the replay buffer keeps its capacity and samples uniformly', () => {
  const n = 50, cap = 10, trials = 2000, counts = new Array<number>(n).fill(0);
  for (let s = 0; s < trials; s++) {
    const b = new ReplayBuffer<number>(cap, seededRandom(s + 1));
    for (let i = 0; i < n; i++) b.offer(i);
    assert.is(b.items.length, cap);
    for (const i of b.items) counts[i]++;
  }
  for (const c of counts) assert.ok(Math.abs(c / trials - cap / n) < 0.05, `inclusion ${c / trials}`);
  assert.throws(() => new ReplayBuffer(-1, Math.random), /capacity -1/);
});

test('the selector separates planted clusters', () => {
  const r = seededRandom(3), D = 16;
  const centre = (t: number) => Float32Array.from({ length: D }, (_, j) => Math.cos(t * 2.1 + j));
  const sample = (t: number) => Float32Array.from(centre(t), (v) => v + 0.2 * (r() - 0.5));
  const x = [0, 1, 2].flatMap((t) => Array.from({ length: 20 }, () => ({ f: sample(t), t })));
  const s = new TaskSelector(D);
  s.fit(x.map((e) => e.f), x.map((e) => e.t), { tasks: 3 });
  for (const t of [0, 1, 2]) for (let i = 0; i < 10; i++) assert.is(s.predict(sample(t)), t);
});

test('a two-task stream: each task routed to its module; forgetting from an independent evaluation', async () => {
  const ckpt = await stories(), tok = createTokenizer(ckpt.tokenizer!);
  const hero = textExamples(heroStories(20, 5), tok, 64);
  const plain = textExamples(paragraphs(readFileSync(TINYSTORIES_VAL, 'utf8')).slice(0, 20), tok, 64);
  const tasks = [{ name: 'hero', train: hero.slice(0, 16), heldOut: hero.slice(16) }, { name: 'plain', train: plain.slice(0, 16), heldOut: plain.slice(16) }];
  const backend = createJsBackend();
  const report = await runConpet(ckpt, tasks, { backend, seq: 64, steps: 6, batch: 4, lr: 1e-2, replaySize: 8 });
  assert.equal(report.loss.map((l) => l.length), [1, 2]);
  assert.equal(report.routed[1], [1, 1], 'every held-out example reaches its own module');
  // Each module alone on its task, outside the mixed batch.
  for (const [j, task] of tasks.entries()) {
    const m = new AdaptedModel(ckpt);
    const own = report.model.get(`task${j}`);
    m.addAdapter('only', 'lora', { r: 8, targetModules: ['q_proj', 'v_proj'] });
    for (const [k, v] of own.params) m.get('only').params.get(k)!.data.set(v.data);
    const rt = m.runtime(backend);
    const res = await rt.evalTargets(task.heldOut.map((e) => e.ids.slice(0, 64)), task.heldOut.map((e) => Array.from(e.target.slice(1, 65), (t, k) => (t ? e.ids[k + 1]! : -100))), { batch: 4 });
    rt.dispose();
    assert.ok(Math.abs(res.loss - report.loss[1]![j]!) < 1e-5, `task ${j}: ${res.loss} vs ${report.loss[1]![j]}`);
  }
  assert.ok(Math.abs(report.forgetting[0]! - (report.loss[1]![0]! - report.loss[0]![0]!)) < 1e-12);
  assert.is(report.forgetting[1], 0);
});

test.run();
