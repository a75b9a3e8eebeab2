/**
 * `adaptkit train --objective dpo`: preference pairs from a JSONL file ({"prompt", "chosen", "rejected"})
 * trained with DPO (src/objectives/dpo), the reference being the model without the adapter.
 */
import { readFile } from 'node:fs/promises';
import type { AdaptedModel } from '../adapters/adapted-model.js';
import type { Backend } from '../backends/backend.js';
import { preferencePairs } from '../objectives/dpo/data.js';
import { trainDpo } from '../objectives/dpo/train.js';
import type { Tokenizer } from '../tokenizer/types.js';
import type { DecayKind } from '../train/schedule.js';
import { type Flags, UsageError } from './args.js';
import { Progress } from './progress.js';

/** Training options that DPO does not drive, refused by name before anything is read. */
export function checkDpoFlags(f: Flags): void {
  const given: [string, boolean][] = [
    ['--dry-run', Boolean(f['dry-run'])], ['--resume', f.resume !== undefined], ['--checkpoint-every', Number(f['checkpoint-every']) > 0],
    ['--eval-data', f['eval-data'] !== undefined], ['--checkpointing', Boolean(f.checkpointing)], ['--profile', Boolean(f.profile)],
    ['--accumulate', Number(f.accumulate) > 1],
  ];
  const bad = given.filter(([, on]) => on).map(([name]) => name);
  if (bad.length) throw new UsageError(`${bad.join(', ')} ${bad.length > 1 ? 'are' : 'is'} not available with --objective dpo`);
  if (!/\.jsonl$/i.test(String(f.data))) throw new UsageError(`--objective dpo reads preference pairs from a .jsonl file ({"prompt", "chosen", "rejected"} per line); got --data ${String(f.data)}`);
}

export async function trainDpoCommand(
  f: Flags, o: { model: AdaptedModel; tok: Tokenizer; backend: Backend; json: boolean; log: (x: Record<string, unknown>) => void; err: (s: string) => void },
): Promise<void> {
  const file = String(f.data), seq = Number(f.seq), batch = Number(f.batch), steps = Number(f.steps);
  const data = preferencePairs(await readFile(file, 'utf8'), file, o.tok, seq);
  o.log({ event: 'data', pairs: data.pairs, truncated: data.truncated });
  if (!o.json) o.err(`data: ${file}: ${data.pairs} preference pairs in rows of ${seq} tokens${data.truncated ? ` (${data.truncated} responses cut at ${seq} tokens)` : ''}; β ${Number(f.beta)}`);
  const bar = new Progress('dpo', steps, process.stderr, o.json);
  await trainDpo({
    model: o.model, adapter: 'default', backend: o.backend, data, steps, batch, beta: Number(f.beta),
    ...(f.lr !== undefined ? { lr: Number(f.lr) } : {}),
    warmup: Number(f.warmup), decay: f.decay as DecayKind, weightDecay: Number(f['weight-decay']),
    ...(Number(f['max-grad-norm']) > 0 ? { maxGradNorm: Number(f['max-grad-norm']) } : {}), seed: Number(f.seed),
    onStep: (r) => {
      const terms = Object.keys(r.terms).length ? { ...r.terms, objective: r.objective } : {};
      o.log({ step: r.step, loss: r.loss, margin: r.margin, accuracy: r.accuracy, ...terms, lr: r.lr, gradNorm: r.gradNorm, pairsPerSecond: (r.step * batch) / r.seconds });
      bar.update(r.step, `loss ${r.loss.toFixed(4)} margin ${r.margin.toFixed(3)} accuracy ${(100 * r.accuracy).toFixed(0)}%`);
    },
  });
}
