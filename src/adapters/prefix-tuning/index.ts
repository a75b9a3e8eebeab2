/** Prefix tuning / P-tuning v2: learned key/value prefixes in every attention layer, optionally reparameterised. */
import { permuteQKHalfToPairs, permuteQKPairsToHalf } from '../../formats/checkpoint.js';
import type { AdapterMethod, ParamStore } from '../types.js';
import { type PrefixTuningConfig, PREFIX_TUNING_OPTIONS, fromPeftPrefixTuningConfig, parsePrefixTuningConfig, toPeftPrefixTuningConfig } from './config.js';
import { PREFIX_KEY, createPrefixParams, encoderKeys, kvDim, prefixKeysValues, projectPrefix } from './layer.js';

export const prefixTuning: AdapterMethod<PrefixTuningConfig> = {
  name: 'prefix-tuning',
  peftType: 'PREFIX_TUNING',
  options: PREFIX_TUNING_OPTIONS,
  defaultLr: { value: 3e-2, source: "PEFT's causal-LM prefix tuning example (examples/causal_language_modeling/peft_prefix_tuning_clm.ipynb: lr = 3e-2)" },
  parseConfig: parsePrefixTuningConfig,
  selectModules: () => [],
  createParams: createPrefixParams,
  attentionPrefix: prefixKeysValues,
  prefixTokens: (c) => c.numVirtualTokens,
  // PEFT saves the prefix itself (inference mode), so a reparameterised one is saved as its MLP's output.
  exportParams: ({ params, config }) => (config.projection
    ? { params: new Map([[PREFIX_KEY, { shape: [config.numVirtualTokens, params.get(encoderKeys.w2)!.shape[0]!], data: projectPrefix(params, config.numVirtualTokens) }]]), config: { ...config, projection: false } }
    : { params, config }),
  // Prefix keys are cached keys: in a GGUF (adjacent-pairs) model each head's key dimensions are in pair
  // order, in Hugging Face's in rotate-half order; values are not permuted.
  reorient(params, { model, toHf }) {
    const out: ParamStore = new Map(params);
    const t = params.get(PREFIX_KEY);
    if (!t) return out;
    const d = kvDim(model), hd = model.headDim ?? model.dim / model.nHeads, P = t.data.length / (model.nLayers * 2 * d);
    const data = Float32Array.from(t.data), f = toHf ? permuteQKPairsToHalf : permuteQKHalfToPairs;
    for (let p = 0; p < P; p++) for (let l = 0; l < model.nLayers; l++) {
      const at = (p * model.nLayers * 2 + 2 * l) * d;
      data.set(f(data.subarray(at, at + d), model.nKvHeads, hd, 1), at);
    }
    out.set(PREFIX_KEY, { shape: [P, model.nLayers * 2 * d], data });
    return out;
  },
  fileKeyPrefix: '',
  toPeftConfig: toPeftPrefixTuningConfig,
  fromPeftConfig: fromPeftPrefixTuningConfig,
};
export type { PrefixTuningConfig } from './config.js';
export { tanh } from './layer.js';
