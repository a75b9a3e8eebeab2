/** Adapter methods by name: adding a method means adding its folder and one line here. */
import { adalora } from './adalora/index.js';
import { bottleneck } from './bottleneck/index.js';
import { compacter } from './compacter/index.js';
import { cpt } from './cpt/index.js';
import { ept } from './ept/index.js';
import { hydra } from './hydra/index.js';
import { idpt } from './idpt/index.js';
import { ia3 } from './ia3/index.js';
import { lamda } from './lamda/index.js';
import { lingo } from './lingo/index.js';
import { lora } from './lora/index.js';
import { phatgoose } from './phatgoose/index.js';
import { poly } from './poly/index.js';
import { prefixTuning } from './prefix-tuning/index.js';
import { promptTuning } from './prompt-tuning/index.js';
import { ssf } from './ssf/index.js';
import { ssfPool } from './ssf-pool/index.js';
import { triAdaptLora } from './triadaptlora/index.js';
import type { AdapterMethod, TargetConfig } from './types.js';

const methods = new Map<string, AdapterMethod<TargetConfig>>(
  [lora, ia3, ssf, adalora, hydra, lamda, triAdaptLora, bottleneck, compacter, promptTuning, prefixTuning, lingo, poly, cpt, ept, idpt, phatgoose, ssfPool].map((m) => [m.name, m as unknown as AdapterMethod<TargetConfig>]),
);

/** Short names accepted on the command line. */
const aliases: Readonly<Record<string, string>> = { prompt: 'prompt-tuning', prefix: 'prefix-tuning', 'p-tuning-v2': 'prefix-tuning', mhr: 'poly', fedins: 'ssf-pool' };

export function getMethod(name: string): AdapterMethod<TargetConfig> {
  const m = methods.get(aliases[name] ?? name);
  if (!m) throw new Error(`unknown adapter method '${name}' (available: ${[...methods.keys()].join(', ')})`);
  return m;
}

export function methodByPeftType(peftType: string): AdapterMethod<TargetConfig> {
  for (const m of methods.values()) if (m.peftType === peftType) return m;
  throw new Error(`adapter_config.json: peft_type ${JSON.stringify(peftType)} is not supported (supported: ${[...methods.values()].map((m) => m.peftType).filter(Boolean).join(', ')})`);
}

export function methodNames(): string[] { return [...methods.keys()]; }
