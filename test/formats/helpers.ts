/** Shared test helpers: asset paths, a seeded PRNG, random quantized blocks, and error assertions. */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { numberToF16Bits } from '../../src/formats/binary.js';

const here = dirname(fileURLToPath(import.meta.url));
export const ASSETS = join(here, '..', '..', '..', 'shared', 'assets');
export const STORIES = join(ASSETS, 'models', 'stories260K');
export const GGUF_PATH = join(STORIES, 'stories260K.gguf');
export const L2C_PATH = join(STORIES, 'llama2c', 'stories260K.bin');
export const L2C_TOK_PATH = join(STORIES, 'llama2c', 'tok512.bin');
export const GREEDY_PATH = join(STORIES, 'greedy-256.txt');

export function readAsset(path: string): Uint8Array {
  return new Uint8Array(readFileSync(path));
}

/** mulberry32: small, fast, deterministic. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** [block bytes, byte offsets of binary16 scale fields] per ggml type. */
export const QUANT_LAYOUT: Record<string, [number, number[]]> = {
  Q4_0: [18, [0]], Q4_1: [20, [0, 2]], Q5_0: [22, [0]], Q5_1: [24, [0, 2]], Q8_0: [34, [0]],
  Q2_K: [84, [80, 82]], Q3_K: [110, [108]], Q4_K: [144, [0, 2]], Q5_K: [176, [0, 2]], Q6_K: [210, [208]],
};

/** Random blocks of a quantized type with finite scales, reproducible from the type name. */
export function randomBlocks(type: string, nBlocks: number): Uint8Array {
  const [size, halves] = QUANT_LAYOUT[type]!;
  let seed = 7;
  for (const c of type) seed = (seed * 31 + c.charCodeAt(0)) >>> 0;
  const r = rng(seed);
  const out = new Uint8Array(size * nBlocks);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(r() * 256);
  for (let b = 0; b < nBlocks; b++) {
    for (const h of halves) {
      const v = numberToF16Bits((r() * 2 - 1) * 0.05);
      out[b * size + h] = v & 0xff;
      out[b * size + h + 1] = v >> 8;
    }
  }
  return out;
}

/** Run fn and return the error it throws (failing when it does not throw). */
export function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error, none was thrown');
}

export async function rejected(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection, none happened');
}
