/**
 * Model families: what differs between Llama, Gemma, Phi-3, GPT-2, … is gathered here, one object per
 * family (one file each under src/model/), so loaders, validation, adapters and the graph ask the family
 * instead of assuming Llama. A family reads its Hugging Face `model_type`s (and GGUF architectures), lists
 * the tensors a checkpoint must have, lists the modules adapters can target, and builds the graph. Every
 * decoder family returns the same `LlamaGraph` (ids → hidden states → head), so trainers, objectives and
 * runtimes work with any of them.
 */
import type { Graph } from '../graph/graph.js';
import type { LlamaConfig } from '../formats/checkpoint.js';
import type { ModuleInfo } from '../adapters/types.js';
import { type LlamaGraph, type LlamaGraphOptions, llamaFamily } from './llama.js';
import { gemmaFamily } from './gemma.js';

export interface DecoderFamily {
  /** Short name, e.g. `llama`. */
  readonly name: string;
  /** Hugging Face `model_type` values this family reads (config.json). */
  readonly hfModelTypes: readonly string[];
  /** GGUF `general.architecture` values this family reads. */
  readonly ggufArchitectures: readonly string[];
  /** The config from a Hugging Face config.json object; bad or unsupported values throw a FormatError naming `name`. */
  hfConfig(cfg: Record<string, unknown>, name: string): LlamaConfig;
  /** The tensors a checkpoint must have, under Hugging Face names, with their shapes. */
  tensorShapes(c: LlamaConfig): Map<string, number[]>;
  /** Every module adapters can target, in graph order (Hugging Face names, so PEFT targets match). */
  modules(c: LlamaConfig): ModuleInfo[];
  /** Linear module name suffixes PEFT's `all-linear` stands for (every linear layer but the output head). */
  readonly linearSuffixes: readonly string[];
  /** Build the forward graph. */
  build(g: Graph, c: LlamaConfig, o: LlamaGraphOptions): LlamaGraph;
}

// A function, not a constant: the family modules import this one's callers (formats/), and a lazily built
// list keeps module initialisation order irrelevant.
function families(): readonly DecoderFamily[] {
  return [llamaFamily, gemmaFamily];
}

/** The family of a config, by its `architecture` (a Hugging Face model_type or a GGUF architecture); Llama when unknown. */
export function familyOf(c: Pick<LlamaConfig, 'architecture'>): DecoderFamily {
  const a = c.architecture;
  return families().find((f) => f.hfModelTypes.includes(a) || f.ggufArchitectures.includes(a) || f.name === a) ?? llamaFamily;
}

/** The family that reads a Hugging Face model_type, if any. */
export function familyForModelType(modelType: string): DecoderFamily | undefined {
  return families().find((f) => f.hfModelTypes.includes(modelType));
}

/** Every Hugging Face model_type some family reads. */
export function supportedModelTypes(): string[] {
  return families().flatMap((f) => f.hfModelTypes);
}

/** Linear module suffixes of every family (what `all-linear` can name). */
export function allLinearSuffixes(): string[] {
  return [...new Set(families().flatMap((f) => f.linearSuffixes))];
}

/** Build a decoder of any family. */
export function buildModel(g: Graph, c: LlamaConfig, o: LlamaGraphOptions): LlamaGraph {
  return familyOf(c).build(g, c, o);
}
