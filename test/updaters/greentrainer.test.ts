// GreenTrainer's core: the per-tensor backward costs read off the graph equal a count made by hand for a tiny
// Llama, and predict the backward pass autodiff builds for any trainable set (exactly for the sets that train
// everything down to some depth, never below it otherwise); the DP selection equals the brute-force optimum on
// hand-made problems (edge cases included) and on random ones.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { LlamaConfig } from '../../src/formats/checkpoint.js';
import { gradients } from '../../src/graph/autodiff.js';
import { graphFlops, visiblePairs } from '../../src/graph/flops.js';
import { Graph } from '../../src/graph/graph.js';
import { buildModel } from '../../src/model/families.js';
import { nextTokenLoss } from '../../src/model/loss.js';
import { backwardCosts, selectionCost } from '../../src/updaters/greentrainer/costs.js';
import { backwardFraction, greenTrainerUpdater } from '../../src/updaters/greentrainer/index.js';
import { type SelectionProblem, bruteForceSelect, costOf, selectTensors } from '../../src/updaters/greentrainer/select.js';
import { rng } from '../helpers.js';

const tiny = (o: Partial<LlamaConfig> = {}): LlamaConfig => ({
  dim: 8, hiddenDim: 12, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 16, maxSeqLen: 16, normEps: 1e-5, ropeTheta: 10000,
  tiedEmbeddings: false, qkvBias: false, ropeLayout: 'pairs', architecture: 'llama', ...o,
});

test('visible (query, key) pairs: full, causal, causal with a window', () => {
  assert.is(visiblePairs(3, 3, false), 9);
  assert.is(visiblePairs(3, 3, true), 1 + 2 + 3);
  assert.is(visiblePairs(4, 4, true, 2), 1 + 2 + 2 + 2);
  assert.is(visiblePairs(2, 5, true), 4 + 5); // queries at the end of 5 keys
});

test('costs of a one-layer Llama equal a count by hand', () => {
  const B = 2, T = 3, D = 8, hd = 4, Hq = 2, KV = 4, H = 12, V = 16, BT = B * T;
  const c = backwardCosts(tiny(), B, T);
  const mm = (m: number, k: number, n: number): number => 2 * m * k * n;
  const pairs = B * Hq * (1 + 2 + 3); // causal, 3 queries
  // Conventions of the count: rmsnorm 4 per element, its backward 8; rope 3; silu 4, its backward 8;
  // add and mul 1; attention 4·hd + 3 per pair forward, 10·hd + 4 backward; cross-entropy 3 per logit
  // forward, 4 backward; gathers and reshapes 0; embedding_backward 1 per scattered element.
  const forward = 3 * 4 * BT * D
    + mm(BT, D, D) + 2 * mm(BT, D, KV) + 3 * BT * (D + KV) + pairs * (4 * hd + 3) + mm(BT, D, D) + BT * D
    + 2 * mm(BT, D, H) + 4 * BT * H + BT * H + mm(BT, H, D) + BT * D
    + mm(BT, D, V) + 3 * BT * V;
  assert.is(c.forward, forward);
  const want: Record<string, [number, number]> = {
    // [dw, dy]; output first.
    'lm_head.weight': [mm(V, BT, D), 4 * BT * V], // its gradient; the cross-entropy backward everything needs
    'model.norm.weight': [0, mm(BT, V, D) + 8 * BT * D], // the fused norm backward gives dx and dw together
    'model.layers.0.mlp.down_proj.weight': [mm(D, BT, H), 0], // its output gradient is the norm's dx
    'model.layers.0.mlp.up_proj.weight': [mm(H, BT, D), mm(BT, D, H) + BT * H],
    'model.layers.0.mlp.gate_proj.weight': [mm(H, BT, D), BT * H + 8 * BT * H],
    'model.layers.0.post_attention_layernorm.weight': [0, 2 * mm(BT, H, D) + BT * D + 8 * BT * D],
    'model.layers.0.self_attn.o_proj.weight': [mm(D, BT, D), BT * D], // the residual's two gradients summed
    'model.layers.0.self_attn.v_proj.weight': [mm(KV, BT, D), mm(BT, D, D) + pairs * (10 * hd + 4)],
    'model.layers.0.self_attn.k_proj.weight': [mm(KV, BT, D), 3 * BT * KV],
    'model.layers.0.self_attn.q_proj.weight': [mm(D, BT, D), 3 * BT * D],
    'model.layers.0.input_layernorm.weight': [0, 2 * mm(BT, KV, D) + mm(BT, D, D) + 2 * BT * D + 8 * BT * D],
    'model.embed_tokens.weight': [BT * D + BT * D, 0], // the last residual sum is needed by the embedding alone
  };
  assert.equal(c.tensors.map((t) => t.name), Object.keys(want), 'ordered from the output to the input');
  for (const t of c.tensors) assert.equal([t.dw, t.dy], want[t.name], t.name);
  assert.is(c.backward, Object.values(want).reduce((s, [a, b]) => s + a + b, 0));
});

/** Operations of the backward pass autodiff builds for the tensors at `ranks` of a cost table (a fresh graph). */
function builtBackward(config: LlamaConfig, B: number, T: number, names: readonly string[]): number {
  const g = new Graph();
  const model = buildModel(g, config, { batch: B, seq: T });
  const { loss } = nextTokenLoss(model, g.input('targets', [B * T], 'i32'), { ceChunk: 0 });
  const start = g.nodes.length;
  gradients(loss, names.map((n) => model.weights.get(n)!));
  return graphFlops(g, start);
}

test('the table predicts the backward pass autodiff builds: exact down to any depth, never below it for other sets', () => {
  for (const config of [tiny({ nLayers: 2 }), tiny({ nLayers: 2, tiedEmbeddings: true, nKvHeads: 2, hiddenDim: 20 })]) {
    const B = 2, T = 5;
    const c = backwardCosts(config, B, T);
    const n = c.tensors.length;
    // Every tensor from the output down to rank k.
    for (let k = 0; k < n; k++) {
      const set = Array.from({ length: k + 1 }, (_, i) => i);
      assert.is(selectionCost(c, set), builtBackward(config, B, T, set.map((i) => c.tensors[i]!.name)), `down to ${c.tensors[k]!.name}`);
    }
    assert.is(selectionCost(c, Array.from({ length: n }, (_, i) => i)), c.backward);
    // Random sets: the table charges siblings' shared work (k's rope beside q's) whenever the depth reaches it.
    const r = rng(5);
    let worst = 0;
    for (let trial = 0; trial < 25; trial++) {
      const set = Array.from({ length: n }, (_, i) => i).filter(() => r() < 0.3);
      if (set.length === 0) continue;
      const built = builtBackward(config, B, T, set.map((i) => c.tensors[i]!.name)), predicted = selectionCost(c, set);
      assert.ok(predicted >= built, `${set}: predicted ${predicted} < built ${built}`);
      worst = Math.max(worst, predicted / built - 1);
    }
    assert.ok(worst < 0.05, `over-estimate up to ${(100 * worst).toFixed(2)}%`);
  }
});

// ---- selection ----

const problem = (dw: number[], dy: number[], importance: number[], budget: number): SelectionProblem => ({ dw, dy, importance, budget });

function agree(p: SelectionProblem, label: string): void {
  const dp = selectTensors(p), bf = bruteForceSelect(p);
  if (!bf) { assert.is(dp, undefined, `${label}: nothing fits, yet the DP chose ${dp?.selected}`); return; }
  assert.ok(dp, `${label}: the DP found nothing; brute force ${bf.selected}`);
  assert.ok(dp!.cost <= p.budget, `${label}: DP set ${dp!.selected} costs ${dp!.cost} > ${p.budget}`);
  assert.is(dp!.cost, costOf(p, dp!.selected));
  assert.ok(Math.abs(dp!.importance - bf.importance) < 1e-9, `${label}: DP ${dp!.selected} → ${dp!.importance}, brute force ${bf.selected} → ${bf.importance}`);
}

test('hand-made problems: the DP equals brute force', () => {
  // The deepest tensor is the most important, but carrying the gradient down to it costs the whole budget.
  const deep = problem([2, 2, 2, 2], [1, 1, 1, 10], [1, 1, 1, 100], 12);
  agree(deep, 'deep out of reach');
  assert.equal(selectTensors(deep)!.selected, [0, 1, 2]);
  // Now it is within reach (reach 13 + its own 2), with room for one tensor above it (13 + 2 + 2 = 17).
  const reach = problem([2, 2, 2, 2], [1, 1, 1, 10], [1, 1, 1, 100], 17);
  agree(reach, 'deep within reach');
  assert.equal(selectTensors(reach)!.selected, [0, 3]);
  // Greedy by importance per cost fails: two mid-size tensors beat the best-ratio one.
  const knap = problem([3, 4, 4, 1], [0, 0, 0, 0], [3.3, 4, 4, 0.5], 8);
  agree(knap, 'knapsack');
  assert.equal(selectTensors(knap)!.selected, [1, 2]);
  // Every importance negative: the least harmful tensor that fits trains alone.
  const negative = problem([1, 1, 1], [0, 0, 0], [-3, -1, -2], 5);
  agree(negative, 'all negative');
  assert.equal(selectTensors(negative)!.selected, [1]);
  // Free tensors: all the helpful ones, down to the most helpful deep one.
  agree(problem([0, 0, 0, 0], [0, 0, 0, 0], [1, -1, 2, 3], 0), 'zero costs, zero budget');
  assert.equal(selectTensors(problem([0, 0, 0, 0], [0, 0, 0, 0], [1, -1, 2, 3], 0))!.selected, [0, 2, 3]);
  // Nothing fits.
  agree(problem([1, 1], [1, 1], [1, 1], 1), 'nothing fits');
  assert.is(selectTensors(problem([1, 1], [1, 1], [1, 1], 1)), undefined);
  // One tensor.
  agree(problem([3], [2], [0.5], 5), 'one tensor, exact fit');
  // Ties and zero importances.
  agree(problem([1, 1, 1, 1], [0, 0, 0, 0], [1, 1, 0, 1], 2), 'ties');
  // A tensor whose weight gradient is free but whose reach is not.
  agree(problem([5, 0, 5], [0, 6, 0], [1, 1, 1], 6), 'free weight gradient behind a costly reach');
  // Reach that grows past the budget midway: no deeper tensor can be chosen even with a tiny dw.
  agree(problem([1, 1, 0, 0], [1, 1, 5, 0], [1, 1, 9, 9], 6), 'reach past the budget');
});

test('random integer problems: the DP equals brute force', () => {
  const r = rng(11);
  const int = (hi: number): number => Math.floor(r() * (hi + 1));
  for (let trial = 0; trial < 300; trial++) {
    const n = 1 + int(11);
    const dw = Array.from({ length: n }, () => int(9)), dy = Array.from({ length: n }, () => (r() < 0.3 ? 0 : int(6)));
    const importance = Array.from({ length: n }, () => Math.round((r() * 10 - 2) * 100) / 100);
    const total = dw.reduce((a, b) => a + b, 0) + dy.reduce((a, b) => a + b, 0);
    agree(problem(dw, dy, importance, int(total)), `trial ${trial}`);
  }
});

test('real-valued costs: the rounded DP stays within the budget and loses at most what the rounding hides', () => {
  const r = rng(12);
  for (let trial = 0; trial < 60; trial++) {
    const n = 2 + Math.floor(r() * 10);
    const dw = Array.from({ length: n }, () => r() * 1e6), dy = Array.from({ length: n }, () => r() * 5e5);
    const importance = Array.from({ length: n }, () => r() - 0.1);
    const budget = r() * (dw.reduce((a, b) => a + b, 0) + dy.reduce((a, b) => a + b, 0));
    const units = 256, p = problem(dw, dy, importance, budget);
    const dp = selectTensors(p, { units });
    const bf = bruteForceSelect(p);
    // Each of the at most 2n costs rounds up by less than a unit.
    const inner = bruteForceSelect({ ...p, budget: budget - 2 * n * (budget / units) });
    if (dp) assert.ok(dp.cost <= budget, `trial ${trial}: ${dp.cost} > ${budget}`);
    if (inner) assert.ok(dp && dp.importance >= inner.importance - 1e-12, `trial ${trial}: DP ${dp?.importance} < ${inner.importance}`);
    if (dp) assert.ok(bf && dp.importance <= bf.importance + 1e-12);
  }
});

test('bad input is refused with the problem named', () => {
  assert.throws(() => selectTensors(problem([1], [1, 2], [1], 3)), /one entry per tensor/);
  assert.throws(() => selectTensors(problem([-1], [1], [1], 3)), /dw\[0\] must be a finite cost/);
  assert.throws(() => selectTensors(problem([1], [1], [NaN], 3)), /importance\[0\] is not finite/);
  assert.throws(() => selectTensors(problem([1], [1], [1], -1)), /budget/);
  assert.throws(() => bruteForceSelect(problem(new Array(21).fill(1), new Array(21).fill(1), new Array(21).fill(1), 3)), /too many/);
  const costs = backwardCosts(tiny(), 1, 2);
  assert.throws(() => greenTrainerUpdater({ costs, rho: 0 }), /rho must be in \(0, 1\]/);
  assert.throws(() => greenTrainerUpdater({ costs, rho: 1.5 }), /rho must be in \(0, 1\]/);
  assert.throws(() => greenTrainerUpdater({ costs, interval: 1 }), /interval must be an integer ≥ 2/);
  assert.throws(() => backwardCosts(tiny(), 0, 2), /batch and seq/);
});

test('the backward share of ρ: a whole step within ρ of a full one, floored at 5%', () => {
  // F + ρ_b·B = ρ·(F + B)
  assert.ok(Math.abs(backwardFraction(0.5, 1, 2) - 0.25) < 1e-12);
  assert.is(backwardFraction(1, 1, 2), 1);
  assert.is(backwardFraction(0.3, 1, 2), 0.05); // ρ does not even cover the forward pass
  assert.is(backwardFraction(0.35, 1, 2), 0.05); // 0.025 left: floored
});

test.run();
