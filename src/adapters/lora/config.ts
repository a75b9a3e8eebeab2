/** LoRA's options, with Hugging Face PEFT's defaults and adapter_config.json keys. */
import { bool, checkKeys, excludes, fromPeftTargets, layers, num, oneOf, peftTargets, targets } from '../config-utils.js';
import type { ModuleInfo, TargetConfig } from '../types.js';

export type LoraInit = 'default' | 'gaussian' | 'pissa' | 'eva' | 'corda';

/** EVA's settings (PEFT's EvaConfig, same defaults). */
export interface EvaOptions {
  /** A module's rank is at most round(rho·r); rho = 1 keeps every module at r. */
  rho: number;
  /** Components count as converged once their cosine similarity between consecutive batches is ≥ tau. */
  tau: number;
  /** Divide each component by the square root of its singular value. */
  whiten: boolean;
  /** Use only the positions whose token is a training target (PEFT: labels ≠ −100). */
  useLabelMask: boolean;
  /** Keep each module's scaling alpha/r when its rank changes: alpha_m = alpha·r_m/r (alpha_pattern). */
  adjustScalingFactors: boolean;
}

/**
 * What a data-driven initialisation computed before the parameters are made (src/adapters/lora/eva,
 * src/adapters/lora/corda): never saved, only read by createLoraParams.
 */
export interface LoraDataInit {
  /** EVA: per module, the rows of A [rank, in]. */
  evaA?: Map<string, Float64Array>;
  /** EVA: batches of the sample read, and whether every module's components converged within them. */
  evaBatches?: number;
  evaConverged?: boolean;
  /** CorDA: per module, the input covariance C [in, in] of the data sample. */
  cordaCovariance?: Map<string, Float64Array>;
}

export interface LoraConfig extends TargetConfig {
  /** Rank r of ΔW = B·A. */
  r: number;
  /** Scaling numerator: ΔW is multiplied by alpha/r (alpha/√r with useRslora). */
  alpha: number;
  /** Dropout rate on the adapter's input (training only). */
  dropout: number;
  /** rsLoRA scaling alpha/√r (Kalajdzievski, 2023), stable across ranks. */
  useRslora: boolean;
  /** 'default': A Kaiming-uniform, B zero (ΔW = 0 at start); 'gaussian': A ~ N(0, 1/r²), B zero; 'pissa': principal singular vectors of W (Meng et al., 2024), base weight becomes the residual. */
  init: LoraInit;
  /** DoRA (Liu et al., 2024): a learned magnitude per output row times the direction of W + ΔW. */
  useDora: boolean;
  /** Per-module ranks (PEFT rank_pattern): regex key matched against the end of the module name → r. */
  rankByModule?: Record<string, number>;
  /** Per-module alphas (PEFT alpha_pattern), matched as rankByModule. */
  alphaByModule?: Record<string, number>;
  /** EVA's settings (used with init 'eva'). */
  eva: EvaOptions;
  /** CorDA (init 'corda'): 'ipm' (instruction-previewed: the top r components adapt) or 'kpm' (knowledge-preserved: the bottom r adapt). */
  cordaMode: 'ipm' | 'kpm';
  /** Computed by the data-driven inits from a data sample (not an option). */
  dataInit?: LoraDataInit;
}

export const LORA_OPTIONS: Readonly<Record<string, string>> = {
  r: 'rank of the update ΔW = B·A (default 8)',
  alpha: 'scaling numerator: ΔW · alpha/r (default 8, as PEFT)',
  dropout: 'dropout rate on the adapter input while training (default 0)',
  targetModules: "modules to adapt: names or suffixes (q_proj,v_proj), or 're:<regex>' over full names (default q_proj,v_proj)",
  layersToTransform: 'only these layer indices, comma-separated (default: all)',
  useRslora: 'rsLoRA scaling alpha/√r (default false)',
  init: 'default (A Kaiming-uniform, B zero) | gaussian | pissa | eva (A from the principal components of each module\'s inputs on a data sample, ranks redistributed) | corda (context-oriented SVD of W·C, C the inputs\' covariance on a data sample; base becomes the residual)',
  evaRho: "EVA: a module's rank is at most round(rho·r) (default 2, as PEFT)",
  evaTau: 'EVA: components converge once consecutive batches agree to cosine ≥ tau (default 0.99)',
  evaWhiten: 'EVA: divide each component by the square root of its singular value (default false)',
  evaUseLabelMask: "EVA: use only positions whose token is a training target (default true, as PEFT's labels ≠ -100)",
  evaAdjustScalingFactors: "EVA: keep alpha/r per module when its rank changes, alpha_m = alpha·r_m/r (default true)",
  cordaMode: 'CorDA: ipm (instruction-previewed, the adapter takes the top r components of W·C) | kpm (knowledge-preserved, the bottom r) (default ipm)',
  useDora: 'DoRA: learned per-row magnitude times the normalised direction (default false)',
  excludeModules: "modules never adapted even when targeted: names or suffixes, or 're:<regex>' (default none)",
  rankByModule: 'per-module ranks, {"<regex matching the end of a module name>": r} (PEFT rank_pattern; default none)',
  alphaByModule: 'per-module alphas, {"<regex>": alpha} (PEFT alpha_pattern; default none)',
};

function pattern(m: string, raw: Readonly<Record<string, unknown>>, key: string, check: (v: number) => boolean, rule: string): Record<string, number> | undefined {
  let v = raw[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') {
    try { v = JSON.parse(v); } catch { throw new Error(`${m}: option '${key}' must be a JSON object (got ${JSON.stringify(v)})`); }
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.values(v).every((x) => typeof x === 'number' && check(x))) {
    throw new Error(`${m}: option '${key}' must map module patterns to ${rule} (got ${JSON.stringify(v)})`);
  }
  for (const k of Object.keys(v)) {
    try { new RegExp(k); } catch (e) { throw new Error(`${m}: option '${key}': ${JSON.stringify(k)} is not a valid regex (${(e as Error).message})`); }
  }
  return Object.keys(v).length ? v as Record<string, number> : undefined;
}

/** PEFT's get_pattern_key: the first pattern key that, as a regex, matches the end of the module name after a dot. */
function patternValue(p: Record<string, number> | undefined, module: string): number | undefined {
  if (!p) return undefined;
  for (const [k, v] of Object.entries(p)) if (new RegExp(`^(?:.*\\.)?(?:${k})$`).test(module)) return v;
  return undefined;
}

/** The rank and alpha of one module, after rankByModule and alphaByModule. */
export function loraModuleConfig(c: LoraConfig, module: string): { r: number; alpha: number; useRslora: boolean } {
  return { r: patternValue(c.rankByModule, module) ?? c.r, alpha: patternValue(c.alphaByModule, module) ?? c.alpha, useRslora: c.useRslora };
}

export function parseLoraConfig(raw: Readonly<Record<string, unknown>>): LoraConfig {
  const m = 'lora';
  checkKeys(m, raw, Object.keys(LORA_OPTIONS));
  const lt = layers(m, raw);
  const rp = pattern(m, raw, 'rankByModule', (v) => Number.isInteger(v) && v >= 1, 'integer ranks ≥ 1');
  const ap = pattern(m, raw, 'alphaByModule', (v) => v > 0, 'positive alphas');
  return {
    r: num(m, raw, 'r', 8, (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1'),
    alpha: num(m, raw, 'alpha', 8, (v) => v > 0, 'a positive number'),
    dropout: num(m, raw, 'dropout', 0, (v) => v >= 0 && v < 1, 'in [0, 1)'),
    targetModules: targets(m, raw, ['q_proj', 'v_proj']),
    ...(lt ? { layersToTransform: lt } : {}),
    useRslora: bool(m, raw, 'useRslora', false),
    init: oneOf(m, raw, 'init', 'default', ['default', 'gaussian', 'pissa', 'eva', 'corda'] as const),
    useDora: bool(m, raw, 'useDora', false),
    ...excludes(m, raw),
    ...(rp ? { rankByModule: rp } : {}),
    ...(ap ? { alphaByModule: ap } : {}),
    eva: {
      rho: num(m, raw, 'evaRho', 2, (v) => v >= 1, 'a number ≥ 1'),
      tau: num(m, raw, 'evaTau', 0.99, (v) => v > 0 && v <= 1, 'in (0, 1]'),
      whiten: bool(m, raw, 'evaWhiten', false),
      useLabelMask: bool(m, raw, 'evaUseLabelMask', true),
      adjustScalingFactors: bool(m, raw, 'evaAdjustScalingFactors', true),
    },
    cordaMode: oneOf(m, raw, 'cordaMode', 'ipm', ['ipm', 'kpm'] as const),
  };
}

export function loraScaling(c: Pick<LoraConfig, 'alpha' | 'r' | 'useRslora'>): number {
  return c.useRslora ? c.alpha / Math.sqrt(c.r) : c.alpha / c.r;
}

export function toPeftLoraConfig(c: LoraConfig, _model: unknown, modules?: readonly ModuleInfo[]): Record<string, unknown> {
  return {
    peft_type: 'LORA', task_type: 'CAUSAL_LM', r: c.r, lora_alpha: c.alpha, lora_dropout: c.dropout,
    ...peftTargets(c, modules), use_rslora: c.useRslora,
    use_dora: c.useDora, init_lora_weights: c.init === 'default' ? true : c.init, bias: 'none', fan_in_fan_out: false,
    inference_mode: true, modules_to_save: null, rank_pattern: c.rankByModule ?? {}, alpha_pattern: c.alphaByModule ?? {},
    ...(c.init === 'eva' ? { eva_config: { rho: c.eva.rho, tau: c.eva.tau, use_label_mask: c.eva.useLabelMask, label_mask_value: -100, whiten: c.eva.whiten, adjust_scaling_factors: c.eva.adjustScalingFactors } } : {}),
    ...(c.init === 'corda' ? { corda_config: { corda_method: c.cordaMode } } : {}),
  };
}

/**
 * Inits after which the adapter applies to a base PEFT rewrote (W − ΔW₀): PiSSA (and its fast SVD
 * `pissa_niter_N`), OLoRA, CorDA, LoRA-GA; LoftQ quantises the base. PEFT converts such an adapter into a plain
 * LoRA of twice the rank on the original base when saving with `path_initial_model_for_weight_conversion`.
 */
const BASE_CHANGING = /^(pissa(_niter_\d+)?|olora|corda|lora_ga|loftq)$/;

/** LoraConfig fields of PEFT that change what the adapter computes, which this library does not implement. */
const UNSUPPORTED = ['target_parameters', 'layer_replication', 'use_qalora', 'alora_invocation_tokens', 'use_bdlora', 'arrow_config', 'kasa_config', 'velora_config', 'monteclora_config', 'megatron_config'];

export function checkPeftLoraImport(j: Readonly<Record<string, unknown>>): void {
  for (const k of UNSUPPORTED) {
    const v = j[k];
    if (v !== undefined && v !== null && v !== false) throw new Error(`adapter_config.json: ${k} ${JSON.stringify(v)} is not supported`);
  }
  const init = j.init_lora_weights;
  if (typeof init === 'string' && BASE_CHANGING.test(init)) {
    throw new Error(`adapter_config.json: init_lora_weights "${init}" makes the adapter apply to base weights that PEFT rewrote at initialisation, not to this base model. `
      + 'Convert it to a plain LoRA in PEFT first: model.save_pretrained(out, path_initial_model_for_weight_conversion=<the adapter folder saved before training>) '
      + '(PEFT\'s examples/pissa_finetuning, "Convert PiSSA to LoRA"; the same for OLoRA and CorDA), then load that folder');
  }
}

export function fromPeftLoraConfig(j: Readonly<Record<string, unknown>>): LoraConfig {
  if (j.peft_type !== 'LORA') throw new Error(`adapter_config.json: peft_type is ${JSON.stringify(j.peft_type)}, expected "LORA"`);
  if (j.bias !== undefined && j.bias !== 'none') throw new Error(`adapter_config.json: bias "${String(j.bias)}" is not supported (only "none")`);
  if (j.fan_in_fan_out === true) throw new Error('adapter_config.json: fan_in_fan_out is not supported (Llama layers are not Conv1D)');
  if (j.lora_bias === true) throw new Error('adapter_config.json: lora_bias is not supported');
  const init = j.init_lora_weights;
  // A CorDA adapter trains on a residual base computed from a data sample that is not saved.
  if (init === 'corda') throw new Error('adapter_config.json: init_lora_weights "corda": the residual base comes from a data sample that is not saved, so this state cannot be restored; save the converted plain LoRA instead');
  return parseLoraConfig({
    r: j.r ?? 8, alpha: j.lora_alpha ?? 8, dropout: j.lora_dropout ?? 0,
    ...fromPeftTargets(j, ['q_proj', 'v_proj']),
    useRslora: j.use_rslora ?? false, useDora: j.use_dora ?? false,
    // PiSSA comes back only from this library's own training states (loadPeft refuses it through
    // checkPeftLoraImport); the other inits only set the starting A and B, which the saved tensors replace.
    init: init === 'gaussian' || init === 'pissa' ? init : 'default',
    rankByModule: j.rank_pattern ?? undefined, alphaByModule: j.alpha_pattern ?? undefined,
  });
}
