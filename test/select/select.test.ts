// Data selection (src/select): k-means and the proportional split against hand-computed cases, IFD against
// its definition computed with LlamaRuntime.evalTargets (1e-4 relative: host float64 vs graph float32), the
// gradient feature and the forward pass's hidden states against a float64 PyTorch autograd reference
// (1e-4), the OT potentials on a hand case, and each selector on a planted data set (exact duplicates,
// trivially easy text, random tokens): deterministic under a seed and keeping what its rule says.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createJsBackend } from '../../src/backends/js/index.js';
import { tensorF32 } from '../../src/formats/checkpoint.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { selectAdaptInf } from '../../src/select/adapt-inf/index.js';
import { selectCdas } from '../../src/select/cdas/index.js';
import { cosine, Forward, gradientFeatures, type ItemSignals, itemSignals, kmeans, mean, projection, proportional, type SelectItem, selectItems, seqFor, sqDist } from '../../src/select/common/index.js';
import { selectDeita } from '../../src/select/deita/index.js';
import { selectNudge, sinkhornPotentials } from '../../src/select/nudge/index.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { stories } from '../methods/helpers.js';
import { runReference } from '../reference/python.js';
import { planted, randomText } from './planted.js';

const P = planted();
const TARGET = [
  'Lily and her mom went to the park. They saw a big dog and played with it.',
  'Tom had a toy car. He liked to race it on the floor with his friend Sam.',
  'The little bird flew over the tree. It was happy to see the sun.',
  'Sue found a pretty flower. She gave it to her mom, who smiled.',
].map((t) => JSON.stringify({ text: t }));
const RANDOM_TARGET = [11, 12, 13].map((s) => JSON.stringify({ text: randomText(s, 12) }));

let cache: { items: SelectItem[]; sig: ItemSignals[]; feats: Float64Array[]; target: ItemSignals[]; randomTarget: ItemSignals[]; fw: Forward } | undefined;
async function setup() {
  if (cache) return cache;
  const ckpt = await stories();
  const tok = createTokenizer(ckpt.tokenizer!);
  const items = selectItems(P.lines.join('\n'), 'planted.jsonl', tok, 200);
  const targetItems = selectItems(TARGET.join('\n'), 'target.jsonl', tok, 200);
  const randomItems = selectItems(RANDOM_TARGET.join('\n'), 'random.jsonl', tok, 200);
  const fw = new Forward(ckpt, createJsBackend(), seqFor([...items, ...targetItems, ...randomItems], ckpt.config.maxSeqLen));
  cache = { items, sig: await itemSignals(items, fw), feats: await gradientFeatures(items, fw, 32, 0), target: await itemSignals(targetItems, fw), randomTarget: await itemSignals(randomItems, fw), fw };
  return cache;
}

test('k-means: a hand-computed case, from every seed', () => {
  const pts = [[0, 0], [0, 2], [10, 0], [10, 2], [11, 1]].map((p) => Float64Array.from(p));
  for (let seed = 0; seed < 6; seed++) {
    const r = kmeans(pts, 2, seed);
    assert.equal(r.assign[0], r.assign[1]);
    assert.equal(new Set(r.assign.slice(2)).size, 1);
    assert.not.equal(r.assign[0], r.assign[2]);
    const a = r.centroids[r.assign[0]!]!, b = r.centroids[r.assign[2]!]!;
    assert.ok(sqDist(a, [0, 1]) < 1e-24, `seed ${seed}: ${a}`);
    assert.ok(sqDist(b, [31 / 3, 1]) < 1e-24, `seed ${seed}: ${b}`);
    assert.equal([...r.sizes].sort(), [2, 3]);
  }
  assert.throws(() => kmeans(pts, 6, 0), /k = 6 clusters for 5 points/);
});

test('proportional split: largest remainder, hand-computed', () => {
  assert.equal(proportional([5, 3, 2], 5), [3, 1, 1]); // 2.5, 1.5, 1.0 → floors 2,1,1, the tie goes to index 0
  assert.equal(proportional([1, 1, 1, 1], 2), [1, 1, 0, 0]);
  assert.equal(proportional([7, 0, 3], 10), [7, 0, 3]);
});

test('examples: the response is the completion, or a text line\'s second half; tasks from "task" or the file', async () => {
  const tok = createTokenizer((await stories()).tokenizer!);
  const text = [
    JSON.stringify({ prompt: 'Tom saw a big tree.', completion: ' He climbed it.', task: 'x' }),
    '',
    JSON.stringify({ text: 'Lily liked to play in the park.' }),
  ].join('\n');
  const [a, b] = selectItems(text, 'd.jsonl', tok, 200);
  assert.equal(a!.split, tok.encode('Tom saw a big tree.', { bos: true }).length);
  assert.equal(a!.task, 'x');
  assert.equal(b!.lineNo, 3);
  assert.equal(b!.split, Math.floor(b!.ids.length / 2));
  assert.equal(b!.task, 'd.jsonl');
  assert.equal(b!.line, JSON.stringify({ text: 'Lily liked to play in the park.' }));
  assert.throws(() => selectItems('{"text": "a"}', 'short.jsonl', tok, 200), /short.jsonl:1: too short/);
  assert.throws(() => selectItems('{"foo": 1}', 'bad.jsonl', tok, 200), /bad.jsonl:1/);
});

test('IFD equals its definition computed with evalTargets', async () => {
  const { items, sig } = await setup();
  const rt = new LlamaRuntime(await stories(), createJsBackend());
  for (const i of [0, 1, 3, 7]) {
    const it = items[i]!;
    const mask = (ids: number[], from: number) => ids.slice(1).map((t, k) => (k + 1 >= from ? t : -100));
    const cond = (await rt.evalTargets([it.ids.slice(0, -1)], [mask(it.ids, it.split)])).loss;
    const alone = [it.ids[0]!, ...it.ids.slice(it.split)];
    const al = (await rt.evalTargets([alone.slice(0, -1)], [mask(alone, 1)])).loss;
    const s = sig[i]!;
    assert.ok(Math.abs(s.lossCond - cond) <= 1e-4 * cond, `#${i} cond ${s.lossCond} vs ${cond}`);
    assert.ok(Math.abs(s.lossAlone - al) <= 1e-4 * al, `#${i} alone ${s.lossAlone} vs ${al}`);
    assert.ok(Math.abs(s.ifd - cond / al) <= 2e-4 * (cond / al));
  }
  rt.dispose();
  // Random tokens are hard, repeated story text easy.
  for (const h of P.hard) for (const e of P.easy) assert.ok(sig[h]!.lossCond > 5 * sig[e]!.lossCond);
});

test('gradient feature and hidden states against float64 PyTorch autograd', async () => {
  const { items, feats, fw } = await setup();
  const ckpt = await stories(), { vocabSize: V, dim: D } = ckpt.config;
  const W = tensorF32(ckpt.tensors.get(ckpt.tensors.has('lm_head.weight') ? 'lm_head.weight' : 'model.embed_tokens.weight')!);
  const { A, B } = projection(32, V, D, 0);
  for (const i of [0, 6]) {
    const it = items[i]!, T = it.ids.length;
    const { hidden, logits } = await fw.run(it.ids);
    const ref = runReference<{ feature: number[]; logits: number[] }>('select_grad_ref.py', {
      T, D, V, hidden: [...hidden.subarray(0, T * D)], W: [...W], ids: it.ids, split: it.split, A: A.map((a) => [...a]), B: B.map((b) => [...b]),
    }, mkdtempSync(join(tmpdir(), 'select-')));
    let maxL = 0;
    for (let k = 0; k < T * V; k++) maxL = Math.max(maxL, Math.abs(logits[k]! - ref.logits[k]!));
    assert.ok(maxL < 1e-4, `#${i} logits from the hidden states differ by ${maxL}`);
    const scale = Math.max(...ref.feature.map(Math.abs));
    for (let j = 0; j < 32; j++) assert.ok(Math.abs(feats[i]![j]! - ref.feature[j]!) <= 1e-4 * scale, `#${i} feature ${j}: ${feats[i]![j]} vs ${ref.feature[j]}`);
  }
});

test('OT potentials: a hand case', () => {
  // Two candidates, one target: all mass goes to it, the nearer candidate gets the lower potential, and
  // the calibrated potentials differ by the cost difference.
  const { f, cost } = sinkhornPotentials([Float64Array.of(0.1), Float64Array.of(0.5)], 0.01, 100);
  assert.ok(Math.abs(f[0]! - f[1]! + 0.4) < 1e-9, `${f}`);
  assert.ok(Math.abs(cost - 0.3) < 1e-9, `${cost}`);
});

const dupPairKept = (kept: number[]) => P.dup.some(([a, b]) => kept.includes(a!) && kept.includes(b!));

test('deita: deterministic; the threshold drops duplicates; IFD ≥ 1 ranks last', async () => {
  const { sig } = await setup();
  // Mean-pooled hidden states of a small model are all alike (cosines 0.5–0.96 here): 0.999 drops only the
  // exact duplicates (cosine 1) and the second copy of the story (cosine 0.9992; IFD ≥ 1, so ranked last).
  const a = selectDeita(sig, { keep: 10, threshold: 0.999 }), b = selectDeita(sig, { keep: 10, threshold: 0.999 });
  assert.equal(a.kept, b.kept);
  assert.equal(a.kept.length, 9, JSON.stringify(a.report));
  assert.not.ok(dupPairKept(a.kept), `kept ${a.kept}`);
  assert.equal((a.summary.dropped as { index: number }[]).map((d) => d.index).sort((x, y) => x - y), [3, 5, 11], JSON.stringify(a.summary.dropped));
  // At deita's 0.9 fewer pass, and the report says so.
  const d = selectDeita(sig, { keep: 10 });
  assert.ok(d.kept.length < 10 && !dupPairKept(d.kept));
  assert.match(d.report.at(-1)!, /only \d+ examples pass the threshold 0.9; 10 were asked for/);
  const three = selectDeita(sig, { keep: 3, threshold: 0.999 }).kept;
  for (const i of three) assert.ok(!P.hard.includes(i) && !P.easy.includes(i), `kept ${three}`);
  // Without the filter (threshold 1 still drops exact duplicates, cosine 1), with −1 only the first is kept.
  assert.equal(selectDeita(sig, { keep: 5, threshold: -0.99 }).kept.length, 1);
});

test('CDAS: deterministic under a seed; covers every cluster with its highest-IFD members', async () => {
  const { sig } = await setup();
  for (const seed of [0, 1, 2]) {
    const a = selectCdas(sig, { keep: 5, clusters: 4, seed }), b = selectCdas(sig, { keep: 5, clusters: 4, seed });
    assert.equal(a.kept, b.kept);
    const km = kmeans(sig.map((s) => s.embedding), 4, seed);
    for (let c = 0; c < 4; c++) assert.ok(a.kept.some((i) => km.assign[i] === c), `seed ${seed}: cluster ${c} not covered`);
    for (const c of a.summary.clusters as { size: number; kept: number[] }[]) assert.ok(c.kept.length >= 1 && c.kept.length <= c.size);
  }
  assert.throws(() => selectCdas(sig, { keep: 13 }), /keep = 13 is more than the 12/);
});

test('nudge: towards a random-token target it keeps the random-token examples; towards stories it lowers the OT distance', async () => {
  const { sig, target, randomTarget } = await setup();
  const a = selectNudge(sig, randomTarget, { keep: 3 }), b = selectNudge(sig, randomTarget, { keep: 3 });
  assert.equal(a.kept, b.kept);
  assert.equal(a.kept, P.hard);
  const tMean = mean(randomTarget.map((s) => s.embedding));
  assert.ok(sqDist(mean(a.kept.map((i) => sig[i]!.embedding)), tMean) < sqDist(mean(sig.map((s) => s.embedding)), tMean));
  const s = selectNudge(sig, target, { keep: 4 });
  for (const h of P.hard) assert.not.ok(s.kept.includes(h), `random tokens kept: ${s.kept}`);
  const kept = s.kept.map((i) => sig[i]!);
  const otAll = selectNudge(sig, target, { keep: 1 }).summary.otDistance as number;
  const otKept = selectNudge(kept, target, { keep: 1 }).summary.otDistance as number;
  assert.ok(otKept < otAll, `OT kept ${otKept} vs all ${otAll}`);
  assert.throws(() => selectNudge(sig, [], { keep: 2 }), /target set is empty/);
});

test('Adapt-∞: deterministic; prunes duplicates within a task and across the stream', async () => {
  const { sig, feats } = await setup();
  const items = sig.map((s, i) => ({ task: i < 6 ? 'a' : 'b', feature: feats[i]!, score: s.lossCond }));
  assert.ok(cosine(feats[0]!, feats[5]!) > 0.9999);
  for (const seed of [0, 3]) {
    const a = selectAdaptInf(items, { keep: 10, seed }), b = selectAdaptInf(items, { keep: 10, seed });
    assert.equal(a.kept, b.kept);
    assert.not.ok(dupPairKept(a.kept), `kept ${a.kept}`);
    const steps = a.summary.steps as { pruned: number[] }[];
    assert.ok(steps[0]!.pruned.includes(0) || steps[0]!.pruned.includes(5), 'the duplicate within task a is pruned at its step');
    // The two copies of the story differ only in their prompt: their gradient features are near-duplicates
    // (cosine 0.99), so one is pruned too and 9 of 12 remain.
    assert.equal(a.kept.length, 9);
    assert.not.ok(a.kept.includes(3) && a.kept.includes(8));
    assert.match(a.report.at(-1)!, /only 9 examples remain after pruning/);
  }
  // A stricter threshold keeps both story copies.
  assert.equal(selectAdaptInf(items, { keep: 10, threshold: 0.9999 }).kept.length, 10);
});

test.after(() => cache?.fw.dispose());
test.run();
