/**
 * HFT (Half Fine-Tuning): in each stage, half of every decoder layer's parameter categories are frozen at
 * random — 2 of the 4 attention projections (q, k, v, o), and in the FFN 2 of gate/up/down in half of the
 * layers and 1 in the other half — and drawn again at the next stage. The embedding and the head are one
 * more pair of categories (one of the two trains when they are separate matrices; a tied matrix trains);
 * norms always train. With grouped-query attention k and v are smaller than q and o, so the trainable
 * fraction is near, not at, one half: it is counted and printed at every stage.
 */
import type { UpdaterEntry } from '../registry-types.js';
import type { BaseTensorInfo, Updater, UpdaterContext } from '../types.js';

export const ATTENTION = ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const;
export const FFN = ['gate_proj', 'up_proj', 'down_proj'] as const;

export interface HftOptions {
  /** Steps per stage: the frozen half is drawn again every `stage` steps (default 100; 0: one draw for the whole run). */
  stage?: number;
}

/** The projection a tensor belongs to (its weight or bias), or undefined for norms and non-layer tensors. */
export function categoryOf(name: string): string | undefined {
  const m = /\.(self_attn|mlp)\.([a-z_]+)\.(weight|bias)$/.exec(name);
  return m ? m[2] : undefined;
}

/** One stage's trainable categories per layer and the trainable set they give. */
export interface HftDraw {
  /** layer → categories that train (2 attention + 1 or 2 FFN). */
  trains: Map<number, Set<string>>;
  /** Layers whose FFN trains one category (the other half train two). */
  oneFfn: Set<number>;
  /** Which of an untied embedding/head pair trains ('model.embed_tokens.weight' or 'lm_head.weight'), or undefined. */
  headPair?: string;
  names: Set<string>;
}

function pick<T>(items: readonly T[], k: number, rng: () => number): T[] {
  const pool = [...items];
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rng() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, k);
}

/** Check that every layer has the seven separate projections HFT freezes by category. */
export function checkHftModel(tensors: readonly BaseTensorInfo[]): number[] {
  const layers = [...new Set(tensors.flatMap((t) => (t.layer === undefined ? [] : [t.layer])))].sort((a, b) => a - b);
  for (const l of layers) {
    const have = new Set(tensors.filter((t) => t.layer === l).map((t) => categoryOf(t.name)));
    const missing = [...ATTENTION, ...FFN].filter((c) => !have.has(c));
    if (missing.length) throw new Error(`hft: layer ${l} has no separate ${missing.join(', ')} (HFT freezes q/k/v/o and gate/up/down by category; fused projections are not supported)`);
  }
  return layers;
}

export function drawHft(tensors: readonly BaseTensorInfo[], rng: () => number): HftDraw {
  const layers = checkHftModel(tensors);
  const oneFfn = new Set(pick(layers, Math.floor(layers.length / 2), rng));
  const trains = new Map<number, Set<string>>();
  for (const l of layers) trains.set(l, new Set([...pick(ATTENTION, 2, rng), ...pick(FFN, oneFfn.has(l) ? 1 : 2, rng)]));
  const names = new Set<string>();
  const hasHead = tensors.some((t) => t.name === 'lm_head.weight'), hasEmbed = tensors.some((t) => t.name === 'model.embed_tokens.weight');
  const headPair = hasHead && hasEmbed ? (rng() < 0.5 ? 'model.embed_tokens.weight' : 'lm_head.weight') : undefined;
  for (const t of tensors) {
    const c = categoryOf(t.name);
    if (t.layer !== undefined && c !== undefined && trains.has(t.layer)) {
      if (trains.get(t.layer)!.has(c)) names.add(t.name);
    } else if (t.name === 'model.embed_tokens.weight' || t.name === 'lm_head.weight') {
      if (headPair === undefined || headPair === t.name) names.add(t.name);
    } else names.add(t.name); // norms (and anything without a category) train
  }
  return { trains, oneFfn, ...(headPair ? { headPair } : {}), names };
}

/** Trainable elements over all elements, counted from the tensors' shapes. */
export function trainableFraction(tensors: readonly BaseTensorInfo[], names: ReadonlySet<string>): number {
  let all = 0, on = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    all += n;
    if (names.has(t.name)) on += n;
  }
  return on / all;
}

export function hftUpdater(o: HftOptions = {}): Updater {
  const stage = o.stage ?? 100;
  if (!(Number.isInteger(stage) && stage >= 0)) throw new RangeError(`hft: stage must be an integer ≥ 0 (got ${stage})`);
  let stages = 0, last = NaN;
  const draw = (ctx: UpdaterContext): Set<string> => {
    const d = drawHft(ctx.tensors, ctx.rng);
    stages++;
    last = trainableFraction(ctx.tensors, d.names);
    const per = [...d.trains].map(([l, c]) => `${l}:${[...c].map((x) => x.replace('_proj', '')).join('+')}`).join(' ');
    ctx.log(`hft: stage ${stages} from step ${ctx.step + 1}: trainable fraction ${last.toFixed(4)} (${per}${d.headPair ? `; ${d.headPair}` : ''})`);
    return d.names;
  };
  return {
    method: 'hft',
    initialTrainable: (ctx) => draw(ctx),
    afterStep: async (ctx) => (stage > 0 && ctx.step % stage === 0 ? draw(ctx) : undefined),
    summary: () => ({ hftStage: stage, hftStages: stages, hftTrainableFraction: last }),
  };
}

export const HFT: UpdaterEntry = {
  help: 'HFT: half of each layer\'s projections (2 of q/k/v/o; 1 or 2 of gate/up/down) frozen at random, redrawn every stage',
  options: {
    'hft-stage': { type: 'int', help: 'steps per stage: the frozen half is drawn again every N steps (0: one draw for the run)', default: 100, range: { integer: true, min: 0 } },
  },
  create: (v) => hftUpdater({ stage: Number(v['hft-stage'] ?? 100) }),
};
