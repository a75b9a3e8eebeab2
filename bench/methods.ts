/**
 * Adapter methods against LoRA r=8 on stories260K: each fine-tunes the built-in hero task on the same
 * packed data (batch 8 × 64 tokens, the same steps, learning rate and seed) and reports its trainable
 * parameters (as allocated: TriAdaptLoRA allocates maxRank and grows into it), the values its saved adapter
 * holds after training (AdaLoRA pruned, TriAdaptLoRA grown, a reparameterised prefix as its table), peak
 * memory (process RSS while it trains, and the rise over the RSS before it starts), the median step time,
 * the last training loss (with any regulariser) and the held-out hero-task loss afterwards.
 * The backend is wasm unless ADAPTKIT_BENCH_BACKEND names another (js, webgpu, auto).
 */
import { AdaptedModel } from '../src/adapters/adapted-model.js';
import { heroStories } from '../src/data/builtin-task.js';
import { batchAt, pack, textExamples } from '../src/data/dataset.js';
import { LLAMA_PROJECTIONS } from '../src/model/llama.js';
import { createBackend } from '../src/scheduler/backends.js';
import { createTokenizer } from '../src/tokenizer/index.js';
import { fineTune } from '../src/train/finetune.js';
import { loadStories } from './models.js';

const ALL = [...LLAMA_PROJECTIONS];
const STEPS = 30, BATCH = 8, SEQ = 64, LR = 1e-2;

/** What each method trains with: comparable budgets where the method has a rank. */
const RUNS: { label: string; method: string; config: Record<string, unknown> }[] = [
  { label: 'lora r=8', method: 'lora', config: { r: 8, alpha: 16, targetModules: ALL } },
  { label: '(ia)³', method: 'ia3', config: {} },
  { label: 'ssf', method: 'ssf', config: {} },
  { label: 'adalora 12→8', method: 'adalora', config: { initR: 12, targetR: 8, targetModules: ALL, tinit: 5, tfinal: 10, deltaT: 5, orthRegWeight: 0.1 } },
  { label: 'hydra r=8', method: 'hydra', config: { r: 8, targetModules: ALL } },
  { label: 'lamda r=8', method: 'lamda', config: { r: 8 } },
  { label: 'lamda++ r̄=8', method: 'lamda', config: { r: 8, adaptiveRank: true } },
  { label: 'triadaptlora 1→8', method: 'triadaptlora', config: { referenceRank: 8, targetModules: ALL, orthRegWeight: 0.1 } },
  { label: 'bottleneck houlsby', method: 'bottleneck', config: {} },
  { label: 'compacter', method: 'compacter', config: {} },
  { label: 'prompt-tuning 20', method: 'prompt-tuning', config: { numVirtualTokens: 20, initText: 'Once upon a time, there was a little dragon' } },
  { label: 'prefix-tuning 20', method: 'prefix-tuning', config: { numVirtualTokens: 20, projection: true } },
];

export async function benchMethods(opts: { json: boolean }): Promise<void> {
  const ckpt = await loadStories();
  const tok = createTokenizer(ckpt.tokenizer!);
  const train = pack(textExamples(heroStories(96), tok, SEQ), SEQ, 0);
  const held = pack(textExamples(heroStories(16, 99), tok, SEQ), SEQ, 0);
  const chosen = await createBackend(process.env.ADAPTKIT_BENCH_BACKEND ?? 'wasm');
  const backend = chosen.backend;
  if (!opts.json) {
    console.log(`backend: ${backend.describe()}; ${STEPS} steps of batch ${BATCH} × ${SEQ} tokens, lr ${LR}, on ${train.rows} packed hero-task rows`);
    console.log(`${'method'.padEnd(20)}${'trainable'.padStart(10)}${'saved'.padStart(9)}${'peak RSS MiB'.padStart(14)}${'(+ MiB)'.padStart(9)}${'step ms'.padStart(9)}${'train loss'.padStart(12)}${'held-out'.padStart(10)}`);
  }
  for (const run of RUNS) {
    (globalThis as { gc?: () => void }).gc?.();
    const model = new AdaptedModel(ckpt);
    model.addAdapter('default', run.method, run.config, { seed: 1 });
    const start = process.memoryUsage().rss;
    let peak = start;
    const stamps: number[] = [];
    const { losses } = await fineTune({
      model, adapter: 'default', backend, data: train, steps: STEPS, batch: BATCH, lr: LR, decay: 'constant', seed: 1,
      onStep: () => { stamps.push(performance.now()); peak = Math.max(peak, process.memoryUsage().rss); },
    });
    const gaps = stamps.slice(1).map((t, i) => t - stamps[i]!).sort((a, b) => a - b);
    const stepMs = gaps[Math.floor(gaps.length / 2)] ?? NaN;
    const rt = model.runtime(backend);
    const rows = Array.from({ length: held.rows }, (_, r) => batchAt(held, r, 1));
    const evalLoss = (await rt.evalTargets(rows.map((b) => Array.from(b.ids)), rows.map((b) => Array.from(b.targets)), { batch: BATCH, seq: SEQ })).loss;
    rt.dispose();
    const a = model.get('default');
    const saved = [...(a.method.exportParams ? a.method.exportParams(a).params : a.params).values()].reduce((n, t) => n + t.data.length, 0);
    const result = {
      suite: 'methods', method: run.label, trainable: model.parameterCount('default'), saved, peakRssMiB: peak / 2 ** 20, rssRiseMiB: (peak - start) / 2 ** 20,
      stepMs, trainLoss: losses[losses.length - 1]!, heldOutLoss: evalLoss, steps: STEPS, backend: backend.describe(),
    };
    if (opts.json) console.log(JSON.stringify(result));
    else {
      console.log(`${run.label.padEnd(20)}${result.trainable.toLocaleString('en-US').padStart(10)}${saved.toLocaleString('en-US').padStart(9)}${result.peakRssMiB.toFixed(0).padStart(14)}${`+${result.rssRiseMiB.toFixed(0)}`.padStart(9)}${stepMs.toFixed(0).padStart(9)}${result.trainLoss.toFixed(4).padStart(12)}${evalLoss.toFixed(4).padStart(10)}`);
    }
  }
  backend.dispose();
}
