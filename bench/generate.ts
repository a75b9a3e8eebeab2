/**
 * Generation benchmark: tokens/s of KV-cached greedy decoding for stories260K and the synthetic dim-512,
 * 8-layer, 32k-vocabulary Llama, on wasm (js measured in the same run as the baseline for stories260K).
 */
import type { Backend } from '../src/backends/backend.js';
import { createJsBackend } from '../src/backends/js/index.js';
import type { LlamaCheckpoint } from '../src/formats/checkpoint.js';
import { LlamaRuntime } from '../src/model/runtime.js';
import { createBackend } from '../src/scheduler/backends.js';
import { SYNTH_512, hardwareWebgpu, loadStories, syntheticCheckpoint } from './models.js';

async function tokensPerSecond(ckpt: LlamaCheckpoint, backend: Backend, tokens: number): Promise<number> {
  const rt = new LlamaRuntime(ckpt, backend);
  await rt.generate([1], { maxTokens: 4, stopTokens: [] });
  const t0 = performance.now();
  const out = await rt.generate([1], { maxTokens: tokens, stopTokens: [] });
  const s = (performance.now() - t0) / 1000;
  rt.dispose();
  return out.length / s;
}

export async function benchGenerate(o: { json: boolean }): Promise<void> {
  const wasm = (await createBackend('wasm')).backend;
  const stories = await loadStories();
  const rows: [string, string, number][] = [
    ['stories260K', 'js', await tokensPerSecond(stories, createJsBackend(), 200)],
    ['stories260K', 'wasm', await tokensPerSecond(stories, wasm, 200)],
    ['synthetic dim512×8L vocab 32k', 'wasm', await tokensPerSecond(syntheticCheckpoint(SYNTH_512), wasm, 32)],
  ];
  const gpu = await hardwareWebgpu();
  if (gpu) {
    rows.push(['stories260K', 'webgpu', await tokensPerSecond(stories, gpu, 200)]);
    rows.push(['synthetic dim512×8L vocab 32k', 'webgpu', await tokensPerSecond(syntheticCheckpoint(SYNTH_512), gpu, 32)]);
    gpu.dispose();
  } else if (!o.json) {
    console.log('webgpu: no hardware adapter here, not measured');
  }
  const base = rows[0]![2];
  for (const [model, backend, tps] of rows) {
    console.log(o.json
      ? JSON.stringify({ bench: 'generate', model, backend, tokensPerSecond: tps, ...(model === 'stories260K' ? { vsJs: tps / base } : {}) })
      : `greedy KV-cached generation, ${model}, ${backend}: ${tps.toFixed(1)} tokens/s${model === 'stories260K' && backend !== 'js' ? ` (${(tps / base).toFixed(1)}× js)` : backend === 'js' ? ' (baseline)' : ''}`);
  }
  wasm.dispose();
}
