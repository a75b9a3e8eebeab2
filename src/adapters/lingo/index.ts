/**
 * Lingo (Zhan et al., "Lingo: Language prefix fIne-tuning for GenOmes"): AdaLoRA with adaptive rank
 * sampling. At every budget allocation each pruned triplet comes back with probability p, its singular
 * value restarting from zero, and each kept one is dropped with probability p (p = 0.1, the value in the
 * authors' AdaLoRA+RS code); p = 0 is AdaLoRA exactly. Saved as an AdaLoRA folder (PEFT loads it unchanged).
 * The method's other part, a natural-language prefix before non-natural-language sequences, is the data
 * option `--text-prefix`.
 */
import { adalora } from '../adalora/index.js';
import { type AdaloraConfig, ADALORA_OPTIONS, parseAdaloraConfig } from '../adalora/config.js';
import type { AdapterMethod } from '../types.js';

export const LINGO_RANK_SAMPLING = 0.1;

export const lingo: AdapterMethod<AdaloraConfig> = {
  ...adalora,
  name: 'lingo',
  options: { ...ADALORA_OPTIONS, rankSampling: `probability that an allocation brings back a pruned triplet, and that it drops a kept one (default ${LINGO_RANK_SAMPLING}; 0 is AdaLoRA)` },
  parseConfig: (raw) => parseAdaloraConfig({ rankSampling: LINGO_RANK_SAMPLING, ...raw }),
  defaultLr: { value: adalora.defaultLr.value, source: `AdaLoRA's (3e-2; see src/adapters/adalora/README.md): Lingo trains AdaLoRA's parameters with only the allocation changed, and its paper gives no other rate for causal language models` },
};
