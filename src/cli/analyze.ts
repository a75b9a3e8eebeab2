/**
 * `adaptkit analyze --model M (--adapter DIR | --tuned DIR)`: intruder dimensions of each fine-tuned weight
 * against the base model's (src/analysis/intruder), the effective rank of each update ΔW, a table on stdout
 * and, with --json FILE, the same per module as plot-ready JSON.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { AdaptedModel } from '../adapters/adapted-model.js';
import { INTRUDER_DEFAULTS } from '../analysis/intruder/intruder.js';
import { adaptedLinearModules, analyzeModules, intruderTotals, mergedCheckpoint, type ModuleReport } from '../analysis/intruder/model.js';
import type { ModuleInfo } from '../adapters/types.js';
import type { LlamaCheckpoint } from '../formats/checkpoint.js';
import { modelModules } from '../adapters/targets.js';
import { checkModelLimits, type FlagSpec, type Flags, UsageError, need } from './args.js';
import { writeFileAtomic } from './output.js';
import { Progress } from './progress.js';
import { isModelFolder, loadModelFolder } from './train-base.js';
import { applyDeltaToCheckpoint, isDeltaFolder, loadDeltaFolder } from '../updaters/sparse/folder.js';

export const analyzeFlags: Record<string, FlagSpec> = {
  model: { type: 'string', help: 'the pre-trained model: a .gguf, llama2.c .bin, safetensors folder, URL or Hugging Face repo id' },
  adapter: { type: 'string', help: 'a PEFT adapter folder trained on --model (merged into it to form the fine-tuned weights)', path: { kind: 'folder' } },
  tuned: { type: 'string', help: 'instead of --adapter: a fully fine-tuned model folder (train --method full|lisa|hft writes one; Hugging Face layout or model.gguf) with --model\'s shapes', path: { kind: 'folder' } },
  k: { type: 'int', help: "top singular vectors of each fine-tuned weight examined (the paper's code: 10; at most the weight's smaller dimension)", default: INTRUDER_DEFAULTS.k, range: { integer: true, min: 1 } },
  epsilon: { type: 'number', help: "a vector is an intruder when its largest |cosine| to every pre-trained singular vector is below ε (the paper's code: 0.5)", default: INTRUDER_DEFAULTS.epsilon, range: { above: 0, max: 1 } },
  modules: { type: 'string', help: 'only modules whose name ends with one of these, comma-separated (e.g. q_proj,v_proj; default: every module the adapter changes, or with --tuned every linear layer but the output head)' },
  layers: {
    type: 'string', help: 'only these layers, comma-separated',
    limit: (v, _f, m) => {
      const bad = String(v).split(',').find((x) => !/^\s*\d+\s*$/.test(x) || Number(x) >= m.nLayers);
      return bad === undefined ? undefined : `'${bad.trim()}' is not a layer of this model (it has ${m.nLayers}: 0 to ${m.nLayers - 1})`;
    },
  },
  json: { type: 'string', help: 'also write the analysis as JSON to this file: per module its shape, intruder indices, the max |cosine| of each top-k vector (enough to redraw the count for any ε), top-k singular values, ΔW\'s singular values, effective and numerical rank' },
  help: { type: 'bool', help: 'show this help' },
};

export interface AnalyzeDeps {
  openModel(f: Flags): Promise<{ ckpt: LlamaCheckpoint }>;
  readAdapterDir(model: AdaptedModel, dir: string): Promise<unknown>;
}

const err = (s: string): void => { process.stderr.write(`${s}\n`); };

/** --modules and --layers applied to the candidate modules; an empty result is an error naming both. */
function pickModules(all: readonly ModuleInfo[], f: Flags): ModuleInfo[] {
  const suffixes = f.modules === undefined ? undefined : String(f.modules).split(',').map((s) => s.trim()).filter(Boolean);
  const layers = f.layers === undefined ? undefined : new Set(String(f.layers).split(',').map(Number));
  const out = all.filter((m) => (!suffixes || suffixes.some((s) => m.name === s || m.name.endsWith(`.${s}`))) && (!layers || (m.layer !== undefined && layers.has(m.layer))));
  if (out.length === 0) throw new UsageError(`no module to analyse: --modules ${f.modules ?? '(all)'} --layers ${f.layers ?? '(all)'} match none of ${all.length} (e.g. ${all.slice(0, 3).map((m) => m.name).join(', ')})`);
  return out;
}

const fmt = (v: number, d: number): string => (v === 0 ? '0' : Math.abs(v) < 10 ** -d ? v.toExponential(1) : v.toFixed(d));

/** The readable table: one row per module, then the totals by layer and by module kind. */
export function formatIntruderTable(reports: readonly ModuleReport[], k: number, epsilon: number): string {
  const rows = reports.map((r) => [
    r.module, `${r.rows}×${r.cols}`,
    `${r.intruders.length}${r.intruders.length ? ` (#${r.intruders.join(',#')})` : ''}`,
    fmt(Math.min(...r.maxCosine), 3), fmt(r.relativeChange, 4), fmt(r.deltaEffectiveRank, 2), String(r.deltaRank),
  ]);
  const head = ['module', 'shape', 'intruders', 'min max|cos|', '‖ΔW‖/‖W‖', 'erank ΔW', 'rank ΔW'];
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]): string => cells.map((s, c) => (c === 0 ? s.padEnd(widths[c]!) : s.padStart(widths[c]!))).join('  ');
  const t = intruderTotals(reports);
  return [
    `intruder dimensions: the top ${k} left singular vectors of each fine-tuned weight; one whose largest |cosine| to every pre-trained singular vector is below ε = ${epsilon} is an intruder (#j: its rank, 0 = largest singular value)`,
    'erank ΔW: effective rank exp(entropy of σ/Σσ) of the update (Roy & Vetterli, 2007); rank ΔW: singular values above float32 rounding of the fine-tuned weight',
    '',
    line(head),
    ...rows.map(line),
    '',
    `total: ${t.total} intruder dimension${t.total === 1 ? '' : 's'} in ${reports.length} modules`,
    `by layer: ${Object.entries(t.byLayer).map(([l, n]) => `${l}: ${n}`).join(', ')}`,
    `by module: ${Object.entries(t.byKind).map(([kind, n]) => `${kind}: ${n}`).join(', ')}`,
    '',
  ].join('\n');
}

export async function analyzeCommand(f: Flags, deps: AnalyzeDeps): Promise<void> {
  need(f, 'model', 'analyze');
  if ((f.adapter === undefined) === (f.tuned === undefined)) throw new UsageError('analyze needs exactly one of --adapter DIR (a PEFT adapter) and --tuned DIR (a fully fine-tuned model folder)');
  if (f.tuned !== undefined && !isModelFolder(String(f.tuned))) throw new UsageError(`--tuned ${f.tuned}: not a model folder (config.json and model.safetensors, or model.gguf)${existsSync(`${f.tuned}/adapter_config.json`) ? '; it holds a PEFT adapter: pass it as --adapter' : ''}`);
  const jsonPath = f.json === undefined ? undefined : String(f.json);
  if (jsonPath !== undefined) {
    const parent = dirname(jsonPath);
    if (!existsSync(parent) || !statSync(parent).isDirectory()) throw new UsageError(`--json ${jsonPath}: the folder ${parent} does not exist`);
    if (existsSync(jsonPath) && statSync(jsonPath).isDirectory()) throw new UsageError(`--json ${jsonPath}: is a folder, expected a file`);
  }
  const { ckpt: base } = await deps.openModel({ ...f, 'base-dtype': 'auto' });
  checkModelLimits(f, analyzeFlags, base.config);
  let tuned: LlamaCheckpoint, candidates: ModuleInfo[], source: string;
  if (f.adapter !== undefined && isDeltaFolder(String(f.adapter))) {
    // A sparse delta (train --method spiel, compose) added to the base: analysed as a fine-tuned model.
    tuned = applyDeltaToCheckpoint(base, (await loadDeltaFolder(String(f.adapter))).delta, `--adapter ${f.adapter}`);
    candidates = modelModules(base.config).filter((m) => m.kind === 'linear' && m.name !== 'lm_head');
    source = `sparse delta ${f.adapter} added to ${base.source}`;
  } else if (f.adapter !== undefined) {
    const model = new AdaptedModel(base);
    await deps.readAdapterDir(model, String(f.adapter));
    candidates = adaptedLinearModules(model, 'default');
    tuned = mergedCheckpoint(model, 'default');
    source = `adapter ${f.adapter} (${model.get('default').method.name}) merged into ${base.source}`;
  } else {
    tuned = await loadModelFolder(String(f.tuned), base, 'auto');
    candidates = modelModules(base.config).filter((m) => m.kind === 'linear' && m.name !== 'lm_head');
    source = `fine-tuned model ${f.tuned}`;
  }
  const modules = pickModules(candidates, f);
  const k = Number(f.k), epsilon = Number(f.epsilon);
  err(`analyze: ${modules.length} modules of ${source} against ${base.source}`);
  const bar = new Progress('svd', modules.length, process.stderr, false);
  const reports = analyzeModules(base, tuned, modules, { k, epsilon }, (done) => bar.update(done));
  process.stdout.write(formatIntruderTable(reports, k, epsilon));
  if (jsonPath !== undefined) {
    const totals = intruderTotals(reports);
    const json = {
      base: base.source, ...(f.adapter !== undefined ? { adapter: String(f.adapter) } : { tuned: String(f.tuned) }),
      k, epsilon,
      definitions: {
        intruder: 'the fine-tuned weight\'s left singular vector y_j (j < k) with max_i |cos(y_j, x_i)| < epsilon over every left singular vector x_i of the pre-trained weight',
        effectiveRank: 'Roy & Vetterli (2007): exp(-Σ p_i ln p_i), p_i = σ_i / Σ σ over the singular values of ΔW = W_tuned - W_base counted in rank (those above float32 rounding noise)',
        rank: 'singular values of ΔW above max(rows, cols) · 2^-23 · σ_max(W_tuned)',
      },
      totals,
      modules: reports.map((r) => ({
        module: r.module, layer: r.layer ?? null, kind: r.kind, shape: [r.rows, r.cols], k: r.k,
        intruders: r.intruders, maxCosine: Array.from(r.maxCosine), tunedSingularValues: Array.from(r.tunedSingularValues),
        deltaSingularValues: Array.from(r.deltaSingularValues), deltaEffectiveRank: r.deltaEffectiveRank, deltaRank: r.deltaRank,
        deltaNorm: r.deltaNorm, relativeChange: r.relativeChange,
      })),
    };
    await writeFileAtomic(jsonPath, `${JSON.stringify(json, null, 1)}\n`);
    err(`wrote ${jsonPath}`);
  }
}
