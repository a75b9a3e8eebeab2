/** Full fine-tuning: every base tensor trains with AdamW from the first step to the last. */
import type { UpdaterEntry } from '../registry-types.js';
import type { Updater } from '../types.js';

export function fullUpdater(): Updater {
  return {
    method: 'full',
    initialTrainable: (ctx) => ctx.tensors.map((t) => t.name),
  };
}

export const FULL: UpdaterEntry = {
  help: 'full fine-tuning: every base weight trains with AdamW',
  options: {},
  create: () => fullUpdater(),
};
