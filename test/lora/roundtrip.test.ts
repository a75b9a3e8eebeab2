// Train with the CLI, then in fresh processes: reload the PEFT folder (identical eval loss), merge it into
// safetensors and GGUF models (eval loss equal to the adapter's within 1e-4), and check the files' layout.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { loadPeft } from '../../src/adapters/peft.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { loadCheckpoint } from '../../src/formats/checkpoint.js';
import { parseSafetensors } from '../../src/formats/safetensors.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { paragraphs } from '../../src/data/text.js';
import { STORIES_GGUF, TINYSTORIES_VAL } from '../assets.js';
import { cli } from '../cli/run.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-lora-'));
const adapter = join(dir, 'adapter'), merged = join(dir, 'merged');
const evalArgs = ['--data', TINYSTORIES_VAL, '--paragraphs', '6', '--max-tokens', '48', '--backend', 'js', '--json'];
const lossOf = (r: { code: number; stdout: string; stderr: string }): number => {
  assert.is(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!).loss as number;
};

test('train writes a PEFT folder with HF-style keys; JSON lines report each step', () => {
  const r = cli(['train', '--model', STORIES_GGUF, '--steps', '4', '--batch', '2', '--seq', '32', '--lr', '0.01', '--targets', 'q_proj,k_proj,v_proj,down_proj', '--rank', '4', '--backend', 'js', '--out', adapter, '--json']);
  assert.is(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.filter((l) => 'step' in l && !('event' in l)).map((l) => l.step), [1, 2, 3, 4]);
  const cfg = JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8'));
  assert.is(cfg.peft_type, 'LORA');
  assert.is(cfg.r, 4);
  const st = parseSafetensors(new Uint8Array(readFileSync(join(adapter, 'adapter_model.safetensors'))));
  const names = st.tensors.map((t) => t.name);
  assert.ok(names.includes('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'));
  assert.ok(names.includes('base_model.model.model.layers.4.mlp.down_proj.lora_B.weight'));
  assert.is(names.length, 5 * 4 * 2);
});

test('reloading the adapter in a fresh process gives the identical eval loss', async () => {
  const fresh = lossOf(cli(['eval', '--model', STORIES_GGUF, '--adapter', adapter, ...evalArgs]));
  // The same evaluation in this process through the library API.
  const ckpt = await loadCheckpoint(STORIES_GGUF);
  const model = new AdaptedModel(ckpt);
  loadPeft(model, 'default', { config: readFileSync(join(adapter, 'adapter_config.json'), 'utf8'), weights: new Uint8Array(readFileSync(join(adapter, 'adapter_model.safetensors'))) });
  const tok = createTokenizer(ckpt.tokenizer!);
  const seqs = paragraphs(readFileSync(TINYSTORIES_VAL, 'utf8')).slice(0, 6).map((p) => tok.encode(p, { bos: true }).slice(0, 49));
  const rt = model.runtime(createJsBackend());
  const here = (await rt.evalLoss(seqs)).loss;
  assert.is(here, fresh);
  const base = lossOf(cli(['eval', '--model', STORIES_GGUF, ...evalArgs]));
  assert.ok(Math.abs(base - fresh) > 1e-4, 'the adapter should change the loss');
});

test('merged model (safetensors, HF layout; and GGUF) has the adapter\'s eval loss within 1e-4', () => {
  const withAdapter = lossOf(cli(['eval', '--model', STORIES_GGUF, '--adapter', adapter, ...evalArgs]));
  const m = cli(['merge', '--model', STORIES_GGUF, '--adapter', adapter, '--out', merged]);
  assert.is(m.code, 0, m.stderr);
  const viaSafetensors = lossOf(cli(['eval', '--model', merged, ...evalArgs]));
  const viaGguf = lossOf(cli(['eval', '--model', join(merged, 'model.gguf'), ...evalArgs]));
  assert.ok(Math.abs(viaSafetensors - withAdapter) < 1e-4, `${viaSafetensors} vs ${withAdapter}`);
  assert.ok(Math.abs(viaGguf - withAdapter) < 1e-4, `${viaGguf} vs ${withAdapter}`);
  const cfg = JSON.parse(readFileSync(join(merged, 'config.json'), 'utf8'));
  assert.is(cfg.model_type, 'llama');
});

test('a corrupt or mismatched adapter folder is refused with the file named', () => {
  const r = cli(['eval', '--model', STORIES_GGUF, '--adapter', dir, ...evalArgs]);
  assert.is(r.code, 1);
  assert.match(r.stderr, /not a PEFT adapter folder \(missing adapter_config\.json\)/);
});

test.run();
