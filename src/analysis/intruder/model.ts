/**
 * Intruder dimensions over a whole model: every adapted (or, for a fully fine-tuned model, every linear)
 * module's weight before and after fine-tuning, as a list of per-module analyses ready to print or plot.
 */
import type { AdaptedModel } from '../../adapters/adapted-model.js';
import type { ModuleInfo } from '../../adapters/types.js';
import { type LlamaCheckpoint, tensorF32, withRopeLayout } from '../../formats/checkpoint.js';
import { analyzeWeight, type IntruderOptions, type ModuleAnalysis, resolveOptions } from './intruder.js';

export interface ModuleReport extends ModuleAnalysis {
  /** Hugging Face module name, e.g. model.layers.3.self_attn.q_proj. */
  module: string;
  layer?: number;
  /** The name's last part (q_proj, down_proj, …), for grouping. */
  kind: string;
}

/** The modules whose weight an adapter changes: its linear targets, and linear weights it replaces outright. */
export function adaptedLinearModules(model: AdaptedModel, adapter: string): ModuleInfo[] {
  const a = model.get(adapter);
  const replaced = new Set([...a.baseOverrides.keys()].map((k) => k.replace(/\.weight$/, '')));
  const out = model.modules.filter((m) => m.kind === 'linear' && (replaced.has(m.name) || (a.method.merge && a.modules.some((t) => t.name === m.name))));
  if (out.length === 0) {
    throw new Error(`the ${a.method.name} adapter changes no linear weight${a.method.merge ? '' : ` (${a.method.name} does not merge into the base weights)`}; intruder dimensions need a weight update ΔW`);
  }
  return out;
}

/** The weights with the adapter merged (and any replaced module in place): the fine-tuned model it stands for. */
export function mergedCheckpoint(model: AdaptedModel, adapter: string): LlamaCheckpoint {
  const a = model.get(adapter);
  const was = a.merged;
  if (a.method.merge) model.merge(adapter);
  try {
    return model.effectiveCheckpoint();
  } finally {
    a.merged = was;
  }
}

/**
 * Analyse `modules` of `tuned` against `base`. The fine-tuned checkpoint is brought to the base's rotary row
 * layout first (a GGUF base and a Hugging Face folder order Q/K rows differently; the cosines do not depend
 * on a row order both share, but do on one they do not).
 */
export function analyzeModules(base: LlamaCheckpoint, tuned: LlamaCheckpoint, modules: readonly ModuleInfo[], o: IntruderOptions = {}, onModule?: (done: number, total: number) => void): ModuleReport[] {
  resolveOptions(o);
  const t = withRopeLayout(tuned, base.config.ropeLayout);
  return modules.map((m, i) => {
    const key = `${m.name}.weight`;
    const wb = base.tensors.get(key), wt = t.tensors.get(key);
    if (!wb) throw new Error(`${base.source}: no tensor ${key}`);
    if (!wt) throw new Error(`${tuned.source}: no tensor ${key}`);
    if (wb.shape.join() !== wt.shape.join()) throw new Error(`${key}: the base weight is [${wb.shape}], the fine-tuned one [${wt.shape}]`);
    const [rows, cols] = wb.shape as [number, number];
    const r = analyzeWeight(tensorF32(wb), tensorF32(wt), rows, cols, o);
    onModule?.(i + 1, modules.length);
    return { module: m.name, ...(m.layer !== undefined ? { layer: m.layer } : {}), kind: m.name.slice(m.name.lastIndexOf('.') + 1), ...r };
  });
}

/** Intruder counts summed by layer and by module kind, and in all. */
export function intruderTotals(reports: readonly ModuleReport[]): { total: number; byLayer: Record<string, number>; byKind: Record<string, number> } {
  const byLayer: Record<string, number> = {}, byKind: Record<string, number> = {};
  let total = 0;
  for (const r of reports) {
    const n = r.intruders.length;
    total += n;
    const layer = r.layer === undefined ? 'none' : String(r.layer);
    byLayer[layer] = (byLayer[layer] ?? 0) + n;
    byKind[r.kind] = (byKind[r.kind] ?? 0) + n;
  }
  return { total, byLayer, byKind };
}
