/**
 * `adaptkit train --objective dpo|kd|taid`: the objectives of src/objectives beside the next-token loss.
 * DPO reads preference pairs from a JSONL file ({"prompt", "chosen", "rejected"}), the reference being the
 * model without the adapter; KD and TAID distil `--teacher` on the positions `--data` scores.
 */
import { readFile } from 'node:fs/promises';
import type { AdaptedModel } from '../adapters/adapted-model.js';
import type { Backend } from '../backends/backend.js';
import { preferencePairs } from '../objectives/dpo/data.js';
import { trainDpo } from '../objectives/dpo/train.js';
import { distill, type DistillMethod } from '../objectives/distill/train.js';
import { multiObjectiveData } from '../objectives/multi/data.js';
import { trainMultiObjective } from '../objectives/multi/train.js';
import type { PackedBlocks } from '../data/dataset.js';
import type { LlamaCheckpoint } from '../formats/checkpoint.js';
import type { Tokenizer } from '../tokenizer/types.js';
import type { DecayKind } from '../train/schedule.js';
import { type Flags, UsageError } from './args.js';
import { Progress } from './progress.js';

/** Training options that an objective other than lm does not drive, refused by name before anything is read. */
export function checkObjectiveFlags(f: Flags): void {
  const objective = String(f.objective);
  if (objective === 'lm') {
    const stray = ['teacher', 'taid-t-start', 'taid-t-end', 'taid-alpha', 'taid-beta'].filter((k) => f[k] !== undefined);
    if (stray.length) throw new UsageError(`--${stray[0]} needs --objective kd or taid`);
    if (f.losses !== undefined) throw new UsageError('--losses needs --objective multi');
    return;
  }
  if (objective === 'multi') parseLosses(f.losses);
  else if (f.losses !== undefined) throw new UsageError('--losses needs --objective multi');
  if ((objective === 'kd' || objective === 'taid') && f.teacher === undefined) throw new UsageError(`--objective ${objective} needs --teacher MODEL (a model with the same tokenizer)`);
  if (objective === 'kd' && ['taid-t-start', 'taid-t-end', 'taid-alpha', 'taid-beta'].some((k) => f[k] !== undefined)) throw new UsageError('the --taid-* options need --objective taid');
  const given: [string, boolean][] = [
    ['--dry-run', Boolean(f['dry-run'])], ['--resume', f.resume !== undefined], ['--checkpoint-every', Number(f['checkpoint-every']) > 0],
    ['--eval-data', f['eval-data'] !== undefined], ['--checkpointing', Boolean(f.checkpointing)], ['--profile', Boolean(f.profile)],
    ['--accumulate', Number(f.accumulate) > 1],
  ];
  const bad = given.filter(([, on]) => on).map(([name]) => name);
  if (bad.length) throw new UsageError(`${bad.join(', ')} ${bad.length > 1 ? 'are' : 'is'} not available with --objective ${objective}`);
  if (objective === 'multi' && !/\.jsonl$/i.test(String(f.data))) throw new UsageError(`--objective multi reads JSONL lines with a "prompt" and one field per loss; got --data ${String(f.data)}`);
  if (objective === 'dpo' && !/\.jsonl$/i.test(String(f.data))) throw new UsageError(`--objective dpo reads preference pairs from a .jsonl file ({"prompt", "chosen", "rejected"} per line); got --data ${String(f.data)}`);
}

/** Context of an objective command; each reads its data first and returns the run, so bad data stops it before any output exists. */
interface CommandContext { model: AdaptedModel; tok: Tokenizer; json: boolean; log: (x: Record<string, unknown>) => void; err: (s: string) => void }

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
