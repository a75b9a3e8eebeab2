/**
 * Context-aware prompt tuning (CPT): the tokens of a few-shot context become the virtual tokens, their
 * embeddings are refined by gradient steps, and each step is projected so no token drifts more than its
 * bound from the embedding of the token it started as.
 */
import { createTokenizer } from '../../tokenizer/index.js';
import { tensorF32 } from '../../formats/checkpoint.js';
import { PROMPT_KEY, promptEmbeddings } from '../prompt-tuning/layer.js';
import { modelModules } from '../targets.js';
import { type AdapterMethod, restoreArray } from '../types.js';
import { type CptConfig, CPT_OPTIONS, fromPeftCptConfig, parseCptConfig, toPeftCptConfig } from './config.js';
import { projectRows, tokenEpsilons } from './projection.js';

export const cpt: AdapterMethod<CptConfig> = {
  name: 'cpt',
  peftType: 'CPT',
  options: CPT_OPTIONS,
  defaultLr: { value: 3e-2, source: 'prompt tuning\'s (PEFT\'s causal-LM prompt tuning example); the projection bounds how far a step can go' },
  parseConfig: parseCptConfig,
  // A context given as text becomes token ids with the model's tokenizer, so the saved config holds ids as PEFT's does.
  prepare(c, ctx) {
    if (c.contextText === undefined) return c;
    if (!ctx.tokenizer) throw new Error('cpt: contextText needs the model\'s tokenizer (or give cptTokenIds)');
    const ids = createTokenizer(ctx.tokenizer).encode(c.contextText, { bos: false });
    if (ids.length === 0) throw new Error('cpt: contextText encodes to no tokens');
    const { contextText: _text, ...rest } = c;
    return { ...rest, cptTokenIds: ids, cptMask: ids.map(() => 1), cptTokensTypeMask: ids.map(() => 2) };
  },
  selectModules: () => [],
  createParams(ctx) {
    const ids = ctx.config.cptTokenIds, D = ctx.model.dim, V = ctx.model.vocabSize;
    if (ids.length === 0) throw new Error('cpt: the context has no tokens (contextText is resolved when the adapter is added)');
    const bad = ids.find((id) => id >= V);
    if (bad !== undefined) throw new Error(`cpt: context token id ${bad} is outside the model's vocabulary of ${V}`);
    const table = tensorF32(ctx.baseWeight(modelModules(ctx.model).find((m) => m.kind === 'embedding')!.name));
    const data = new Float32Array(ids.length * D);
    ids.forEach((id, i) => data.set(table.subarray(id * D, id * D + D), i * D));
    return new Map([[PROMPT_KEY, { shape: [ids.length, D], data }]]);
  },
  embeddings: (ctx, c, b) => promptEmbeddings(ctx, { numVirtualTokens: c.cptTokenIds.length, promptInit: 'random', targetModules: [] }, b),
  virtualTokens: (c) => c.cptTokenIds.length,
  controller(adapter) {
    const start = adapter.params.get(PROMPT_KEY)!;
    // The ball's centre: the context's embeddings as this run starts (a loaded folder's saved prompt, as in PEFT).
    const anchor = Float32Array.from(start.data);
    const dim = start.shape[1]!, eps = tokenEpsilons(adapter.config, dim);
    return {
      async afterUpdate(_step, t) {
        const v = (await t.values([PROMPT_KEY])).get(PROMPT_KEY)!;
        projectRows(v, anchor, eps, dim);
        t.write(PROMPT_KEY, v);
      },
      exportState: () => new Map([['anchor', Float64Array.from(anchor)]]),
      importState(state) { restoreArray(state, 'anchor', anchor, 'cpt'); },
    };
  },
  fileKeyPrefix: '',
  toPeftConfig: toPeftCptConfig,
  fromPeftConfig: fromPeftCptConfig,
};
export type { CptConfig } from './config.js';
