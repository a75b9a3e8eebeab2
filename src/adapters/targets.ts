/** Which modules an adapter applies to, with Hugging Face PEFT's matching rules. */
import type { LlamaConfig } from '../formats/checkpoint.js';
import { LLAMA_PROJECTIONS, headDim } from '../model/llama.js';
import type { ModuleInfo, TargetConfig } from './types.js';
import { familyOf } from '../model/families.js';

/** Every adaptable module of a model of any family, in graph order. */
export function modelModules(c: LlamaConfig): ModuleInfo[] {
  return familyOf(c).modules(c);
}

/** Every adaptable module of a Llama model, in graph order. */
export function llamaModules(c: LlamaConfig): ModuleInfo[] {
  const kv = c.nKvHeads * headDim(c), q = c.nHeads * headDim(c);
  const shapes: Record<(typeof LLAMA_PROJECTIONS)[number], [string, number, number]> = {
    q_proj: ['self_attn', c.dim, q], k_proj: ['self_attn', c.dim, kv], v_proj: ['self_attn', c.dim, kv],
    o_proj: ['self_attn', q, c.dim], gate_proj: ['mlp', c.dim, c.hiddenDim], up_proj: ['mlp', c.dim, c.hiddenDim],
    down_proj: ['mlp', c.hiddenDim, c.dim],
  };
  const out: ModuleInfo[] = [{ name: 'model.embed_tokens', kind: 'embedding', inFeatures: c.vocabSize, outFeatures: c.dim }];
  for (let l = 0; l < c.nLayers; l++) {
    for (const p of LLAMA_PROJECTIONS) {
      const [block, inF, outF] = shapes[p];
      out.push({ name: `model.layers.${l}.${block}.${p}`, kind: 'linear', inFeatures: inF, outFeatures: outF, layer: l });
    }
  }
  if (!c.tiedEmbeddings) out.push({ name: 'lm_head', kind: 'linear', inFeatures: c.dim, outFeatures: c.vocabSize });
  return out;
}

/** A regex that must match a whole module name; an invalid one is an error naming the option. */
function wholeName(pattern: string, option: string): RegExp {
  try { return new RegExp(`^(?:${pattern})$`); } catch (e) { throw new Error(`${option} ${JSON.stringify(pattern)} is not a valid regex (${(e as Error).message})`); }
}

/** PEFT's list rule: a module whose full name equals an entry or ends with `.entry`. */
const listed = (list: readonly string[], name: string): boolean => list.some((s) => name === s || name.endsWith(`.${s}`));

/**
 * PEFT's rules (tuners_utils.check_target_module_exists): a module matched by `excludeModules` (a list, or a
 * regex that must match the whole name) is never adapted; a single target string is a regex over the whole
 * name; a list entry equal to the full name selects that module, a suffix entry selects it only in
 * `layersToTransform` when given. Unlike PEFT, a regex here also honours `layersToTransform` (PEFT refuses
 * the pair; saving writes the selected names instead).
 */
export function selectTargets(cfg: TargetConfig, modules: readonly ModuleInfo[]): ModuleInfo[] {
  const t = cfg.targetModules, ex = cfg.excludeModules;
  const inLayers = (m: ModuleInfo) => !cfg.layersToTransform || (m.layer !== undefined && cfg.layersToTransform.includes(m.layer));
  const matches = typeof t === 'string'
    ? (() => { const re = wholeName(t, 'target modules'); return (m: ModuleInfo) => re.test(m.name) && inLayers(m); })()
    : (m: ModuleInfo) => t.includes(m.name) || (listed(t, m.name) && inLayers(m));
  const excluded = typeof ex === 'string'
    ? (() => { const re = wholeName(ex, 'excluded modules'); return (m: ModuleInfo) => re.test(m.name); })()
    : (m: ModuleInfo) => !!ex && listed(ex, m.name);
  const picked = modules.filter((m) => !excluded(m) && matches(m));
  if (picked.length === 0) {
    const names = [...new Set(modules.map((m) => m.name.split('.').pop()))].join(', ');
    throw new Error(`target modules ${JSON.stringify(t)}${ex ? ` minus excluded ${JSON.stringify(ex)}` : ''} match no module of this model (module names end in: ${names})`);
  }
  return picked;
}

/** A block's output projection: Llama's and Phi-3's `self_attn.o_proj` and `mlp.down_proj`, GPT-2's `attn.c_proj` and `mlp.c_proj`. */
const BLOCK_OUTPUT = /^(.*\.(?:self_attn|attn|mlp))\.(?:o_proj|down_proj|c_proj)$/;

/**
 * The attention and MLP blocks of each layer as `sublayer` modules (`model.layers.N.self_attn`,
 * `model.layers.N.mlp`; GPT-2's `transformer.h.N.attn`, `transformer.h.N.mlp`; in = out = the model width), for
 * adapters on a block's output (bottleneck adapters): the parent of each block's output projection.
 */
export function sublayerModules(modules: readonly ModuleInfo[]): ModuleInfo[] {
  const out: ModuleInfo[] = [];
  for (const m of modules) {
    const block = m.layer === undefined ? undefined : BLOCK_OUTPUT.exec(m.name)?.[1];
    if (block) out.push({ name: block, kind: 'sublayer', inFeatures: m.outFeatures, outFeatures: m.outFeatures, layer: m.layer! });
  }
  return out;
}
