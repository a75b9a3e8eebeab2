/**
 * Draft-and-verify decoding (src/decoding/draft/) against plain greedy decoding, measured in the same run:
 * stories260K continues 10 TinyStories openings (stories 600–609 of the validation file, 128 tokens each),
 * drafting from a tri-gram table of stories 0–499; the synthetic dim-512, 8-layer, 32k-vocabulary Llama
 * (random weights, so a corpus says nothing about it) continues 2 prompts with a table that starts empty
 * and learns from the accepted output alone (wasm, and webgpu when present). Prints the tokens emitted per forward pass (accepted
 * drafted tokens + the model's own one), tokens/s of both, the speed-up (plain time / draft time) and
 * whether every output equals greedy's. Both runs are warm (graphs built and weights uploaded first).
 * Backends: js, wasm, and webgpu when a hardware adapter is present.
 */
import { readFileSync } from 'node:fs';
import type { Backend } from '../src/backends/backend.js';
import { createJsBackend } from '../src/backends/js/index.js';
import { draftGenerate, type DraftOptions } from '../src/decoding/draft/decode.js';
import { TrigramTable, trigramFromText } from '../src/decoding/draft/trigram.js';
import type { LlamaCheckpoint } from '../src/formats/checkpoint.js';
import { LlamaRuntime } from '../src/model/runtime.js';
import { createBackend } from '../src/scheduler/backends.js';
import { createTokenizer } from '../src/tokenizer/index.js';
import { SYNTH_512, hardwareWebgpu, loadStories, syntheticCheckpoint } from './models.js';

const CORPUS = '../shared/assets/data/tinystories/tinystories_val.txt';
const MAX_TOKENS = 128;

interface Row { model: string; backend: string; shape: string; tokensPerPass: number; plainTps: number; draftTps: number; speedup: number; identical: boolean }

interface Workload { model: string; ckpt: LlamaCheckpoint; prompts: number[][]; table: () => TrigramTable; stopTokens?: number[] }

async function measure(w: Workload, backend: Backend, name: string, shapes: Record<string, DraftOptions>): Promise<Row[]> {
  const rt = new LlamaRuntime(w.ckpt, backend);
  const o = { maxTokens: MAX_TOKENS, ...(w.stopTokens ? { stopTokens: w.stopTokens } : {}) };
  const rows: Row[] = [];
  // Warm: every graph built once, at the longest cache any prompt needs.
  const longest = w.prompts.reduce((a, b) => (b.length > a.length ? b : a));
  await rt.generate(longest, o);
  let t0 = performance.now();
  const plain: number[][] = [];
  for (const p of w.prompts) plain.push(await rt.generate(p, o));
  const plainS = (performance.now() - t0) / 1000;
  const plainTokens = plain.reduce((a, x) => a + x.length, 0);
  for (const [shape, so] of Object.entries(shapes)) {
    await draftGenerate(rt, w.table(), longest, { ...o, ...so });
    const table = w.table();
    let tokens = 0, passes = 0, identical = true;
    t0 = performance.now();
    for (const [i, p] of w.prompts.entries()) {
      const d = await draftGenerate(rt, table, p, { ...o, ...so });
      tokens += d.stats.tokens; passes += d.stats.passes;
      identical &&= d.tokens.join() === plain[i]!.join();
    }
    const draftS = (performance.now() - t0) / 1000;
    // Both runs emit the same tokens when the outputs are identical; tokens/s compares them either way.
    rows.push({ model: w.model, backend: name, shape, tokensPerPass: tokens / passes, plainTps: plainTokens / plainS, draftTps: tokens / draftS, speedup: (tokens / draftS) / (plainTokens / plainS), identical });
  }
  rt.dispose();
  return rows;
}

/** stories260K on TinyStories openings, and the synthetic dim-512 model (a random model: repetitive text) with a table learned while decoding. */
async function workloads(): Promise<Workload[]> {
  const ckpt = await loadStories();
  const tok = createTokenizer(ckpt.tokenizer!);
  const stories = readFileSync(CORPUS, 'utf8').split(/\n\s*\n/).map((p) => p.trim()).filter(Boolean);
  const corpus = stories.slice(0, 500).join('\n\n');
  return [
    { model: 'stories260K', ckpt, prompts: stories.slice(600, 610).map((p) => tok.encode(p.split(/\s+/).slice(0, 6).join(' '), { bos: true })), table: () => trigramFromText(corpus, tok) },
    // Random weights follow no corpus: the table starts empty and learns from accepted output only.
    { model: 'synthetic dim512×8L vocab 32k (table learned while decoding)', ckpt: syntheticCheckpoint(SYNTH_512), prompts: [[1, 100, 200, 300], [1, 5000, 7]], table: () => new TrigramTable(), stopTokens: [] },
  ];
}

export async function benchDraft(o: { json: boolean }): Promise<void> {
  const shapes: Record<string, DraftOptions> = {
    'depth 4 width 2 (default)': {},
    'depth 4 width 3': { depth: 4, width: 3 },
    'depth 3 width 1 (a chain)': { depth: 3, width: 1 },
  };
  const rows: Row[] = [];
  const wasm = (await createBackend('wasm')).backend;
  const gpu = await hardwareWebgpu();
  for (const w of await workloads()) {
    if (w.model === 'stories260K') rows.push(...await measure(w, createJsBackend(), 'js', shapes));
    rows.push(...await measure(w, wasm, 'wasm', shapes));
    if (gpu) rows.push(...await measure(w, gpu, 'webgpu', shapes));
  }
  wasm.dispose();
  gpu?.dispose();
  if (!gpu && !o.json) console.log('webgpu: no hardware adapter here, not measured');
  for (const r of rows) {
    console.log(o.json
      ? JSON.stringify({ bench: 'draft', ...r })
      : `draft decoding, ${r.model}, ${r.backend}, ${r.shape}: ${r.tokensPerPass.toFixed(2)} tokens per forward pass; ${r.draftTps.toFixed(1)} tokens/s vs greedy ${r.plainTps.toFixed(1)} tokens/s: ${r.speedup.toFixed(2)}× (output ${r.identical ? 'identical to greedy' : 'DIFFERS from greedy'})`);
  }
}
