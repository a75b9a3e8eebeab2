/**
 * `adaptkit train` with the objectives of src/objectives beside the plain next-token loss:
 * `--objective dpo` (preference pairs from JSONL, the reference being the model without the adapter),
 * `--objective kd|taid` (distilling `--teacher` on the positions `--data` scores), `--objective multi`
 * (weighted losses on fields of JSONL lines), and `--mixup` / `--contrastive` (augmentation in the graph).
 */
import { readFile } from 'node:fs/promises';
import type { AdaptedModel } from '../adapters/adapted-model.js';
import type { Backend } from '../backends/backend.js';
import { preferencePairs } from '../objectives/dpo/data.js';
import { trainDpo } from '../objectives/dpo/train.js';
import { distill, type DistillMethod } from '../objectives/distill/train.js';
import { multiObjectiveData } from '../objectives/multi/data.js';
import type { TokenAugmentOptions } from '../objectives/augment/tokens.js';
import { trainAugmented } from '../objectives/augment/train.js';
import { trainMultiObjective } from '../objectives/multi/train.js';
import type { PackedBlocks } from '../data/dataset.js';
import type { LlamaCheckpoint } from '../formats/checkpoint.js';
import type { Tokenizer } from '../tokenizer/types.js';
import type { DecayKind } from '../train/schedule.js';
import { type Flags, UsageError } from './args.js';
import { Progress } from './progress.js';

/** Context of an objective command; each reads its data first and returns the run, so bad data stops it before any output exists. */
interface CommandContext { model: AdaptedModel; tok: Tokenizer; json: boolean; log: (x: Record<string, unknown>) => void; err: (s: string) => void }

/** Options of the plain training loop that the objectives here do not drive (refused by name). */
function unsupported(f: Flags): string[] {
  const given: [string, boolean][] = [
    ['--dry-run', Boolean(f['dry-run'])], ['--resume', f.resume !== undefined], ['--checkpoint-every', Number(f['checkpoint-every']) > 0],
    ['--eval-data', f['eval-data'] !== undefined], ['--checkpointing', Boolean(f.checkpointing)], ['--profile', Boolean(f.profile)],
    ['--accumulate', Number(f.accumulate) > 1],
  ];
  return given.filter(([, on]) => on).map(([name]) => name);
}

/** Checks the objective's options against each other before anything is read. */
export function checkObjectiveFlags(f: Flags): void {
  const objective = String(f.objective);
  const inGraph = f.mixup !== undefined || f.contrastive !== undefined;
  if (inGraph && objective !== 'lm') throw new UsageError('--mixup and --contrastive go with --objective lm');
  if (f.mixup !== undefined && f.contrastive !== undefined) throw new UsageError('--mixup and --contrastive are separate options; use one at a time');
  if (f['contrastive-temperature'] !== undefined && f.contrastive === undefined) throw new UsageError('--contrastive-temperature needs --contrastive');
  if (f.augment !== undefined) parseAugment(f.augment);
  if (objective !== 'kd' && objective !== 'taid' && f.teacher !== undefined) throw new UsageError('--teacher needs --objective kd or taid');
  if (objective !== 'taid' && ['taid-t-start', 'taid-t-end', 'taid-alpha', 'taid-beta'].some((k) => f[k] !== undefined)) throw new UsageError('the --taid-* options need --objective taid');
  if (objective !== 'multi' && f.losses !== undefined) throw new UsageError('--losses needs --objective multi');
  if (objective === 'lm' && !inGraph) return;
  const bad = unsupported(f);
  const what = objective === 'lm' ? (f.mixup !== undefined ? '--mixup' : '--contrastive') : `--objective ${objective}`;
  if (bad.length) throw new UsageError(`${bad.join(', ')} ${bad.length > 1 ? 'are' : 'is'} not available with ${what}`);
  if (objective === 'multi') parseLosses(f.losses);
  if ((objective === 'kd' || objective === 'taid') && f.teacher === undefined) throw new UsageError(`--objective ${objective} needs --teacher MODEL (a model with the same tokenizer)`);
  if (objective === 'multi' && !/\.jsonl$/i.test(String(f.data))) throw new UsageError(`--objective multi reads JSONL lines with a "prompt" and one field per loss; got --data ${String(f.data)}`);
  if (objective === 'dpo' && !/\.jsonl$/i.test(String(f.data))) throw new UsageError(`--objective dpo reads preference pairs from a .jsonl file ({"prompt", "chosen", "rejected"} per line); got --data ${String(f.data)}`);
}

/** --augment "insert=0.1,swap=0.1,delete=0.1,copies=1": token-level augmentation rates (see src/objectives/augment). */
export function parseAugment(v: Flags[string]): TokenAugmentOptions {
  const out: Record<string, number> = {};
  for (const part of String(v).split(',')) {
    const [k, x] = part.trim().split('=');
    const n = Number(x);
    if (!k || !['insert', 'swap', 'delete', 'copies'].includes(k) || x === undefined || !Number.isFinite(n)) throw new UsageError(`--augment: "${part}" is not insert=R, swap=R, delete=P or copies=N`);
    if (k === 'copies' ? !(Number.isInteger(n) && n >= 0) : !(n >= 0 && n <= 1)) throw new UsageError(`--augment: ${k} must be ${k === 'copies' ? 'a whole number ≥ 0' : 'in [0, 1]'} (got ${x})`);
    out[k] = n;
  }
  return out as TokenAugmentOptions;
}

/** --mixup ALPHA or --contrastive WEIGHT: fine-tuning with augmentation in the training graph. */
export async function augmentedCommand(f: Flags, o: CommandContext & { data: PackedBlocks }): Promise<(backend: Backend) => Promise<void>> {
  const steps = Number(f.steps);
  const views = f.augment !== undefined ? parseAugment(f.augment) : { delete: 0.1 };
  const bar = new Progress(f.mixup !== undefined ? 'mixup' : 'contrastive', steps, process.stderr, o.json);
  return (backend) => trainAugmented({
    model: o.model, adapter: 'default', backend, data: o.data, steps, batch: Number(f.batch),
    ...(f.mixup !== undefined ? { mixup: { alpha: Number(f.mixup) } } : {
      contrastive: { weight: Number(f.contrastive), augment: views, ...(f['contrastive-temperature'] !== undefined ? { temperature: Number(f['contrastive-temperature']) } : {}) },
    }),
    ...(f.lr !== undefined ? { lr: Number(f.lr) } : {}),
    warmup: Number(f.warmup), decay: f.decay as DecayKind, weightDecay: Number(f['weight-decay']),
    ...(Number(f['max-grad-norm']) > 0 ? { maxGradNorm: Number(f['max-grad-norm']) } : {}), seed: Number(f.seed),
    onStep: (r) => {
      const terms = Object.keys(r.terms).length ? { ...r.terms, objective: r.objective } : {};
      o.log({ step: r.step, loss: r.loss, ...terms, ...(f.mixup !== undefined ? { lambda: r.lambda } : {}), lr: r.lr, gradNorm: r.gradNorm });
      bar.update(r.step, `loss ${r.loss.toFixed(4)}${Object.entries(r.terms).map(([k, v]) => ` ${k} ${v.toFixed(4)}`).join('')}`);
    },
  }).then(() => undefined);
}


export async function trainDpoCommand(f: Flags, o: CommandContext): Promise<(backend: Backend) => Promise<void>> {
  const file = String(f.data), seq = Number(f.seq), batch = Number(f.batch), steps = Number(f.steps);
  const data = preferencePairs(await readFile(file, 'utf8'), file, o.tok, seq);
  o.log({ event: 'data', pairs: data.pairs, truncated: data.truncated });
  if (!o.json) o.err(`data: ${file}: ${data.pairs} preference pairs in rows of ${seq} tokens${data.truncated ? ` (${data.truncated} responses cut at ${seq} tokens)` : ''}; β ${Number(f.beta)}`);
  const bar = new Progress('dpo', steps, process.stderr, o.json);
  return (backend) => trainDpo({
    model: o.model, adapter: 'default', backend, data, steps, batch, beta: Number(f.beta),
    ...(f.lr !== undefined ? { lr: Number(f.lr) } : {}),
    warmup: Number(f.warmup), decay: f.decay as DecayKind, weightDecay: Number(f['weight-decay']),
    ...(Number(f['max-grad-norm']) > 0 ? { maxGradNorm: Number(f['max-grad-norm']) } : {}), seed: Number(f.seed),
    onStep: (r) => {
      const terms = Object.keys(r.terms).length ? { ...r.terms, objective: r.objective } : {};
      o.log({ step: r.step, loss: r.loss, margin: r.margin, accuracy: r.accuracy, ...terms, lr: r.lr, gradNorm: r.gradNorm, pairsPerSecond: (r.step * batch) / r.seconds });
      bar.update(r.step, `loss ${r.loss.toFixed(4)} margin ${r.margin.toFixed(3)} accuracy ${(100 * r.accuracy).toFixed(0)}%`);
    },
  }).then(() => undefined);
}

export async function distillCommand(f: Flags, o: CommandContext & { teacher: LlamaCheckpoint; data: PackedBlocks }): Promise<(backend: Backend) => Promise<void>> {
  const method = String(f.objective) as DistillMethod, steps = Number(f.steps);
  const num = (k: string) => (f[k] !== undefined ? Number(f[k]) : undefined);
  const taid = { tStart: num('taid-t-start'), tEnd: num('taid-t-end'), alpha: num('taid-alpha'), beta: num('taid-beta') };
  const bar = new Progress(method, steps, process.stderr, o.json);
  return (backend) => distill({
    model: o.model, adapter: 'default', backend, teacher: o.teacher, data: o.data, steps, batch: Number(f.batch), method,
    taid: Object.fromEntries(Object.entries(taid).filter(([, v]) => v !== undefined)),
    ...(f.lr !== undefined ? { lr: Number(f.lr) } : {}),
    warmup: Number(f.warmup), decay: f.decay as DecayKind, weightDecay: Number(f['weight-decay']),
    ...(Number(f['max-grad-norm']) > 0 ? { maxGradNorm: Number(f['max-grad-norm']) } : {}), seed: Number(f.seed),
    onStep: (r) => {
      const terms = Object.keys(r.terms).length ? { ...r.terms, objective: r.objective } : {};
      o.log({ step: r.step, loss: r.loss, ...(method === 'taid' ? { t: r.t } : {}), ...terms, lr: r.lr, gradNorm: r.gradNorm });
      bar.update(r.step, `KL ${r.loss.toFixed(4)}${method === 'taid' ? ` t ${r.t.toFixed(3)}` : ''}`);
    },
  }).then(() => undefined);
}

/** --losses "field:weight,field:weight" (a bare field weighs 1). */
export function parseLosses(v: Flags[string]): { name: string; weight: number }[] {
  if (v === undefined || v === true || String(v).trim() === '') throw new UsageError('--objective multi needs --losses FIELD:WEIGHT,… (e.g. completion:1,rationale:0.5)');
  return String(v).split(',').map((part) => {
    const [name, w, extra] = part.trim().split(':');
    const weight = w === undefined ? 1 : Number(w);
    if (!name || extra !== undefined || !(Number.isFinite(weight) && weight >= 0)) throw new UsageError(`--losses: "${part}" is not FIELD or FIELD:WEIGHT with a weight ≥ 0`);
    return { name, weight };
  });
}

export async function multiCommand(f: Flags, o: CommandContext): Promise<(backend: Backend) => Promise<void>> {
  const losses = parseLosses(f.losses), file = String(f.data), seq = Number(f.seq), steps = Number(f.steps);
  const data = multiObjectiveData(await readFile(file, 'utf8'), file, o.tok, seq, losses.map((l) => l.name));
  o.log({ event: 'data', objectives: Object.fromEntries([...data].map(([k, d]) => [k, d.rows])) });
  if (!o.json) o.err(`data: ${file}: ${[...data].map(([k, d]) => `${k} ${d.rows} rows`).join(', ')} of ${seq} tokens`);
  const bar = new Progress('multi', steps, process.stderr, o.json);
  return (backend) => trainMultiObjective({
    model: o.model, adapter: 'default', backend, steps, batch: Number(f.batch),
    objectives: losses.map((l) => ({ ...l, data: data.get(l.name)! })),
    ...(f.lr !== undefined ? { lr: Number(f.lr) } : {}),
    warmup: Number(f.warmup), decay: f.decay as DecayKind, weightDecay: Number(f['weight-decay']),
    ...(Number(f['max-grad-norm']) > 0 ? { maxGradNorm: Number(f['max-grad-norm']) } : {}), seed: Number(f.seed),
    onStep: (r) => {
      const terms = Object.keys(r.terms).length ? { ...r.terms, objective: r.objective } : {};
      o.log({ step: r.step, loss: r.loss, losses: r.losses, ...terms, lr: r.lr, gradNorm: r.gradNorm });
      bar.update(r.step, `loss ${r.loss.toFixed(4)} (${Object.entries(r.losses).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ')})`);
    },
  }).then(() => undefined);
}
