// The search's pieces without a model: Pareto dominance and the front checked by brute force over random
// point sets (with ties), the chosen-point rule, the rung plan and the budget it fits, and successive halving
// with a fake objective keeping exactly the best ⌊n/η⌋ of each rung by the documented order.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { asciiScatter, candidatesForBudget, chooseFromFront, dominates, multiObjectiveOrder, paretoFront, paretoRanks, planSteps, rungPlan, successiveHalving, type Objectives } from '../../src/search/index.js';
import { seededRandom } from '../../src/util/random.js';

function randomPoints(n: number, seed: number): Objectives[] {
  const r = seededRandom(seed);
  // Coarse values so that equal losses and equal parameter counts occur.
  return Array.from({ length: n }, () => ({ loss: Math.floor(r() * 8) / 4, params: 100 * Math.floor(r() * 8) }));
}

test('dominates: better in one objective and no worse in the other', () => {
  assert.ok(dominates({ loss: 1, params: 10 }, { loss: 2, params: 10 }));
  assert.ok(dominates({ loss: 1, params: 5 }, { loss: 1, params: 10 }));
  assert.not.ok(dominates({ loss: 1, params: 10 }, { loss: 1, params: 10 }));
  assert.not.ok(dominates({ loss: 1, params: 20 }, { loss: 2, params: 10 }));
});

test('front: no front point dominates another, every other point is dominated by a front point (brute force, 200 random sets)', () => {
  for (let s = 1; s <= 200; s++) {
    const pts = randomPoints(1 + (s % 23), s);
    const front = paretoFront(pts);
    assert.ok(front.length >= 1);
    for (const i of front) for (const j of front) assert.not.ok(dominates(pts[i]!, pts[j]!), `set ${s}: front point ${i} dominates ${j}`);
    for (let k = 0; k < pts.length; k++) {
      if (front.includes(k)) continue;
      assert.ok(front.some((i) => dominates(pts[i]!, pts[k]!)), `set ${s}: point ${k} is off the front but no front point dominates it`);
    }
    // Non-dominated sorting: layer 0 is the front, and each point of layer L > 0 is dominated by one of layer L - 1.
    const rank = paretoRanks(pts);
    assert.equal(pts.map((_, i) => i).filter((i) => rank[i] === 0), front);
    for (let k = 0; k < pts.length; k++) if (rank[k]! > 0) assert.ok(pts.some((q, i) => rank[i] === rank[k]! - 1 && dominates(q, pts[k]!)));
  }
});

test('chooseFromFront: fewest parameters within the relative tolerance of the best loss', () => {
  const pts = [{ loss: 2.0, params: 10 }, { loss: 1.5, params: 100 }, { loss: 1.01, params: 1000 }, { loss: 1.0, params: 5000 }];
  const front = paretoFront(pts);
  assert.equal(front, [0, 1, 2, 3]);
  assert.is(chooseFromFront(pts, front, 0), 3);
  assert.is(chooseFromFront(pts, front, 0.01), 2);
  assert.is(chooseFromFront(pts, front, 0.5), 1);
  assert.is(chooseFromFront(pts, front, 1), 0);
});

test('rung plan: ⌊n/η⌋ survivors, η times the steps; the budget fits the most candidates it can', () => {
  const o = { minSteps: 4, eta: 3, rungs: 3 };
  assert.equal(rungPlan(10, o), [{ candidates: 10, steps: 4 }, { candidates: 3, steps: 12 }, { candidates: 1, steps: 36 }]);
  assert.is(planSteps(rungPlan(10, o)), 40 + 36 + 36);
  const n = candidatesForBudget(112, 100, o)!;
  assert.is(n, 10);
  assert.ok(planSteps(rungPlan(n + 1, o)) > 112);
  assert.is(candidatesForBudget(1000, 7, o), 7, 'capped by the space');
  // Two candidates need 2·4 + 1·12 + 1·36 = 56 steps.
  assert.is(candidatesForBudget(55, 100, o), undefined);
  assert.is(candidatesForBudget(56, 100, o), 2);
});

test('successive halving keeps the top ⌊n/η⌋ per rung by (Pareto layer, loss) with a fake objective', async () => {
  const r = seededRandom(7);
  // Candidate i has a fixed size and a loss that falls with steps at its own rate.
  const cands = Array.from({ length: 27 }, (_, i) => ({ id: i, params: 50 + Math.floor(r() * 500), rate: r(), floor: 1 + r() }));
  const objective = (c: (typeof cands)[number], steps: number): Objectives => ({ loss: c.floor + 2 * Math.exp(-c.rate * steps / 10), params: c.params });
  const calls: [number, number][] = [];
  const rungs = await successiveHalving(cands, { minSteps: 2, eta: 3, rungs: 3 }, async (c, steps, index) => {
    calls.push([index, steps]);
    return objective(c, steps);
  });
  assert.equal(rungs.map((x) => [x.evaluated.length, x.steps]), [[27, 2], [9, 6], [3, 18]]);
  assert.is(calls.length, 27 + 9 + 3);
  for (const [k, rung] of rungs.entries()) {
    const pts = rung.evaluated.map((e) => objective(cands[e.index]!, rung.steps));
    // The expected survivors computed independently: sort by Pareto layer (brute force), then loss.
    const layer = pts.map(() => -1);
    for (let L = 0, left = pts.length; left > 0; L++) {
      const now = pts.map((p, i) => layer[i] === -1 && !pts.some((q, j) => layer[j] === -1 && j !== i && dominates(q, p)) ? i : -1).filter((i) => i >= 0);
      for (const i of now) layer[i] = L;
      left -= now.length;
    }
    const expected = pts.map((_, i) => i).sort((a, b) => layer[a]! - layer[b]! || pts[a]!.loss - pts[b]!.loss).map((i) => rung.evaluated[i]!.index);
    const keep = k < 2 ? rung.evaluated.length / 3 : rung.evaluated.length;
    assert.equal(rung.kept, expected.slice(0, keep), `rung ${k}`);
    assert.equal(multiObjectiveOrder(pts).map((i) => rung.evaluated[i]!.index).slice(0, keep), rung.kept);
    if (k < 2) assert.equal(rungs[k + 1]!.evaluated.map((e) => e.index), rung.kept, 'the next rung trains exactly the kept ones');
  }
});

test('plot: front points as *, the chosen one as @, others as o; fewer parameters to the left, lower loss at the bottom', () => {
  const pts = [{ loss: 2, params: 10 }, { loss: 1, params: 1000 }, { loss: 2.5, params: 1000 }, { loss: 1.5, params: 100 }];
  const text = asciiScatter(pts, paretoFront(pts), 1, { width: 21, height: 5 });
  const rows = text.split('\n').slice(1, 6).map((r) => r.slice(r.indexOf('|') + 1));
  // log10 params 1, 2, 3 → columns 0, 10, 20; loss 2.5 → top row, 1 → bottom row.
  assert.is(rows[0]![20], 'o');
  assert.is(rows[4]![20], '@');
  assert.is(rows[Math.round((2.5 - 2) / 1.5 * 4)]![0], '*');
  assert.is(rows[Math.round((2.5 - 1.5) / 1.5 * 4)]![10], '*');
  assert.is(rows.join('').replace(/ /g, '').length, 4, 'one mark per point');
  assert.match(text, /2\.5000 \|/);
  assert.match(text, /1\.0000 \|/);
});

test.run();
