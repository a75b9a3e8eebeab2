/**
 * What a trained Poly adapter is used for after multi-task training (Caccia et al. 2023, §4):
 * - MHR-z: fine-tune only the routing on a new task, the skills frozen (`reusePoly` with polyMode 'z' and
 *   router rows added for the new tasks);
 * - MHR-μ: drop the router and use the average of the skills, a plain LoRA (`attachPolyAsLora` without a
 *   task), which can be saved as a PEFT LoRA folder, merged, or fine-tuned further as LoRA. With a task, the
 *   LoRA is that task's routed adapter at eval (its weights σ(Z[t]) normalised per split), exactly.
 */
import { seededRandom } from '../../util/random.js';
import type { Adapter, AdaptedModel } from '../adapted-model.js';
import { lora } from '../lora/index.js';
import { selectTargets } from '../targets.js';
import type { ParamStore } from '../types.js';
import { type PolyConfig, POLY_MODES, type PolyMode } from './config.js';
import { mixedFactors, polyKeys, polyWeights } from './layer.js';

function polyAdapter(a: Adapter): PolyConfig {
  if (a.method.name !== 'poly') throw new Error(`adapter '${a.name}' is ${a.method.name}, not poly`);
  return a.config as PolyConfig;
}

/**
 * Replace Poly adapter `name` of `model` by the same skills and routing with another mode (MHR-z trains the
 * routing only) and, with `polyTasks` above its own, router rows for the new tasks (U(−1e-3, 1e-3) from
 * `seed`, as a fresh router). Returns the new adapter.
 */
export function reusePoly(model: AdaptedModel, name: string, o: { polyMode?: PolyMode; polyTasks?: number; seed?: number } = {}): Adapter {
  const a = model.get(name), c = polyAdapter(a);
  const mode = o.polyMode ?? c.polyMode, tasks = o.polyTasks ?? c.polyTasks;
  if (!POLY_MODES.includes(mode)) throw new Error(`poly: mode must be one of ${POLY_MODES.join(', ')} (got ${JSON.stringify(mode)})`);
  if (!(Number.isSafeInteger(tasks) && tasks >= c.polyTasks)) throw new Error(`poly: the adapter has ${c.polyTasks} tasks; polyTasks must be an integer ≥ ${c.polyTasks} (got ${tasks})`);
  const width = c.polySplits * c.polySkills, random = seededRandom(o.seed ?? 0);
  const params: ParamStore = new Map();
  for (const [k, t] of a.params) {
    if (!k.endsWith('.poly_router.module_logits') || tasks === c.polyTasks) { params.set(k, { shape: [...t.shape], data: Float32Array.from(t.data) }); continue; }
    const Z = new Float32Array(tasks * width);
    Z.set(t.data);
    for (let i = t.data.length; i < Z.length; i++) Z[i] = (random() * 2 - 1) * 1e-3;
    params.set(k, { shape: [tasks, width], data: Z });
  }
  const config: PolyConfig = { ...c, polyMode: mode, polyTasks: tasks };
  const initial: ParamStore = new Map([...params].map(([k, v]) => [k, { shape: v.shape, data: Float32Array.from(v.data) }]));
  model.adapters.delete(name);
  return model.attach({ ...a, config, params, initial, enabled: a.enabled, merged: false });
}

/**
 * Attach to `target` (a model on the same base) a LoRA adapter `name` equal to Poly adapter `source` at
 * eval: A = A_tᵀ [r, in], B = B_tᵀ [out, r], alpha 1 (LoRA's scaling α/r is Poly's 1/r). Without `task`,
 * A_t and B_t average the skills (MHR-μ); with one, they are mixed by that task's routing weights.
 */
export function attachPolyAsLora(target: AdaptedModel, source: Adapter, name: string, o: { task?: number } = {}): Adapter {
  const c = polyAdapter(source);
  if (o.task !== undefined && !(Number.isInteger(o.task) && o.task >= 0 && o.task < c.polyTasks)) throw new RangeError(`poly: task ${o.task} is outside the adapter's ${c.polyTasks} tasks (0 to ${c.polyTasks - 1})`);
  const raw = { r: c.r, alpha: 1, targetModules: c.targetModules, ...(c.layersToTransform ? { layersToTransform: c.layersToTransform } : {}), ...(c.excludeModules ? { excludeModules: c.excludeModules } : {}) };
  // LoRA would also adapt an embedding its targets name (Poly adapts linear modules only): then name the modules.
  const same = (cfg: typeof raw) => {
    const picked = selectTargets(lora.parseConfig(cfg), target.modules).map((m) => m.name);
    return picked.length === source.modules.length && source.modules.every((m, i) => picked[i] === m.name);
  };
  const config = lora.parseConfig(same(raw) ? raw : { r: c.r, alpha: 1, targetModules: source.modules.map((m) => m.name) });
  const params: ParamStore = new Map();
  for (const m of source.modules) {
    if (!source.params.has(polyKeys(m.name).a)) throw new Error(`poly parameters for ${m.name} are missing`);
    const { A, B } = mixedFactors(source.params, m, c, polyWeights(source.params, m, c, o.task));
    const a = new Float32Array(c.r * m.inFeatures), b = new Float32Array(m.outFeatures * c.r);
    for (let i = 0; i < m.inFeatures; i++) for (let j = 0; j < c.r; j++) a[j * m.inFeatures + i] = A[i * c.r + j]!;
    for (let j = 0; j < c.r; j++) for (let d = 0; d < m.outFeatures; d++) b[d * c.r + j] = B[j * m.outFeatures + d]!;
    params.set(`${m.name}.lora_A.weight`, { shape: [c.r, m.inFeatures], data: a });
    params.set(`${m.name}.lora_B.weight`, { shape: [m.outFeatures, c.r], data: b });
  }
  const modules = selectTargets(config, target.modules);
  return target.attach({ name, method: lora as unknown as Adapter['method'], config, modules, params, initial: params, baseOverrides: new Map(), enabled: true, merged: false });
}
