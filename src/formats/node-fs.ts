/**
 * Node-only conveniences over the browser-safe readers: read a file from disk and parse it, naming it
 * by its path in errors.
 */
import { readFile } from 'node:fs/promises';
import { parseGguf, type GgufFile } from './gguf.js';
import { parseSafetensors, type SafetensorsFile } from './safetensors.js';
import { parseLlama2cTokenizer } from './llama2c.js';
import { loadCheckpoint, type LlamaCheckpoint, type LoadCheckpointOptions } from './checkpoint.js';
import type { TokenizerData } from '../tokenizer/types.js';

export async function readGgufFile(path: string): Promise<GgufFile> {
  return parseGguf(await readFile(path), path);
}

export async function readSafetensorsFile(path: string): Promise<SafetensorsFile> {
  return parseSafetensors(await readFile(path), path);
}

export async function readLlama2cTokenizerFile(path: string, vocabSize?: number): Promise<TokenizerData> {
  return parseLlama2cTokenizer(await readFile(path), path, vocabSize === undefined ? {} : { vocabSize });
}

/** `loadCheckpoint` for a path: a .gguf, llama2.c .bin, .safetensors file or a Hugging Face directory. */
export async function loadCheckpointFile(path: string, options: LoadCheckpointOptions = {}): Promise<LlamaCheckpoint> {
  return loadCheckpoint(path, options);
}
