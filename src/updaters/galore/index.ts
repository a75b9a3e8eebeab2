/**
 * GaLore (Gradient Low-Rank Projection): every base weight trains; each 2-D weight of the decoder layers
 * (the attention and MLP projections, whatever the family names them) is updated by Adam in a rank-r
 * subspace of its gradient (projected-adam.ts); the embeddings, norms and head train with the fused AdamW,
 * as the reference leaves every parameter outside its GaLore group to plain AdamW.
 */
import type { UpdaterEntry, UpdaterOption } from '../registry-types.js';
import { type BaseTensorInfo, type Updater, layerOf } from '../types.js';
import { GALORE_DEFAULTS, GaLoreAdam, type GaLoreSettings, checkSettings } from './projected-adam.js';

/**
 * Whether a base tensor is projected: a 2-D weight inside a decoder block (`model.layers.N.…` in the
 * Llama-style families, `transformer.h.N.…` in GPT-2). Embeddings, head and norms are not.
 */
export function isProjectedWeight(name: string, shape: readonly number[]): boolean {
  return shape.length === 2 && (layerOf(name) !== undefined || /^(transformer\.)?h\.\d+\./.test(name));
}

export function galoreUpdater(o: Partial<GaLoreSettings> = {}): Updater & { optimizers: Map<string, GaLoreAdam> } {
  const settings: GaLoreSettings = { ...GALORE_DEFAULTS, ...o };
  checkSettings(settings);
  const optimizers = new Map<string, GaLoreAdam>();
  return {
    method: 'galore',
    optimizers,
    initialTrainable: (ctx) => ctx.tensors.map((t: BaseTensorInfo) => t.name),
    tensorOptimizer: (name, shape) => {
      if (!isProjectedWeight(name, shape)) return undefined;
      const opt = new GaLoreAdam(shape[0]!, shape[1]!, settings);
      optimizers.set(name, opt);
      return opt;
    },
    summary: () => ({
      galoreRank: settings.rank, galoreInterval: settings.interval, galoreScale: settings.scale,
      galoreProjected: optimizers.size, galoreSvds: [...optimizers.values()].reduce((a, x) => a + x.svds, 0),
    }),
  };
}

export const GALORE_OPTIONS: Readonly<Record<string, UpdaterOption>> = {
  'galore-rank': { type: 'int', help: 'r: rank of the gradient projection of each 2-D decoder weight (capped by its smaller side)', default: GALORE_DEFAULTS.rank, range: { integer: true, min: 1 } },
  'galore-interval': { type: 'int', help: 'T: steps between SVDs of the gradient (a new subspace)', default: GALORE_DEFAULTS.interval, range: { integer: true, min: 1 } },
  'galore-scale': { type: 'number', help: 'α: scale of the projected-back update', default: GALORE_DEFAULTS.scale, range: { above: 0 } },
};

/** The GaLore settings from the CLI's option values (defaults filled in). */
export function galoreSettings(v: Readonly<Record<string, unknown>>): GaLoreSettings {
  return {
    rank: Number(v['galore-rank'] ?? GALORE_DEFAULTS.rank),
    interval: Number(v['galore-interval'] ?? GALORE_DEFAULTS.interval),
    scale: Number(v['galore-scale'] ?? GALORE_DEFAULTS.scale),
  };
}

export const GALORE: UpdaterEntry = {
  help: 'GaLore: every weight trains; the 2-D decoder weights by Adam in a rank-r subspace of the gradient (SVD every T steps), the rest by AdamW',
  options: GALORE_OPTIONS,
  create: (v) => galoreUpdater(galoreSettings(v)),
};
