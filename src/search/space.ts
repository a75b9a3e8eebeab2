/**
 * The search space: adapter method × rank × target-module set × layer set, the grid of distinct
 * configurations it spans (a dimension a method has no option for collapses), and seeded sampling from it.
 */
import { getMethod } from '../adapters/registry.js';
import { seededRandom } from '../util/random.js';

export interface SearchSpace {
  /** Adapter method names (registry names or aliases). */
  methods: string[];
  /** Ranks tried for methods with an `r` option. */
  ranks: number[];
  /** Target-module sets tried for methods with a `targetModules` option, each a list of names or suffixes. */
  targets: string[][];
  /** Layer sets tried for methods with a `layersToTransform` option; `null` is every layer. */
  layers: (number[] | null)[];
}

export interface Candidate {
  method: string;
  rank?: number;
  targets?: string[];
  /** Omitted: every layer. */
  layers?: number[];
}

/** The feed-forward modules (IA)³ rescales on the input side, as PEFT's default for Llama. */
const FEEDFORWARD = ['down_proj'];

/** The candidate as a method config for AdaptedModel.addAdapter. LoRA gets alpha = 2r (the usual pairing). */
export function candidateConfig(c: Candidate): Record<string, unknown> {
  const cfg: Record<string, unknown> = {};
  if (c.rank !== undefined) cfg.r = c.rank;
  if (c.rank !== undefined && getMethod(c.method).name === 'lora') cfg.alpha = 2 * c.rank;
  if (c.targets) cfg.targetModules = c.targets;
  // (IA)³ rescales the input of its feed-forward targets; only those of this target set can be named.
  if (c.targets && 'feedforwardModules' in getMethod(c.method).options) cfg.feedforwardModules = c.targets.filter((t) => FEEDFORWARD.includes(t));
  if (c.layers) cfg.layersToTransform = c.layers;
  return cfg;
}

/** The `adaptkit train` flags that build the same adapter (LoRA's rank is --rank; other methods' is --r). */
export function trainArgs(c: Candidate): string[] {
  const lora = getMethod(c.method).name === 'lora';
  const args = ['--method', c.method];
  if (c.rank !== undefined) args.push(lora ? '--rank' : '--r', String(c.rank));
  if (c.rank !== undefined && lora) args.push('--alpha', String(2 * c.rank));
  if (c.targets) args.push('--targets', c.targets.join(','));
  if (c.targets && 'feedforwardModules' in getMethod(c.method).options) args.push('--feedforward-modules', c.targets.filter((t) => FEEDFORWARD.includes(t)).join(','));
  if (c.layers) args.push('--layers', c.layers.join(','));
  return args;
}

/** A short readable name, e.g. "lora r4 q_proj,v_proj L2,3". */
export function candidateLabel(c: Candidate): string {
  return [c.method, c.rank !== undefined ? `r${c.rank}` : '', c.targets ? c.targets.join(',') : '', c.layers ? `L${c.layers.join(',')}` : 'layersToTransform' in getMethod(c.method).options ? 'all layers' : ''].filter(Boolean).join(' ');
}

/** Every distinct configuration of the space, in a fixed order (methods, then ranks, targets, layers). */
export function searchGrid(space: SearchSpace): Candidate[] {
  const out: Candidate[] = [];
  // A method named twice (or by an alias and its name) and a rank given twice add nothing.
  const seen = new Set<string>();
  const methods = space.methods.filter((m) => !seen.has(getMethod(m).name) && seen.add(getMethod(m).name));
  const ranksOnce = [...new Set(space.ranks)];
  for (const method of methods) {
    const options = getMethod(method).options;
    const ranks = 'r' in options ? ranksOnce : [undefined];
    const targets = 'targetModules' in options ? space.targets : [undefined];
    const layers = 'layersToTransform' in options ? space.layers : [null];
    for (const rank of ranks) for (const t of targets) for (const l of layers) {
      out.push({ method, ...(rank !== undefined ? { rank } : {}), ...(t ? { targets: [...t] } : {}), ...(l ? { layers: [...l] } : {}) });
    }
  }
  return out;
}

/** `n` distinct candidates drawn uniformly from the grid without replacement (a seeded partial shuffle). */
export function sampleCandidates(grid: readonly Candidate[], n: number, seed: number): Candidate[] {
  if (!(Number.isInteger(n) && n >= 1 && n <= grid.length)) throw new RangeError(`sampleCandidates: n must be an integer in [1, ${grid.length}] (got ${n})`);
  const random = seededRandom(seed);
  const idx = grid.map((_, i) => i);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(random() * (idx.length - i));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx.slice(0, n).map((i) => grid[i]!);
}
