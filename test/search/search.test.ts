// The search on stories260K with a tiny budget: every candidate's point is checked by brute force (no front
// point dominates another; each point off the front is dominated by a front point), the chosen point is on
// the front and follows the rule, and two runs with the same seed give the same candidates, rungs, losses and
// front, bit for bit (wasm, one thread: the same kernels in the same order).
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadCheckpoint } from '../../src/formats/checkpoint.js';
import { pack, textExamples } from '../../src/data/dataset.js';
import { createBackend } from '../../src/scheduler/backends.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { dominates, searchConfigurations, type SearchResult } from '../../src/search/index.js';
import { STORIES_GGUF, TINYSTORIES_VAL } from '../assets.js';

const ckpt = await loadCheckpoint(STORIES_GGUF);
const tok = createTokenizer(ckpt.tokenizer!);
const stories = readFileSync(TINYSTORIES_VAL, 'utf8').split(/\n\s*\n/).slice(0, 36);
const data = pack(textExamples(stories.slice(0, 30), tok, 32), 32, 0);
const evalData = pack(textExamples(stories.slice(30), tok, 32), 32, 0);
const space = { methods: ['lora', 'ia3'], ranks: [2, 4], targets: [['q_proj', 'v_proj'], ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']], layers: [null, [3, 4]] };

async function run(seed: number): Promise<SearchResult> {
  const { backend } = await createBackend('wasm', { threads: 1 });
  try {
    return await searchConfigurations(ckpt, { space, budget: 64, seed, batch: 4, minSteps: 3, eta: 2, rungs: 2, tolerance: 0.01, data, evalData, backend });
  } finally {
    backend.dispose();
  }
}

const a = await run(5);

test('the plan fits the budget and every point comes from a real run', () => {
  assert.ok(a.stepsUsed <= 64 && a.points.length >= 2, JSON.stringify(a.plan));
  assert.is(a.points.length, a.plan[0]!.candidates);
  for (const p of a.points) assert.ok(Number.isFinite(p.loss) && p.loss > 0 && p.params > 0);
  // A front point survived or not, but every candidate of the last rung trained the last rung's steps.
  const last = a.rungs[a.rungs.length - 1]!;
  for (const e of last.evaluated) assert.is(a.points.find((p) => JSON.stringify(p.candidate) === JSON.stringify(e.candidate))!.steps, last.steps);
});

test('front: no front point dominates another; every other point is dominated by one (brute force)', () => {
  for (const i of a.front) for (const j of a.front) assert.not.ok(dominates(a.points[i]!, a.points[j]!));
  for (let k = 0; k < a.points.length; k++) {
    if (a.front.includes(k)) continue;
    assert.ok(a.front.some((i) => dominates(a.points[i]!, a.points[k]!)), `point ${k} off the front, dominated by none`);
  }
  assert.ok(a.front.includes(a.chosen));
  const best = Math.min(...a.front.map((i) => a.points[i]!.loss));
  const within = a.front.filter((i) => a.points[i]!.loss <= best * 1.01);
  assert.is(a.points[a.chosen]!.params, Math.min(...within.map((i) => a.points[i]!.params)));
  assert.is(a.chosenModel.parameterCount('default'), a.points[a.chosen]!.params);
});

test('a fixed seed reproduces the candidates, losses and front exactly; another seed draws others', async () => {
  const b = await run(5);
  assert.equal(b.points, a.points);
  assert.equal(b.front, a.front);
  assert.is(b.chosen, a.chosen);
  assert.equal(b.rungs.map((r) => r.kept), a.rungs.map((r) => r.kept));
  const c = await run(6);
  assert.not.equal(c.points.map((p) => p.candidate), a.points.map((p) => p.candidate));
});

test.run();
