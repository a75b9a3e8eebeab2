/**
 * `adaptkit search --model M --data D --budget N`: configuration search in the manner of AutoPEFT
 * (src/search): method × rank × target modules × layers, successive halving over short runs scored on
 * held-out loss and trainable parameters, the Pareto front with a text plot, and the chosen configuration
 * saved as `train` flags and as a trained PEFT adapter folder.
 */
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { savePeft } from '../adapters/peft.js';
import { getMethod } from '../adapters/registry.js';
import type { ChosenBackend } from '../scheduler/backends.js';
import { type Example, pack } from '../data/dataset.js';
import type { LlamaCheckpoint } from '../formats/checkpoint.js';
import { familyOf } from '../model/families.js';
import { contextNeeded, FINE_TUNE_RANGES } from '../train/finetune.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { asciiScatter } from '../search/plot.js';
import { planSearch, searchConfigurations, type SearchResult } from '../search/search.js';
import { candidateConfig, candidateLabel, searchGrid, type SearchSpace, trainArgs } from '../search/space.js';
import { AdaptedModel } from '../adapters/adapted-model.js';
import { modelModules, selectTargets } from '../adapters/targets.js';
import { type FlagSpec, type Flags, UsageError, need } from './args.js';
import { writeFileAtomic } from './output.js';

export const searchFlags: Record<string, FlagSpec> = {
  model: { type: 'string', help: 'model: a .gguf, llama2.c .bin, safetensors folder, URL or Hugging Face repo id' },
  tokenizer: { type: 'string', help: 'the vocabulary when the model has none (as train)', path: { kind: 'file' } },
  data: { type: 'string', help: "training data, required (as train: text, .jsonl, or 'builtin')", path: { kind: 'file', except: ['builtin'] } },
  'eval-data': { type: 'string', help: "held-out data every candidate is scored on (default: the last 10% of --data's examples, at least one, which are then not trained on)", path: { kind: 'file' } },
  budget: { type: 'int', help: 'required: total optimizer steps over every run of every rung (the first-rung candidate count is the largest that fits)', range: { integer: true, min: 1 } },
  methods: { type: 'string', help: 'adapter methods to try, comma-separated', default: 'lora,ia3' },
  ranks: { type: 'string', help: "ranks to try, comma-separated (methods with an r option)", default: '2,4,8' },
  targets: { type: 'string', help: "target-module sets to try, separated by '/', each comma-separated; 'all' is every projection of the model's family", default: 'q_proj,v_proj/all' },
  layers: { type: 'string', help: "layer sets to try, separated by '/': 'all', 'top' (the upper half), 'bottom' (the lower half), or comma-separated indices", default: 'all/top' },
  'min-steps': { type: 'int', help: 'steps of a first-rung run', default: 8, range: { integer: true, min: 1 } },
  eta: { type: 'int', help: 'keep 1/eta of the candidates after each rung; each rung trains eta times the steps', default: 3, range: { integer: true, min: 2 } },
  rungs: { type: 'int', help: 'successive-halving rungs', default: 3, range: { integer: true, min: 1, max: 8 } },
  tolerance: { type: 'number', help: 'chosen point: fewest trainable parameters among front points within this relative loss of the best front loss', default: 0.01, range: { min: 0, max: 1 } },
  seed: { type: 'int', help: 'seed of the candidate draw and of every run', default: 1, range: FINE_TUNE_RANGES.seed },
  batch: { type: 'int', help: 'sequences per step', default: 8, range: FINE_TUNE_RANGES.batch },
  seq: { type: 'int', help: 'tokens per sequence', default: 64, range: { integer: true, min: 1 } },
  lr: { type: 'number', help: "peak learning rate of every run (default: each method's own)", range: FINE_TUNE_RANGES.lr },
  out: { type: 'string', help: 'folder for search.json (every point), chosen.json (the chosen configuration) and adapter/ (its trained PEFT adapter)', default: 'out/search' },
  overwrite: { type: 'bool', help: 'replace the search.json, chosen.json and adapter/ of an earlier search in --out' },
  json: { type: 'bool', help: 'print the result as one JSON object instead of the tables and plot' },
};

export interface SearchDeps {
  openTextModel(f: Flags): Promise<{ ckpt: LlamaCheckpoint; tok: Tokenizer }>;
  openBackend(f: Flags, quiet?: boolean): Promise<ChosenBackend>;
  loadExamples(spec: string, tok: Tokenizer, seq: number): Promise<{ examples: Example[]; source: string }>;
}

const list = (v: string): string[] => v.split(',').map((s) => s.trim()).filter(Boolean);

/** The search space from the flags; every name and number checked against the model. */
export function spaceFromFlags(f: Flags, model: LlamaCheckpoint['config']): SearchSpace {
  const methods = list(String(f.methods));
  if (!methods.length) throw new UsageError('--methods is empty: name at least one adapter method (e.g. lora,ia3)');
  for (const m of methods) {
    try { getMethod(m); } catch (e) { throw new UsageError(`--methods: ${(e as Error).message}`); }
  }
  const ranks = list(String(f.ranks)).map((r) => {
    const n = Number(r);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`--ranks: '${r}' is not an integer ≥ 1`);
    return n;
  });
  if (!ranks.length) throw new UsageError('--ranks is empty');
  const family = familyOf(model).linearSuffixes;
  const targets = String(f.targets).split('/').map((s) => s.trim()).filter(Boolean).map((s) => {
    const t = s === 'all' ? [...family] : list(s);
    const bad = t.find((x) => !family.includes(x));
    if (bad) throw new UsageError(`--targets: '${bad}' is not a projection of this model (${family.join(', ')})`);
    return t;
  });
  if (!targets.length) throw new UsageError('--targets is empty');
  const L = model.nLayers, half = Math.floor(L / 2);
  const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);
  const layers = String(f.layers).split('/').map((s) => s.trim()).filter(Boolean).map((s) => {
    if (s === 'all') return null;
    if (s === 'top') return range(half, L);
    if (s === 'bottom') return range(0, Math.max(1, half));
    return list(s).map((x) => {
      const n = Number(x);
      if (!Number.isInteger(n) || n < 0 || n >= L) throw new UsageError(`--layers: '${x}' is not a layer of this model (it has ${L}: 0 to ${L - 1})`);
      return n;
    });
  });
  if (!layers.length) throw new UsageError('--layers is empty');
  return { methods, ranks, targets, layers };
}

function report(r: SearchResult): string {
  const lines: string[] = [];
  const pad = (s: string, n: number): string => s.padEnd(n);
  lines.push(`Pareto front over (held-out loss, trainable parameters) of ${r.points.length} candidates (${r.grid} in the space, ${r.stepsUsed} steps):`);
  const rows = [...r.front].sort((a, b) => r.points[a]!.params - r.points[b]!.params);
  for (const i of rows) {
    const p = r.points[i]!;
    lines.push(`  ${i === r.chosen ? '@' : '*'} ${pad(candidateLabel(p.candidate), 52)} loss ${p.loss.toFixed(4)}  params ${p.params.toLocaleString('en-US').padStart(9)}  (${p.steps} steps)`);
  }
  lines.push('', asciiScatter(r.points, r.front, r.chosen));
  return lines.join('\n');
}

export async function searchCommand(f: Flags, deps: SearchDeps): Promise<void> {
  need(f, 'data', 'search');
  const budget = Number(need(f, 'budget', 'search'));
  const out = String(f.out);
  const json = Boolean(f.json);
  const written = ['search.json', 'chosen.json', 'adapter'].filter((n) => existsSync(join(out, n)));
  if (written.length && !f.overwrite) throw new UsageError(`--out ${out} already holds a search (${written.join(', ')}); pass --overwrite to replace it, or another --out`);
  const halving = { minSteps: Number(f['min-steps']), eta: Number(f.eta), rungs: Number(f.rungs) };
  // Method names and the budget are checked before the model loads (a layer or target check needs it).
  if (!list(String(f.methods)).length) throw new UsageError('--methods is empty: name at least one adapter method (e.g. lora,ia3)');
  for (const m of list(String(f.methods))) {
    try { getMethod(m); } catch (e) { throw new UsageError(`--methods: ${(e as Error).message}`); }
  }
  const { ckpt, tok } = await deps.openTextModel(f);
  const space = spaceFromFlags(f, ckpt.config);
  // Every configuration of the space is built once on the model, so a bad combination fails before training.
  const seq = Number(f.seq);
  for (const c of searchGrid(space)) {
    const m = new AdaptedModel(ckpt);
    try { m.addAdapter('default', c.method, candidateConfig(c), { seed: 0 }); } catch (e) { throw new UsageError(`${candidateLabel(c)}: ${(e as Error).message}`); }
    // Prompt and prefix tuning's virtual tokens share the context with --seq.
    const { needed, reserved } = contextNeeded(m, seq);
    if (needed > ckpt.config.maxSeqLen) throw new UsageError(`--seq ${seq}${reserved ? ` plus ${c.method}'s ${reserved} virtual tokens` : ''} exceeds the model's context of ${ckpt.config.maxSeqLen}`);
    // As train's --rank: a rank above a module's smaller dimension adds only parameters.
    if (c.rank === undefined) continue;
    const modules = selectTargets(getMethod(c.method).parseConfig(candidateConfig(c)), modelModules(ckpt.config));
    const small = modules.reduce((a, m) => (Math.min(m.inFeatures, m.outFeatures) < Math.min(a.inFeatures, a.outFeatures) ? m : a), modules[0]!);
    if (small && c.rank > Math.min(small.inFeatures, small.outFeatures)) throw new UsageError(`--ranks: ${c.rank} exceeds ${Math.min(small.inFeatures, small.outFeatures)}, the smaller dimension of ${small.name} (${small.inFeatures} → ${small.outFeatures})`);
  }
  try { planSearch(space, budget, halving); } catch (e) { throw new UsageError(`--budget ${budget}: ${(e as Error).message.replace(/^search: /, '')}`); }
  const loaded = await deps.loadExamples(String(f.data), tok, seq);
  let train = loaded.examples, held: Example[];
  if (f['eval-data'] !== undefined) held = (await deps.loadExamples(String(f['eval-data']), tok, seq)).examples;
  else {
    if (train.length < 2) throw new UsageError(`--data ${loaded.source}: ${train.length} example(s); give at least 2 (one is held out) or --eval-data`);
    const k = Math.max(1, Math.floor(train.length / 10));
    held = train.slice(train.length - k);
    train = train.slice(0, train.length - k);
  }
  const data = pack(train, seq, 0), evalData = pack(held, seq, 0);
  if (!data.targets.some((t) => t !== -100)) throw new UsageError(`--data ${loaded.source}: no token to predict (the examples are empty)`);
  if (!evalData.targets.some((t) => t !== -100)) throw new UsageError('held-out data has no token to predict (the examples are empty)');
  // The folder is created and proved writable before the first run, not after the search.
  try {
    await mkdir(join(out, 'adapter'), { recursive: true });
    await writeFileAtomic(join(out, '.write-test'), '');
    await rm(join(out, '.write-test'), { force: true });
  } catch (e) {
    throw new UsageError(`--out ${out}: cannot write there (${(e as Error).message})`);
  }
  const chosenBackend = await deps.openBackend(f, json);
  const say = (s: string): void => { if (!json) process.stdout.write(`${s}\n`); };
  let result: SearchResult;
  try {
    result = await searchConfigurations(ckpt, {
      space, budget, seed: Number(f.seed), batch: Number(f.batch), ...(f.lr !== undefined ? { lr: Number(f.lr) } : {}),
      tolerance: Number(f.tolerance), data, evalData, backend: chosenBackend.backend, ...halving,
      onRung: (r, plan) => {
        if (r.rung === 0) say(`successive halving: ${plan.map((p) => `${p.candidates} × ${p.steps} steps`).join(', then ')} (${data.rows} training rows, ${evalData.rows} held-out rows of ${seq} tokens)`);
        say(`rung ${r.rung + 1}/${plan.length}: ${r.evaluated.length} candidates × ${r.steps} steps`);
        const kept = new Set(r.kept);
        for (const e of [...r.evaluated].sort((a, b) => a.result.loss - b.result.loss)) {
          say(`  ${kept.has(e.index) && r.rung + 1 < plan.length ? 'kept   ' : r.rung + 1 < plan.length ? 'stopped' : '       '} ${candidateLabel(e.candidate).padEnd(52)} loss ${e.result.loss.toFixed(4)}  params ${e.result.params.toLocaleString('en-US')}`);
        }
      },
    });
  } finally {
    chosenBackend.backend.dispose();
  }
  const chosen = result.points[result.chosen]!;
  const chosenJson = {
    method: getMethod(chosen.candidate.method).name, config: candidateConfig(chosen.candidate), trainArgs: trainArgs(chosen.candidate),
    loss: chosen.loss, params: chosen.params, steps: chosen.steps, rule: `fewest trainable parameters within ${Number(f.tolerance) * 100}% of the front's best held-out loss`,
  };
  const all = {
    budget, stepsUsed: result.stepsUsed, seed: Number(f.seed), grid: result.grid, plan: result.plan,
    points: result.points.map((p, i) => ({ ...p, front: result.front.includes(i) })), front: result.front, chosen: result.chosen,
  };
  const files = savePeft(result.chosenModel, 'default', { baseModel: String(f.model) });
  await writeFileAtomic(join(out, 'search.json'), `${JSON.stringify(all, null, 2)}\n`);
  await writeFileAtomic(join(out, 'chosen.json'), `${JSON.stringify(chosenJson, null, 2)}\n`);
  await writeFileAtomic(join(out, 'adapter', 'adapter_config.json'), files.config);
  await writeFileAtomic(join(out, 'adapter', 'adapter_model.safetensors'), files.weights);
  if (json) { process.stdout.write(`${JSON.stringify({ ...all, chosenConfig: chosenJson })}\n`); return; }
  say(`\n${report(result)}\n`);
  say(`chosen (${chosenJson.rule}): ${candidateLabel(chosen.candidate)}, loss ${chosen.loss.toFixed(4)}, ${chosen.params.toLocaleString('en-US')} parameters`);
  say(`saved ${out}/search.json, ${out}/chosen.json and the trained adapter ${out}/adapter/; train it longer with: adaptkit train --model ${String(f.model)} --data ${String(f.data)} ${chosenJson.trainArgs.join(' ')} --out DIR`);
}
