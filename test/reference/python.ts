/**
 * Running the float64 PyTorch references of test/reference/*.py from the tests, and writing the files they
 * read: a Hugging Face–layout copy of a model and adapters as PEFT folders. These references are written
 * from the papers and PEFT's formulas, not from this library's code; they need /usr/bin/python3 with torch
 * (Debian python3-torch), which scripts/setup.sh installs. Without it the tests fail, saying so.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { savePeft } from '../../src/adapters/peft.js';
import { type LlamaCheckpoint, tensorF32, withRopeLayout } from '../../src/formats/checkpoint.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';

export const PYTHON = '/usr/bin/python3';
const here = fileURLToPath(new URL('.', import.meta.url));

/** Fail (not skip) when the reference cannot run, naming the fix. */
export function requireTorch(): void {
  const r = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(`${PYTHON} cannot import torch (${(r.error?.message ?? r.stderr.trim().split('\n').pop()) || 'unknown error'}): the float64 reference tests need the Debian package python3-torch; run \`bash scripts/setup.sh\``);
  }
}

/** Run `script` (a file in test/reference/) on a job written to `dir`; returns the JSON it prints. */
export function runReference<T>(script: string, job: unknown, dir: string): T {
  requireTorch();
  const jobPath = join(dir, `${script}.job.json`);
  writeFileSync(jobPath, JSON.stringify(job));
  const r = spawnSync(PYTHON, [join(here, script), jobPath], {
    encoding: 'utf8', maxBuffer: 64 << 20, timeout: 300_000, env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
  if (r.error || r.status !== 0) throw new Error(`${script} failed (exit ${r.status}): ${r.error?.message ?? r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** A Hugging Face–layout copy of `ckpt` in `dir`: rotate-half Q/K rows, model.safetensors and config.json. */
export function writeHfModel(ckpt: LlamaCheckpoint, dir: string): string {
  const hf = withRopeLayout(ckpt, 'half'), c = hf.config;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.safetensors'), writeSafetensors([...hf.tensors].map(([k, t]) => [k, { shape: t.shape, data: tensorF32(t) }] as [string, { shape: number[]; data: Float32Array }])));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({
    model_type: c.qkNorm ? 'qwen3' : c.slidingWindow !== undefined ? 'mistral' : 'llama', hidden_size: c.dim, intermediate_size: c.hiddenDim, num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads, num_key_value_heads: c.nKvHeads, vocab_size: c.vocabSize, rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta, tie_word_embeddings: c.tiedEmbeddings, attention_bias: c.qkvBias,
    ...(c.headDim !== undefined ? { head_dim: c.headDim } : {}),
    ...(c.slidingWindow !== undefined ? { sliding_window: c.slidingWindow, max_position_embeddings: c.maxSeqLen } : {}),
    ...(c.layerTypes ? { layer_types: c.layerTypes } : {}),
  }));
  return dir;
}

/** Save an adapter as a PEFT folder `dir` (adapter_config.json + adapter_model.safetensors). */
export function savePeftFolder(model: AdaptedModel, name: string, dir: string): string {
  const files = savePeft(model, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'adapter_config.json'), files.config);
  writeFileSync(join(dir, 'adapter_model.safetensors'), files.weights);
  return dir;
}

/** A little-endian float64 file written by a reference. */
export function readF64(path: string): Float64Array {
  const b = readFileSync(path);
  return new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
