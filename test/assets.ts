/** Paths of the shared assets the tests read (never copied into the repository). */
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../shared/assets/', import.meta.url));
export const ASSETS = root;
export const STORIES_GGUF = `${root}models/stories260K/stories260K.gguf`;
export const STORIES_BIN = `${root}models/stories260K/llama2c/stories260K.bin`;
export const STORIES_TOK = `${root}models/stories260K/llama2c/tok512.bin`;
export const GREEDY_256 = `${root}models/stories260K/greedy-256.txt`;
export const TINYSTORIES_VAL = `${root}data/tinystories/tinystories_val.txt`;
