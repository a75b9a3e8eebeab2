/**
 * Hugging Face PEFT (0.20) as the tests need it, re-implemented from its source: the adapter_config.json a
 * `save_pretrained` writes (every field of the config dataclass, keys sorted), its config validation
 * (`__post_init__` rules, cited per rule), and its module matching. Nothing here imports the library under test.
 */
import { writeSafetensors } from '../../src/formats/safetensors.js';

/** Fields of each config class (peft/config.py PeftConfig, tuners/<method>/config.py). A key outside them is
 *  a TypeError in PEFT < 0.15 and dropped with a warning in 0.20 (config.py from_peft_type): a misread. */
const BASE = ['task_type', 'peft_type', 'auto_mapping', 'peft_version', 'base_model_name_or_path', 'revision', 'inference_mode'];
const LORA = [...BASE, 'r', 'target_modules', 'exclude_modules', 'lora_alpha', 'lora_dropout', 'fan_in_fan_out', 'bias', 'use_rslora',
  'modules_to_save', 'init_lora_weights', 'layers_to_transform', 'layers_pattern', 'rank_pattern', 'alpha_pattern', 'megatron_config',
  'megatron_core', 'trainable_token_indices', 'loftq_config', 'eva_config', 'corda_config', 'lora_ga_config', 'use_dora', 'velora_config',
  'alora_invocation_tokens', 'use_qalora', 'qalora_group_size', 'monteclora_config', 'layer_replication', 'lora_bias',
  'target_parameters', 'use_bdlora', 'arrow_config', 'kasa_config', 'ensure_weight_tying'];
const FIELDS: Record<string, string[]> = {
  LORA,
  ADALORA: [...LORA, 'target_r', 'init_r', 'tinit', 'tfinal', 'deltaT', 'beta1', 'beta2', 'orth_reg_weight', 'total_step'],
  IA3: [...BASE, 'target_modules', 'exclude_modules', 'feedforward_modules', 'fan_in_fan_out', 'modules_to_save', 'init_ia3_weights'],
  PROMPT_TUNING: [...BASE, 'num_virtual_tokens', 'token_dim', 'num_transformer_submodules', 'num_attention_heads', 'num_layers',
    'modules_to_save', 'prompt_tuning_init', 'prompt_tuning_init_text', 'tokenizer_name_or_path', 'tokenizer_kwargs'],
};

/** What PEFT would raise (or silently misread) loading this adapter_config.json; empty when it loads as written. */
export function peftConfigErrors(j: Record<string, unknown>): string[] {
  const errors: string[] = [];
  const type = String(j.peft_type);
  const fields = FIELDS[type];
  if (!fields) return [`peft_type ${type} not covered`];
  for (const k of Object.keys(j)) if (!fields.includes(k)) errors.push(`unexpected keyword argument '${k}' for ${type}`);
  const given = (v: unknown) => v !== undefined && v !== null;
  // base_model_name_or_path goes to AutoModel.from_pretrained: a Hub id, or a folder that only exists here.
  const bm = j.base_model_name_or_path;
  if (given(bm) && (typeof bm !== 'string' || !/^[\w.-]+\/[\w.-]+$/.test(bm))) errors.push(`base_model_name_or_path ${JSON.stringify(bm)} is not a Hub model id`);
  if (type === 'LORA' || type === 'ADALORA') {
    // lora/config.py and adalora/config.py __post_init__:
    // "`layers_to_transform` cannot be used when `target_modules` is a str."
    if (typeof j.target_modules === 'string' && given(j.layers_to_transform)) errors.push('layers_to_transform with a str target_modules');
    // "`layers_pattern` cannot be used when `target_modules` is a str." (LoRA)
    if (typeof j.target_modules === 'string' && given(j.layers_pattern)) errors.push('layers_pattern with a str target_modules');
    // "When `layers_pattern` is specified, `layers_to_transform` must also be specified."
    if (j.layers_pattern && !given(j.layers_to_transform)) errors.push('layers_pattern without layers_to_transform');
    // "lora_bias=True is only supported with init_lora_weights=True or False"
    if (j.lora_bias === true && j.init_lora_weights !== true && j.init_lora_weights !== false) errors.push('lora_bias with a special init');
  }
  if (type === 'ADALORA') {
    // adalora/config.py __post_init__: "AdaLoRA does not support DoRA."
    if (j.use_dora) errors.push('ADALORA does not support DoRA');
    // "Note that `r` is not used in AdaLora and will be ignored." (a warning unless r is LoraConfig's default 8)
    if (j.r !== undefined && j.r !== 8) errors.push('r is not used in AdaLora (warning: use init_r)');
    // "AdaLoRA does not work when `total_step` is None, supply a value > 0."
    const total = j.total_step as number | null | undefined;
    if (total === null || total === undefined || total <= 0) errors.push('total_step is None or ≤ 0');
    // "`orth_reg_weight` should be greater than or equal to 0"
    if ((j.orth_reg_weight as number) < 0) errors.push('orth_reg_weight < 0');
    // "The supplied schedule values don't allow for a budgeting phase."
    if (typeof total === 'number' && ((j.tinit as number) ?? 0) >= total - ((j.tfinal as number) ?? 0)) errors.push('tinit >= total_step - tfinal');
  }
  if (type === 'IA3') {
    // ia3/config.py __post_init__: "`feedforward_modules` should be a subset of `target_modules`" (both lists).
    const t = j.target_modules, ff = j.feedforward_modules;
    if (Array.isArray(t) && Array.isArray(ff) && !ff.every((f) => t.includes(f))) errors.push('feedforward_modules not a subset of target_modules');
  }
  if (type === 'PROMPT_TUNING') {
    // prompt_tuning/config.py __post_init__: "When prompt_tuning_init='TEXT', tokenizer_name_or_path can't be None."
    if (j.prompt_tuning_init === 'TEXT' && !j.tokenizer_name_or_path) errors.push('TEXT init without tokenizer_name_or_path');
    // "When prompt_tuning_init='TEXT', prompt_tuning_init_text can't be None."
    if (j.prompt_tuning_init === 'TEXT' && !given(j.prompt_tuning_init_text)) errors.push('TEXT init without prompt_tuning_init_text');
    // "tokenizer_kwargs only valid when using prompt_tuning_init='TEXT'."
    if (j.tokenizer_kwargs && j.prompt_tuning_init !== 'TEXT') errors.push('tokenizer_kwargs without a TEXT init');
  }
  return errors;
}

/** LoraConfig().to_dict() of PEFT 0.20 with `over` applied: what save_pretrained writes (runtime_config is dropped). */
export function peftLoraConfig(over: Record<string, unknown>): Record<string, unknown> {
  return {
    alora_invocation_tokens: null, alpha_pattern: {}, arrow_config: null, auto_mapping: null, base_model_name_or_path: 'owner/stories260K',
    bias: 'none', corda_config: null, ensure_weight_tying: false, eva_config: null, exclude_modules: null, fan_in_fan_out: false,
    inference_mode: true, init_lora_weights: true, kasa_config: null, layer_replication: null, layers_pattern: null, layers_to_transform: null,
    loftq_config: {}, lora_alpha: 8, lora_bias: false, lora_dropout: 0.0, lora_ga_config: null, megatron_config: null, megatron_core: 'megatron.core',
    modules_to_save: null, monteclora_config: null, peft_type: 'LORA', peft_version: '0.20.0', qalora_group_size: 16, r: 8, rank_pattern: {},
    revision: null, target_modules: ['q_proj', 'v_proj'], target_parameters: null, task_type: 'CAUSAL_LM', trainable_token_indices: null,
    use_bdlora: null, use_dora: false, use_qalora: false, use_rslora: false, velora_config: null, ...over,
  };
}

/** A folder's two files as save_pretrained writes them: json.dumps(indent=2, sort_keys=True), safetensors with {"format": "pt"}. */
export function peftFiles(config: Record<string, unknown>, tensors: Record<string, { shape: number[]; data: Float32Array }>): { config: string; weights: Uint8Array } {
  const sorted = Object.fromEntries(Object.keys(config).sort().map((k) => [k, config[k]]));
  return {
    config: JSON.stringify(sorted, null, 2),
    weights: writeSafetensors(Object.entries(tensors), { metadata: { format: 'pt' }, name: 'adapter_model.safetensors' }),
  };
}

/** tuners_utils.check_target_module_exists for a list target_modules (exclusions and layer indices included). */
export function peftTargets(j: Record<string, unknown>, names: readonly string[]): string[] {
  const t = j.target_modules as string[] | string, ex = j.exclude_modules as string[] | string | null | undefined;
  const lt = j.layers_to_transform as number[] | number | null | undefined;
  return names.filter((key) => {
    if (ex && (typeof ex === 'string' ? new RegExp(`^(?:${ex})$`).test(key) : ex.includes(key) || ex.some((e) => key.endsWith(`.${e}`)))) return false;
    if (typeof t === 'string') return new RegExp(`^(?:${t})$`).test(key);
    if (t.includes(key)) return true;
    if (!t.some((k) => key.endsWith(`.${k}`))) return false;
    if (lt === null || lt === undefined) return true;
    const m = /.*?\.[^.]*\.(\d+)\./.exec(key);
    return !!m && (typeof lt === 'number' ? Number(m[1]) === lt : lt.includes(Number(m[1])));
  });
}
