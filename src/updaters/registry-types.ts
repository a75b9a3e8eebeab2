/** What the method registry (index.ts) holds per method: its help, its command-line options and a constructor. */
import type { LlamaConfig } from '../formats/checkpoint.js';
import type { Range } from '../util/ranges.js';
import type { Updater } from './types.js';

/** One option of a method, given on the command line as `--NAME value` (the shape of the CLI's flag specs). */
export interface UpdaterOption {
  type: 'string' | 'number' | 'int' | 'bool';
  help: string;
  default?: string | number | boolean;
  /** Accepted values, checked before any work. */
  range?: Range;
  /** A path that must exist (checked with the other flags, before any work). */
  path?: { kind: 'file' | 'folder' };
}

/** What a method may read about the run before it starts: the model's configuration and the batch shape. */
export interface UpdaterRun {
  config: LlamaConfig;
  /** Rows per step. */
  batch: number;
  /** Tokens per row. */
  seq: number;
  /** The run's optimizer steps, when known (SpIEL's reselection rate decays over them; LT-SFT splits them into its two phases). */
  steps?: number;
}

export type UpdaterOptionValues = Readonly<Record<string, string | number | boolean | undefined>>;

export interface UpdaterEntry {
  /** One line for `adaptkit train --help`. */
  help: string;
  /** The learning rate when --lr is not given (default: the base-weight methods' 1e-4); grafting's steps move mask logits, not weights. */
  defaultLr?: number;
  /** The method's own options by flag name (e.g. 'lisa-layers'); every one documented in the README. */
  options: Readonly<Record<string, UpdaterOption>>;
  /**
   * The updater for these option values (defaults filled in), the model's configuration and the run's batch
   * shape (a method that costs the training graph, as GreenTrainer does, needs both).
   */
  create(values: UpdaterOptionValues, model: { nLayers: number }, run?: UpdaterRun): Updater;
}
