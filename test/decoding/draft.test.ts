// Draft-and-verify decoding (src/decoding/draft/), on stories260K:
// - the output equals plain greedy decoding (LlamaRuntime.generate, an independent token-at-a-time loop)
//   token for token on 20 prompts, on js, wasm and webgpu, with drafts actually accepted (so the tree
//   verification and the KV compaction of accepted paths are exercised) and with a table of wrong drafts;
// - the tree mask: every node's logits after one tree pass equal the logits of its own path run as one
//   plain causal sequence (LlamaRuntime.logits, no KV cache), within 1e-5 of the logits' scale;
// - the tri-gram table keeps the top continuations per context, learns from accepted tokens and backs off
//   to bigrams; bad options are refused by name.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Backend } from '../../src/backends/backend.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { createWasmBackend } from '../../src/backends/wasm/index.js';
import { createWebgpuBackend } from '../../src/backends/webgpu/index.js';
import { draftGenerate } from '../../src/decoding/draft/decode.js';
import { buildDraftTree, type DraftNode, treeMask } from '../../src/decoding/draft/tree.js';
import { TrigramTable, trigramFromText } from '../../src/decoding/draft/trigram.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { randomizeParams, stories } from '../methods/helpers.js';

const CORPUS = '../shared/assets/data/tinystories/tinystories_val.txt';
const paragraphs = readFileSync(CORPUS, 'utf8').split(/\n\s*\n/).map((p) => p.trim()).filter(Boolean);

async function setup() {
  const ckpt = await stories();
  const tok = createTokenizer(ckpt.tokenizer!);
  // The table from the first 300 stories; the prompts are the first words of 20 later ones.
  const table = () => trigramFromText(paragraphs.slice(0, 300).join('\n\n'), tok);
  const prompts = paragraphs.slice(600, 620).map((p, i) => tok.encode(p.split(/\s+/).slice(0, 2 + (i % 7)).join(' '), { bos: true }));
  return { ckpt, tok, table, prompts };
}

/** `maxTokens` per prompt; prompts longest first, so each shape's first run sizes the caches that the rest reuse. */
async function matchesGreedy(backend: Backend, label: string, maxTokens: number): Promise<void> {
  const { ckpt, table, prompts } = await setup();
  const rt = new LlamaRuntime(ckpt, backend);
  let accepted = 0, passes = 0, tokens = 0;
  const t = table();
  try {
    for (const [i, prompt] of [...prompts].sort((a, b) => b.length - a.length).entries()) {
      const plain = await rt.generate(prompt, { maxTokens });
      // Alternate tree shapes: wide and shallow, a single chain, deep and narrow.
      const shape = [{ depth: 4, width: 3 }, { depth: 3, width: 1 }, { depth: 6, width: 2, budget: 8 }][i % 3]!;
      const d = await draftGenerate(rt, t, prompt, { maxTokens, ...shape });
      assert.equal(d.tokens, plain, `${label}: prompt ${i}`);
      accepted += d.stats.accepted; passes += d.stats.passes; tokens += d.stats.tokens;
    }
  } finally { rt.dispose(); }
  // Drafts are accepted (so multi-token paths and their KV compaction are part of what was checked).
  assert.ok(accepted > tokens / 3, `${label}: ${accepted} drafted tokens accepted of ${tokens}`);
  assert.ok(passes < tokens * 0.7, `${label}: ${passes} passes for ${tokens} tokens`);
}

test('js: the output is greedy decoding\'s on 20 prompts, with drafts accepted', async () => {
  await matchesGreedy(createJsBackend(), 'js', 32);
});

test('wasm: the output is greedy decoding\'s on 20 prompts', async () => {
  const wasm = await createWasmBackend({ threads: 2 });
  try { await matchesGreedy(wasm, 'wasm', 32); } finally { wasm.dispose(); }
});

test('webgpu: the output is greedy decoding\'s on 20 prompts', async () => {
  const gpu = await createWebgpuBackend();
  try { await matchesGreedy(gpu, 'webgpu', 12); } finally { gpu.dispose(); }
});

test('a table of wrong drafts, the end of the context, and stop tokens: still greedy decoding', async () => {
  const { ckpt, prompts } = await setup();
  const rt = new LlamaRuntime(ckpt, createJsBackend());
  // Every context continues with tokens the model never picks here: nothing is accepted.
  const wrong = TrigramTable.fromSequences([[5, 6, 7, 8, 9, 10, 11, 12]]);
  for (const b of [...Array(512).keys()]) wrong.update([b, 300, 301, 302], 1);
  const prompt = prompts[0]!;
  const plain = await rt.generate(prompt, { maxTokens: 20 });
  const d = await draftGenerate(rt, wrong, prompt, { maxTokens: 20, adapt: false });
  assert.equal(d.tokens, plain);
  // A context shorter than prompt + maxTokens: both stop at the same token and report it.
  const small = new LlamaRuntime({ ...ckpt, config: { ...ckpt.config, maxSeqLen: prompt.length + 13 } }, createJsBackend());
  const full: number[] = [];
  const plainShort = await small.generate(prompt, { maxTokens: 40, onContextFull: (c) => full.push(c) });
  const { table } = await setup();
  const draftShort = await draftGenerate(small, table(), prompt, { maxTokens: 40, onContextFull: (c) => full.push(c) });
  assert.equal(draftShort.tokens, plainShort);
  assert.equal(full, [prompt.length + 13, prompt.length + 13]);
  // A stop token: the model's own continuation's fifth token ends both.
  const stop = plain[4]!;
  assert.equal((await draftGenerate(rt, table(), prompt, { maxTokens: 20, stopTokens: [stop] })).tokens, await rt.generate(prompt, { maxTokens: 20, stopTokens: [stop] }));
});

test('with a LoRA adapter the output is the adapted model\'s greedy decoding; adapters that add positions are refused', async () => {
  const { ckpt, table, prompts } = await setup();
  const backend = createJsBackend();
  const tuned = new AdaptedModel(ckpt);
  tuned.addAdapter('e', 'lora', { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'] }, { seed: 3 });
  randomizeParams(tuned, 'e', 0.3);
  const rt = tuned.runtime(backend);
  const plain = await rt.generate(prompts[1]!, { maxTokens: 24 });
  assert.not.equal(plain, await new LlamaRuntime(ckpt, backend).generate(prompts[1]!, { maxTokens: 24 }), 'the adapter changes the output');
  assert.equal((await draftGenerate(rt, table(), prompts[1]!, { maxTokens: 24 })).tokens, plain);
  const prompted = new AdaptedModel(ckpt);
  prompted.addAdapter('p', 'prompt-tuning', { numVirtualTokens: 4 }, { seed: 1 });
  try { await draftGenerate(prompted.runtime(backend), table(), prompts[1]!, { maxTokens: 4 }); assert.unreachable(); } catch (e) { assert.match((e as Error).message, /draft-tree decoding does not take adapters that add positions/); }
});

async function treeAgainstPaths(backend: Backend, label: string, tol: number): Promise<void> {
  const { ckpt, tok } = await setup();
  const rt = new LlamaRuntime(ckpt, backend);
  const prefix = tok.encode('Once upon a time, there was a', { bos: true });
  const w = (s: string) => tok.encode(s, { bos: false })[0]!;
  // root "little", two branches with sub-branches, depths up to 3 (parents before children).
  const nodes: DraftNode[] = [
    { token: w('little'), parent: -1, depth: 0 },
    { token: w('girl'), parent: 0, depth: 1 },
    { token: w('boy'), parent: 0, depth: 1 },
    { token: w('named'), parent: 1, depth: 2 },
    { token: w('who'), parent: 2, depth: 2 },
    { token: w('Lily'), parent: 3, depth: 3 },
    { token: w('and'), parent: 1, depth: 2 },
  ];
  const slots = 9, cacheLen = 40, pos = prefix.length;
  const dec = await rt.treeDecoding(cacheLen, slots, 4);
  const none = (at: number) => Int32Array.from({ length: 4 }, (_, k) => Math.min(at + k, cacheLen - 1));
  // The prefix as a chain (one pass), then the tree: its two padding slots see the root only.
  const chain = prefix.map((token, i) => ({ token, parent: i - 1, depth: i }));
  const ids = (ns: readonly DraftNode[]) => Int32Array.from({ length: slots }, (_, i) => ns[i]?.token ?? 0);
  const positions = (ns: readonly DraftNode[], p: number) => Int32Array.from({ length: slots }, (_, i) => p + (ns[i]?.depth ?? 0));
  await dec.run({ ids: ids(chain), positions: positions(chain, 0), mask: treeMask(chain, 0, slots, cacheLen), pos: 0, moveSrc: none(slots), moveDst: slots });
  const logits = await dec.run({ ids: ids(nodes), positions: positions(nodes, pos), mask: treeMask(nodes, pos, slots, cacheLen), pos, moveSrc: none(pos + slots), moveDst: pos + slots });
  const V = ckpt.config.vocabSize;
  let worst = 0, scale = 0;
  for (let i = 0; i < nodes.length; i++) {
    const path: number[] = [];
    for (let a = i; a >= 0; a = nodes[a]!.parent) path.unshift(nodes[a]!.token);
    const seq = [...prefix, ...path];
    const ref = (await rt.logits(Int32Array.from(seq), 1, seq.length)).subarray((seq.length - 1) * V);
    for (let v = 0; v < V; v++) {
      worst = Math.max(worst, Math.abs(logits[i * V + v]! - ref[v]!));
      scale = Math.max(scale, Math.abs(ref[v]!));
    }
  }
  rt.dispose();
  assert.ok(worst <= tol * scale, `${label}: max |tree − path| = ${worst}, logits up to ${scale}`);
}

test('tree mask: each node\'s logits equal its path run as a plain sequence (js, wasm, webgpu)', async () => {
  await treeAgainstPaths(createJsBackend(), 'js', 1e-5);
  const wasm = await createWasmBackend({ threads: 1 });
  try { await treeAgainstPaths(wasm, 'wasm', 1e-5); } finally { wasm.dispose(); }
  const gpu = await createWebgpuBackend();
  try { await treeAgainstPaths(gpu, 'webgpu', 1e-5); } finally { gpu.dispose(); }
});

test('the mask: prefix, ancestors and self; padding slots see the root', () => {
  const nodes: DraftNode[] = [{ token: 1, parent: -1, depth: 0 }, { token: 2, parent: 0, depth: 1 }, { token: 3, parent: 0, depth: 1 }, { token: 4, parent: 2, depth: 2 }];
  const m = treeMask(nodes, 2, 5, 8);
  const rows = [...Array(5).keys()].map((i) => [...m.subarray(i * 8, i * 8 + 8)].join(''));
  assert.equal(rows, ['11100000', '11110000', '11101000', '11101100', '11100000']);
});

test('the table keeps the top continuations, learns from accepted tokens and backs off to bigrams', () => {
  // After (7, 8): 9 ×3, 10 ×2, 11 ×1, 12 ×2 → kept (keep 2): 9, then 10 (ties by token id).
  const seqs = [[7, 8, 9], [7, 8, 9], [7, 8, 9], [7, 8, 10], [7, 8, 10], [7, 8, 11], [7, 8, 12], [7, 8, 12]];
  const t = TrigramTable.fromSequences(seqs, { keep: 2 });
  assert.equal(t.trigram(7, 8), [{ token: 9, count: 3 }, { token: 10, count: 2 }]);
  assert.equal(t.candidates(7, 8, 5), [{ token: 9, p: 0.6 }, { token: 10, p: 0.4 }]);
  assert.equal(t.bigram(7), [{ token: 8, count: 8 }]);
  // Unseen (3, 7) backs off to 7's bigram continuations.
  assert.equal(t.candidates(3, 7, 5), [{ token: 8, p: 1 }]);
  // Accepted output: 10 twice after (7, 8) overtakes 9; an unseen 13 replaces the least frequent entry.
  t.update([7, 8, 10, 7, 8, 10], 2);
  assert.equal(t.trigram(7, 8), [{ token: 10, count: 4 }, { token: 9, count: 3 }]);
  t.update([7, 8, 13], 2);
  assert.equal(t.trigram(7, 8), [{ token: 10, count: 4 }, { token: 13, count: 4 }]);
  assert.equal(t.trigram(8, 10), [{ token: 7, count: 1 }]);
});

test('the draft tree: best path probability first, within depth, width and budget', () => {
  const t = TrigramTable.fromSequences([[1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [1, 2, 3, 4, 6], [1, 2, 7]]);
  // From (1, 2): 3 (p 3/4) then 7 (1/4); the chain 3 → 4 (p 1 each) outranks 7, then 5 (2/3) and 6 (1/3).
  const tree = buildDraftTree(t, 1, 2, { depth: 3, width: 2, budget: 4 });
  assert.equal(tree.map((n) => [n.token, n.parent, n.depth]), [[2, -1, 0], [3, 0, 1], [4, 1, 2], [5, 2, 3], [7, 0, 1]]);
  assert.equal(buildDraftTree(t, 1, 2, { depth: 3, width: 1, budget: 10 }).map((n) => n.token), [2, 3, 4, 5]);
  assert.equal(buildDraftTree(t, 1, 2, { depth: 1, width: 2, budget: 10 }).map((n) => n.token), [2, 3, 7]);
});

test('bad options are refused by name before any work', async () => {
  const { ckpt } = await setup();
  const rt = new LlamaRuntime(ckpt, createJsBackend());
  const t = new TrigramTable();
  for (const [o, re] of [[{ depth: 0 }, /option 'depth'/], [{ width: 1.5 }, /option 'width'/], [{ budget: 0 }, /option 'budget'/], [{ maxTokens: 0 }, /option 'maxTokens'/]] as const) {
    try { await draftGenerate(rt, t, [1], o); assert.unreachable(); } catch (e) { assert.match((e as Error).message, re); }
  }
  assert.throws(() => new TrigramTable({ keep: 0 }), /keep must be a positive integer/);
  // Families whose graph has no tree verification, and sliding windows shorter than the cache.
  const gemma = new LlamaRuntime({ ...ckpt, config: { ...ckpt.config, architecture: 'gemma' } }, createJsBackend());
  try { await draftGenerate(gemma, t, [1, 2], { maxTokens: 2 }); assert.unreachable(); } catch (e) { assert.match((e as Error).message, /draft-tree verification is not available for the gemma family/); }
  const windowed = new LlamaRuntime({ ...ckpt, config: { ...ckpt.config, slidingWindow: 4 } }, createJsBackend());
  try { await draftGenerate(windowed, t, [1, 2], { maxTokens: 20 }); assert.unreachable(); } catch (e) { assert.match((e as Error).message, /does not take sliding-window attention \(layer 0: window 4 < cache 22\)/); }
  assert.throws(() => trigramFromText('\n\n  \n', { encode: () => [] }), /the draft corpus has no text/);
});

test.run();
