// CPT from the command line, in fresh processes as a user runs it: `train --method cpt` with its documented
// flags writes a folder holding those settings and tensors of those shapes; `eval --adapter` and
// `generate --adapter` apply that folder exactly as the library does when it loads the same files (loss to
// 1e-5 relative, greedy text equal) and differently from the base model; a bad option is refused before any
// file is written.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { loadPeft } from '../../src/adapters/peft.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { STORIES_GGUF, TINYSTORIES_VAL } from '../assets.js';
import { cli } from '../cli/run.js';
import { stories } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-cpt-cli-'));
const out = join(dir, 'adapter');
const text = join(dir, 'held.txt');
// Three held-out stories: eval reads blank-line paragraphs.
writeFileSync(text, readFileSync(TINYSTORIES_VAL, 'utf8').split(/\n\s*\n/).slice(0, 3).join('\n\n'));

const trained = cli(['train', '--model', STORIES_GGUF, '--backend', 'js', '--method', 'cpt', '--cpt-token-ids', '403,407,261,300',
  '--cpt-tokens-type-mask', '1,2,3,4', '--projection-epsilon', '20', '--projection-format-epsilon', '10', '--steps', '6', '--seq', '32', '--lr', '0.05', '--json', '--out', out]);

/** The folder's tensors and their shapes from the safetensors header. */
function shapes(weights: Uint8Array): Record<string, number[]> {
  const n = new DataView(weights.buffer, weights.byteOffset).getUint32(0, true);
  const h = JSON.parse(new TextDecoder().decode(weights.subarray(8, 8 + n))) as Record<string, { shape: number[] }>;
  return Object.fromEntries(Object.entries(h).filter(([k]) => k !== '__metadata__').map(([k, v]) => [k, v.shape]));
}

async function loaded(): Promise<AdaptedModel> {
  const model = new AdaptedModel(await stories());
  loadPeft(model, 'default', { config: readFileSync(join(out, 'adapter_config.json'), 'utf8'), weights: readFileSync(join(out, 'adapter_model.safetensors')) });
  return model;
}

test('train --method cpt writes a PEFT CPT folder with the flags\' settings', () => {
  assert.is(trained.code, 0, trained.stderr);
  const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal([cfg.peft_type, cfg.num_virtual_tokens, cfg.cpt_token_ids, cfg.cpt_tokens_type_mask, cfg.cpt_mask, cfg.opt_projection_epsilon, cfg.opt_projection_format_epsilon],
    ['CPT', 4, [403, 407, 261, 300], [1, 2, 3, 4], [1, 1, 1, 1], 20, 10]);
  assert.equal(shapes(readFileSync(join(out, 'adapter_model.safetensors'))), { prompt_embeddings: [4, 64] });
});

test('eval --adapter gives the library\'s loss for the loaded folder, not the base model\'s', async () => {
  const r = cli(['eval', '--model', STORIES_GGUF, '--backend', 'js', '--data', text, '--json', '--adapter', out]);
  assert.is(r.code, 0, r.stderr);
  const got = JSON.parse(r.stdout.trim().split('\n').pop()!) as { loss: number; tokens: number };
  const model = await loaded();
  const tok = createTokenizer(model.base.tokenizer!);
  const seqs = readFileSync(text, 'utf8').split(/\n\s*\n/).map((p) => tok.encode(p.trim(), { bos: true }).slice(0, 257));
  const loss = async (m: AdaptedModel) => {
    const rt = m.runtime(createJsBackend());
    const res = await rt.evalLoss(seqs);
    rt.dispose();
    return res;
  };
  const lib = await loss(model), base = await loss(new AdaptedModel(model.base));
  assert.is(got.tokens, lib.tokens);
  assert.ok(Math.abs(got.loss - lib.loss) <= 1e-5 * lib.loss, `cli ${got.loss}, library ${lib.loss}`);
  assert.ok(Math.abs(got.loss - base.loss) > 1e-3, `the adapter changes the loss (${base.loss} → ${got.loss})`);
});

test('generate --adapter continues greedily as the library does with the loaded folder', async () => {
  const prompt = 'Once upon a time';
  const r = cli(['generate', '--model', STORIES_GGUF, '--backend', 'js', '--adapter', out, '--prompt', prompt, '--max-tokens', '12']);
  assert.is(r.code, 0, r.stderr);
  const model = await loaded();
  const tok = createTokenizer(model.base.tokenizer!);
  const rt = model.runtime(createJsBackend());
  const ids = await rt.generate(tok.encode(prompt, { bos: true }), { maxTokens: 12 });
  rt.dispose();
  const stream = tok.streamDecoder({ stripLeadingSpace: false });
  assert.is(r.stdout, prompt + ids.map((id) => stream.push(id)).join('') + stream.flush());
});

test('a bad CPT option is refused by name before anything is written', () => {
  const bad = join(dir, 'bad');
  // A context id outside the vocabulary is only known once the model is open: the latest check, still before training.
  const r = cli(['train', '--model', STORIES_GGUF, '--backend', 'js', '--method', 'cpt', '--cpt-token-ids', '3,999999', '--steps', '1', '--out', bad]);
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /context token id 999999 is outside the model's vocabulary/);
  assert.not.ok(existsSync(bad) && existsSync(join(bad, 'adapter_model.safetensors')), 'an adapter was written');
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
