/**
 * PHATGOOSE's configuration: the inventory of LoRA experts (name, rank and scaling of each, all on the same
 * modules), how many route per token, and whether this adapter is training one expert's gate or routing.
 * PEFT has no PHATGOOSE: adapter_config.json uses this library's `peft_type: "PHATGOOSE"`.
 */
import { checkKeys, num, oneOf } from '../config-utils.js';
import type { TargetConfig } from '../types.js';

export interface PhatgooseExpert {
  readonly name: string;
  readonly r: number;
  /** The expert's LoRA scaling (alpha/r, or alpha/√r with rsLoRA). */
  readonly scaling: number;
}

export type PhatgooseMode = 'gate' | 'route';

export interface PhatgooseConfig extends TargetConfig {
  experts: PhatgooseExpert[];
  /** 'gate': one expert, its output scaled by σ(v·x), only v trains; 'route': every expert, top-k routing per token. */
  mode: PhatgooseMode;
  /** Experts each token uses at each module. */
  topK: number;
  /** Softmax temperature over the chosen experts' cosine scores; 0: 1/√in per module, the reference's. */
  temperature: number;
  /** The adapted modules, by full name (every expert adapts exactly these). */
  targetModules: string[];
}

export const PHATGOOSE_OPTIONS: Readonly<Record<string, string>> = {
  experts: "the inventory: a folder of PEFT LoRA folders, one per expert, all on the same base and modules (required; --experts DIR); an expert folder holding gate-data.jsonl or gate-data.txt trains its gate on that file (its own data, as in the paper), the others on --data",
  topK: 'experts each token is routed to at each module (default 2)',
  temperature: "softmax temperature τ over the chosen experts' cosine scores (default 0: τ = 1/√in at each module, i.e. the reference's softmax of the standardised dot product over √in)",
  gateSteps: 'steps of gate training per expert, the expert frozen (default 100; --steps does not apply)',
};

const M = 'phatgoose';

export function parsePhatgooseConfig(raw: Readonly<Record<string, unknown>>): PhatgooseConfig {
  checkKeys(M, raw, ['experts', 'mode', 'topK', 'temperature', 'targetModules']);
  const experts = raw.experts;
  if (!Array.isArray(experts) || experts.length === 0) throw new Error(`${M}: the inventory of experts is empty`);
  const names = new Set<string>();
  for (const e of experts as PhatgooseExpert[]) {
    if (typeof e?.name !== 'string' || !e.name || !/^[A-Za-z0-9_-]+$/.test(e.name)) throw new Error(`${M}: expert name ${JSON.stringify(e?.name)} must be letters, digits, _ or -`);
    if (names.has(e.name)) throw new Error(`${M}: two experts are named '${e.name}'`);
    names.add(e.name);
    if (!(Number.isInteger(e.r) && e.r >= 1) || !Number.isFinite(e.scaling)) throw new Error(`${M}: expert '${e.name}' needs an integer rank ≥ 1 and a finite scaling`);
  }
  const mode = oneOf(M, raw, 'mode', 'route', ['gate', 'route'] as const);
  if (mode === 'gate' && experts.length !== 1) throw new Error(`${M}: gate training takes one expert at a time (got ${experts.length})`);
  const topK = num(M, raw, 'topK', 2, (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1');
  if (mode === 'route' && topK > experts.length) throw new Error(`${M}: topK ${topK} exceeds the ${experts.length} experts of the inventory`);
  const targets = raw.targetModules;
  if (!Array.isArray(targets) || targets.length === 0 || !targets.every((t) => typeof t === 'string')) throw new Error(`${M}: targetModules must list the experts' modules by full name`);
  return {
    experts: (experts as PhatgooseExpert[]).map((e) => ({ name: e.name, r: e.r, scaling: e.scaling })), mode, topK,
    temperature: num(M, raw, 'temperature', 0, (v) => v >= 0 && Number.isFinite(v), 'a number ≥ 0 (0: 1/√in)'),
    targetModules: [...targets as string[]],
  };
}

export function toPeftPhatgooseConfig(c: PhatgooseConfig): Record<string, unknown> {
  return {
    peft_type: 'PHATGOOSE', task_type: 'CAUSAL_LM', experts: c.experts, mode: c.mode, top_k: c.topK, temperature: c.temperature,
    target_modules: c.targetModules, inference_mode: true,
  };
}

export function fromPeftPhatgooseConfig(j: Readonly<Record<string, unknown>>): PhatgooseConfig {
  if (j.peft_type !== 'PHATGOOSE') throw new Error(`adapter_config.json: peft_type is ${JSON.stringify(j.peft_type)}, expected "PHATGOOSE"`);
  return parsePhatgooseConfig({ experts: j.experts, mode: j.mode, topK: j.top_k, temperature: j.temperature, targetModules: j.target_modules });
}
