/**
 * Model families: what differs between Llama, Gemma, Phi-3, GPT-2, … is gathered here, one object per
 * family (one file each under src/model/), so loaders, validation, adapters and the graph ask the family
 * instead of assuming Llama. A family reads its Hugging Face `model_type`s (and GGUF architectures), lists
 * the tensors a checkpoint must have, lists the modules adapters can target, and builds the graph. Every
 * decoder family returns the same `LlamaGraph` (ids → hidden states → head), so trainers, objectives and
 * runtimes work with any of them.
 */
import type { Graph } from '../graph/graph.js';
import type { LlamaConfig, NamedTensor } from '../formats/checkpoint.js';
import type { ModuleInfo } from '../adapters/types.js';
import { type LlamaGraph, type LlamaGraphOptions, llamaFamily } from './llama.js';
import { gemmaFamily } from './gemma.js';
import { phi3Family } from './phi3.js';
import { gpt2Family } from './gpt2.js';

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
  /**
   * A Hugging Face file's tensor name as this family holds it, or undefined for a stored buffer that is not a
   * weight (GPT-2's causal masks `attn.bias`); absent: names are kept.
   */
  hfTensorName?(stored: string): string | undefined;
  /**
   * Tensors whose Hugging Face file orientation differs from the one held here: GPT-2's Conv1D weights are
   * stored [in, out] and held [out, in] like every other linear, so adapters, merges and kernels see one
   * orientation. `fromHf` turns a file tensor into the held one, `toHf` back (writing a model, PEFT base tensors).
   */
  fromHf?(name: string, t: NamedTensor): NamedTensor;
  toHf?(name: string, t: NamedTensor): NamedTensor;
  /** PEFT's `fan_in_fan_out`: the family's linear layers are Conv1D (weights [in, out] in Hugging Face files). */
  readonly fanInFanOut?: boolean;
  /** Hugging Face config.json for a model of this family (writing a merged model); absent: Llama's writer. */
  toHfConfig?(c: LlamaConfig, extra: { torchDtype: string; bosId?: number; eosId?: number }): Record<string, unknown>;
  /** False when the family has no rotary embedding (GPT-2's learned positions): odd head sizes are then fine. */
  readonly rotary?: boolean;
}

// A function, not a constant: the family modules import this one's callers (formats/), and a lazily built
// list keeps module initialisation order irrelevant.
function families(): readonly DecoderFamily[] {
  return [llamaFamily, gemmaFamily, phi3Family, gpt2Family];
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
  const family = familyOf(c);
  // Draft-tree verification is built into the Llama graph (Llama, Mistral, Qwen, Granite, Phi-3) only.
  if (o.tree && family !== llamaFamily && family !== phi3Family) throw new Error(`draft-tree verification is not available for the ${family.name} family (only for Llama-graph families: llama, mistral, qwen2, qwen3, granite, phi3)`);
  return family.build(g, c, o);
}
