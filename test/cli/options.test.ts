// Options that are checked: every bad value is refused before any work with a message that names the
// option, a non-zero exit, and no output written; the library entry points (fineTune, generate,
// evalTargets) check the same ranges; generate says when the model's context ends it.
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { createBackend } from '../../src/scheduler/backends.js';
import { main } from '../../src/cli/commands.js';
import { textExamples, pack } from '../../src/data/dataset.js';
import { loadCheckpoint } from '../../src/formats/checkpoint.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { createTokenizer } from '../../src/tokenizer/index.js';
import { fineTune } from '../../src/train/finetune.js';
import { STORIES_BIN, STORIES_GGUF, STORIES_TOK, TINYSTORIES_VAL } from '../assets.js';
import { cli } from './run.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-options-'));
const notJson = join(dir, 'tokenizer.json');
writeFileSync(notJson, 'this is not JSON');
const aFolder = join(dir, 'a-folder');
mkdirSync(aFolder);
const emptyData = join(dir, 'empty.jsonl');
writeFileSync(emptyData, '{"text": ""}\n{"text": ""}\n{"text": ""}\n');
const out = join(dir, 'out');

/** Run the command in this process, capturing stderr and stdout. */
async function run(args: string[]): Promise<{ code: number; stderr: string; stdout: string }> {
  const saved = [process.stderr.write, process.stdout.write];
  let stderr = '', stdout = '';
  process.stderr.write = ((s: string) => { stderr += s; return true; }) as typeof process.stderr.write;
  process.stdout.write = ((s: string) => { stdout += s; return true; }) as typeof process.stdout.write;
  try {
    return { code: await main(args), stderr, stdout };
  } finally {
    [process.stderr.write, process.stdout.write] = saved as [typeof process.stderr.write, typeof process.stdout.write];
  }
}

const train = ['train', '--model', STORIES_GGUF, '--backend', 'js', '--steps', '2', '--batch', '2', '--seq', '16', '--out', out];
const generate = ['generate', '--model', STORIES_GGUF, '--backend', 'js', '--max-tokens', '4'];
const evaluate = ['eval', '--model', STORIES_GGUF, '--data', TINYSTORIES_VAL, '--backend', 'js', '--paragraphs', '2'];

// [command line, what the error must say]
const cases: [string[], RegExp][] = [
  [[...train, '--batch', '0'], /--batch must be an integer ≥ 1 \(got 0\)/],
  [[...train, '--batch', '-2'], /--batch must be an integer ≥ 1 \(got -2\)/],
  [[...train, '--seq', '0'], /--seq must be an integer ≥ 1 \(got 0\)/],
  [[...train, '--seq', '-4'], /--seq must be an integer ≥ 1 \(got -4\)/],
  [[...train, '--steps', '0'], /--steps must be an integer ≥ 1/],
  [[...train, '--steps', '-5'], /--steps must be an integer ≥ 1/],
  [[...train, '--lr', '0'], /--lr must be a number in \(0, 1\] \(got 0\)/],
  [[...train, '--lr', '-0.01'], /--lr must be a number in \(0, 1\]/],
  [[...train, '--lr', '1e10'], /--lr must be a number in \(0, 1\] \(got 10000000000\)/],
  [[...train, '--warmup', '-1'], /--warmup must be an integer ≥ 0/],
  [[...train, '--decay', 'foo'], /--decay must be one of cosine, linear, constant \(got 'foo'\)/],
  [[...train, '--checkpoint-every', '-1'], /--checkpoint-every must be an integer ≥ 0/],
  [[...train, '--eval-every', '-2'], /--eval-every must be an integer ≥ 0/],
  [[...train, '--accumulate', '0'], /--accumulate must be an integer ≥ 1/],
  [[...train, '--dropout', '1'], /--dropout must be a number in \[0, 1\)/],
  [[...train, '--alpha', '0'], /--alpha must be a number > 0/],
  [[...train, '--weight-decay', '-1'], /--weight-decay must be a number ≥ 0/],
  [[...train, '--max-grad-norm', '-1'], /--max-grad-norm must be a number ≥ 0/],
  [[...train, '--init', 'zeros'], /--init must be one of default, gaussian, pissa/],
  [[...train, '--threads', '0'], /--threads must be an integer in \[1, 256\]/],
  [[...train, '--backend', 'quantum'], /--backend must be one of auto, webgpu, wasm, js \(got 'quantum'\)/],
  [[...train, '--rank', '33'], /--rank 33: exceeds 32, the smaller dimension of model\.layers\.0\.self_attn\.k_proj \(64 → 32\)/],
  [[...train, '--seq', '4096'], /--seq 4096: exceeds the model's context of 2048 tokens/],
  [[...train, '--method', 'prompt', '--seq', '2040'], /--seq 2040: plus 20 virtual tokens exceeds the model's context of 2048/],
  [[...train, '--layers', '99'], /--layers 99: '99' is not a layer of this model \(it has 5: 0 to 4\)/],
  [[...train, '--layers', '1,x'], /--layers 1,x: 'x' is not a layer/],
  [[...train, '--tokenizer', notJson], /--tokenizer .*tokenizer\.json: not valid JSON/],
  [[...train, '--tokenizer', aFolder], /--tokenizer .*a-folder: is a folder, expected a file/],
  [[...train, '--data', aFolder], /--data .*a-folder: is a folder, expected a file/],
  [[...train, '--data', join(dir, 'nope.txt')], /--data .*nope\.txt: no such file/],
  [[...train, '--data', emptyData], /--data .*empty\.jsonl: none of its 3 examples has a token to predict/],
  [[...train, '--method', 'adalora', '--tinit', '-1'], /adalora: option 'tinit' must be an integer ≥ 0/],
  [[...generate, '--temperature', '-1'], /--temperature must be a number ≥ 0 \(got -1\)/],
  [[...generate, '--top-p', '2'], /--top-p must be a number in \(0, 1\] \(got 2\)/],
  [[...generate, '--top-k', '-3'], /--top-k must be an integer ≥ 0 \(got -3\)/],
  [[...generate, '--max-tokens', '0'], /--max-tokens must be an integer ≥ 1/],
  [[...generate, '--repetition-penalty', '0'], /--repetition-penalty must be a number > 0/],
  [[...generate, '--mirostat', '-2'], /--mirostat must be a number > 0/],
  [[...generate, '--adapter', notJson], /--adapter .*tokenizer\.json: is a file, expected a folder/],
  [[...evaluate, '--max-tokens', '0'], /--max-tokens must be an integer ≥ 1/],
  [[...evaluate, '--max-tokens', '2048'], /--max-tokens 2048: with BOS exceeds the model's context of 2048 tokens/],
  [[...evaluate, '--batch', '0'], /--batch must be an integer ≥ 1 \(got 0\)/],
  [[...evaluate, '--paragraphs', '0'], /--paragraphs must be an integer ≥ 1/],
  [['merge', '--model', STORIES_GGUF, '--adapter', aFolder, '--out', out, '--format', 'zip'], /--format must be one of safetensors, gguf, both/],
  [['quickstart', '--steps', '0', '--out', out], /--steps must be an integer ≥ 1/],
];

for (const [args, message] of cases) {
  const base = [train, generate, evaluate].find((b) => b.every((x, i) => args[i] === x));
  test(`${args[0]} ${args.slice(base?.length ?? 1).join(' ')}: refused, naming the option, nothing written`, async () => {
    const r = await run(args);
    assert.is.not(r.code, 0);
    assert.match(r.stderr, message);
    assert.not.match(r.stderr, /backend: |data: |train \d/, 'no work started');
    assert.equal(readdirSync(dir).sort(), ['a-folder', 'empty.jsonl', 'tokenizer.json'], 'no output written');
  });
}

test('eval --batch 0 in a fresh process ends at once (it used to spin forever)', () => {
  const r = cli([...evaluate, '--batch', '0']);
  assert.is(r.code, 2);
  assert.match(r.stderr, /--batch must be an integer ≥ 1/);
});

test('library entry points check the same ranges and name the option', async () => {
  const ckpt = await loadCheckpoint(STORIES_GGUF);
  const tok = createTokenizer(ckpt.tokenizer!);
  const { backend } = await createBackend('js');
  const model = new AdaptedModel(ckpt);
  model.addAdapter('default', 'prefix-tuning', { numVirtualTokens: 4 }, { seed: 1 });
  const data = pack(textExamples(['Once upon a time there was a cat.'], tok, 16), 16);
  const rejects = async (p: Promise<unknown>, re: RegExp) => {
    try { await p; } catch (e) { assert.match((e as Error).message, re); return; }
    assert.unreachable(`expected ${re}`);
  };
  const base = { model, adapter: 'default', backend, data, steps: 1, batch: 1 };
  await rejects(fineTune({ ...base, steps: 0 }), /fineTune: option 'steps' must be an integer ≥ 1 \(got 0\)/);
  await rejects(fineTune({ ...base, batch: -2 }), /fineTune: option 'batch' must be an integer ≥ 1/);
  await rejects(fineTune({ ...base, lr: 1e10 }), /fineTune: option 'lr' must be a number in \(0, 1\]/);
  await rejects(fineTune({ ...base, decay: 'foo' as 'cosine' }), /fineTune: option 'decay' must be one of cosine, linear, constant/);
  await rejects(fineTune({ ...base, warmup: -1 }), /fineTune: option 'warmup' must be an integer ≥ 0/);
  await rejects(fineTune({ ...base, data: pack(textExamples([''], tok, 16), 16) }), /fineTune: the training data has no token to predict/);
  const long = pack(textExamples(['x'], tok, 2046), 2046);
  await rejects(fineTune({ ...base, data: long }), /fineTune: rows of 2046 tokens plus 4 adapter positions exceed the model's context of 2048 \(pack the data with seq ≤ 2044\)/);
  const rt = new LlamaRuntime(ckpt, backend);
  await rejects(rt.generate([1], { topP: 2 }), /generate: option 'topP' must be a number in \(0, 1\]/);
  await rejects(rt.generate([1], { temperature: -1 }), /generate: option 'temperature' must be a number ≥ 0/);
  await rejects(rt.generate([1], { maxTokens: 0 }), /generate: option 'maxTokens' must be an integer ≥ 1/);
  await rejects(rt.evalTargets([[1, 2]], [[2, 3]], { batch: 0 }), /evalTargets: option 'batch' must be an integer ≥ 1/);
  rt.dispose();
  backend.dispose();
});

test('generate that reaches the end of the context says so on stderr; one that stops by itself does not', () => {
  // The llama2.c file's context is 512 tokens: a 502-token prompt leaves room for 10.
  const prompt = 'the cat sat on the mat and '.repeat(50);
  const r = cli(['generate', '--model', STORIES_BIN, '--tokenizer', STORIES_TOK, '--prompt', prompt, '--max-tokens', '100', '--backend', 'js']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /generate: stopped at the model's context length \(512 positions\) before --max-tokens 100/);
  const short = cli(['generate', '--model', STORIES_BIN, '--tokenizer', STORIES_TOK, '--max-tokens', '20', '--backend', 'js']);
  assert.is(short.code, 0, short.stderr);
  assert.not.match(short.stderr, /context length/);
});

test.run();
