/**
 * LISA (Layerwise Importance Sampled AdamW): the embeddings, the final norm and the head always train;
 * of the decoder layers only γ, drawn uniformly without replacement, train for K steps, then γ others are
 * drawn. A layer that leaves the active set loses its Adam moments (a fresh optimizer per interval, as the
 * paper describes) unless `keepMoments` is set.
 */
import type { UpdaterEntry } from '../registry-types.js';
import type { BaseTensorInfo, Updater, UpdaterContext } from '../types.js';

export interface LisaOptions {
  /** γ: decoder layers active at once (default 2; at most the model's layer count). */
  layers?: number;
  /** K: steps between draws (default 20). */
  interval?: number;
  /** Keep the moments of layers that leave and restore them when they are drawn again (default false: fresh). */
  keepMoments?: boolean;
}

export function lisaUpdater(o: LisaOptions = {}): Updater {
  const gamma = o.layers ?? 2, interval = o.interval ?? 20;
  if (!(Number.isInteger(gamma) && gamma >= 0)) throw new RangeError(`lisa: layers (γ) must be an integer ≥ 0 (got ${gamma})`);
  if (!(Number.isInteger(interval) && interval >= 1)) throw new RangeError(`lisa: interval (K) must be an integer ≥ 1 (got ${interval})`);
  let draws = 0, active: number[] = [];
  const layersOf = (tensors: readonly BaseTensorInfo[]): number[] => [...new Set(tensors.flatMap((t) => (t.layer === undefined ? [] : [t.layer])))].sort((a, b) => a - b);
  const draw = (ctx: UpdaterContext): Set<string> => {
    const layers = layersOf(ctx.tensors);
    if (gamma > layers.length) throw new RangeError(`lisa: ${gamma} active layers asked, the model has ${layers.length}`);
    // Partial Fisher–Yates: γ distinct layers, each subset equally likely.
    const pool = [...layers];
    for (let i = 0; i < gamma; i++) {
      const j = i + Math.floor(ctx.rng() * (pool.length - i));
      [pool[i], pool[j]] = [pool[j]!, pool[i]!];
    }
    active = pool.slice(0, gamma).sort((a, b) => a - b);
    draws++;
    const chosen = new Set(active);
    ctx.log(`lisa: step ${ctx.step + 1}: layers ${active.length ? active.join(', ') : '(none)'} train with the embeddings, final norm and head`);
    return new Set(ctx.tensors.filter((t) => t.layer === undefined || chosen.has(t.layer)).map((t) => t.name));
  };
  return {
    method: 'lisa',
    ...(o.keepMoments ? { keepMoments: true } : {}),
    initialTrainable: (ctx) => draw(ctx),
    afterStep: async (ctx) => (ctx.step % interval === 0 ? draw(ctx) : undefined),
    summary: () => ({ lisaLayers: gamma, lisaInterval: interval, lisaDraws: draws, lisaLastLayers: active.join(' ') }),
  };
}

export const LISA: UpdaterEntry = {
  help: 'LISA: embeddings, final norm and head always train; γ decoder layers drawn at random every K steps',
  options: {
    'lisa-layers': { type: 'int', help: 'γ: decoder layers that train at once', default: 2, range: { integer: true, min: 0 } },
    'lisa-interval': { type: 'int', help: 'K: steps between draws of the active layers', default: 20, range: { integer: true, min: 1 } },
    'lisa-keep-moments': { type: 'bool', help: 'keep the Adam moments of layers that leave and restore them when drawn again (default: fresh moments)' },
  },
  create: (v, model) => {
    const layers = Number(v['lisa-layers'] ?? 2);
    if (layers > model.nLayers) throw new RangeError(`--lisa-layers ${layers}: the model has ${model.nLayers} layers`);
    return lisaUpdater({ layers, interval: Number(v['lisa-interval'] ?? 20), keepMoments: v['lisa-keep-moments'] === true });
  },
};
