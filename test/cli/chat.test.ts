// Chat templates through the CLI and the file formats: generate --chat, training on chat JSONL, templates
// carried by GGUF metadata and tokenizer_config.json, and clear errors when a model has none.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chatPrompt } from '../../src/cli/commands.js';
import { loadCheckpoint } from '../../src/formats/checkpoint.js';
import { checkpointToGguf } from '../../src/formats/gguf-llama.js';
import { ChatTemplate, createTokenizer, tokenizerConfigJson, tokenizerDataFromHfJson } from '../../src/tokenizer/index.js';
import { STORIES_BIN, STORIES_GGUF } from '../assets.js';
import { CHATML, chatTokenizerJson } from '../data/chat-fixtures.js';
import { cli } from './run.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-chat-'));
// A plain-text template for the TinyStories model, whose vocabulary has only <s> and </s> as special tokens.
const STORY = "{{ bos_token }}{%- for m in messages %}{%- if m.role == 'user' %}{{ 'Q: ' + m.content + '\\n' }}"
  + "{%- elif m.role == 'assistant' %}{{ 'A:' + m.content + eos_token }}{%- else %}{{ raise_exception('Unknown role: ' + m.role) }}{%- endif %}{%- endfor %}"
  + "{%- if add_generation_prompt %}{{ 'A:' }}{%- endif %}";
const templateFile = join(dir, 'story.jinja');
writeFileSync(templateFile, STORY);
const ckpt = await loadCheckpoint(STORIES_GGUF);
const data = ckpt.tokenizer!, tok = createTokenizer(data);

test('generate --chat prompt: the template rendered with the generation prompt, <s> as its id, stopping at </s>', async () => {
  const p = chatPrompt(new ChatTemplate(STORY, data), data, tok, 'Who is Lily?');
  assert.is(p.rendered, '<s>Q: Who is Lily?\nA:');
  assert.equal(p.ids, [data.bosId!, ...tok.encode('Q: Who is Lily?\nA:', { bos: false })]);
  assert.equal(p.stops, [data.eosId!]);
  // A llama2.c vocabulary stores BOS as "\n<s>\n": the template still sees "<s>", which maps to its id.
  const bin = (await loadCheckpoint(STORIES_BIN)).tokenizer!;
  const q = chatPrompt(new ChatTemplate(STORY, bin), bin, createTokenizer(bin), 'Who is Lily?');
  assert.is(q.rendered, '<s>Q: Who is Lily?\nA:');
  assert.equal(q.ids, p.ids);
});

test('a model without a template: generate --chat and training on messages data fail first, naming the missing template', () => {
  const g = cli(['generate', '--model', STORIES_GGUF, '--chat', '--prompt', 'hi', '--backend', 'js']);
  assert.is.not(g.code, 0);
  assert.match(g.stderr, /stories260K\.gguf has no chat template .*--chat-template FILE/);
  const jsonl = join(dir, 'one.jsonl');
  writeFileSync(jsonl, `${JSON.stringify({ messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }] })}\n`);
  const t = cli(['train', '--model', STORIES_GGUF, '--data', jsonl, '--steps', '1', '--backend', 'js', '--out', join(dir, 'no')]);
  assert.is.not(t.code, 0);
  assert.match(t.stderr, /one\.jsonl:1: "messages" data needs a chat template/);
});

test('generate --chat --chat-template FILE runs and prints only the answer', () => {
  const r = cli(['generate', '--model', STORIES_GGUF, '--chat', '--chat-template', templateFile, '--prompt', 'Who is Lily?', '--max-tokens', '8', '--backend', 'js']);
  assert.is(r.code, 0, r.stderr);
  assert.not.match(r.stdout, /Q: Who is Lily/);
});

test('training on chat JSONL (wasm backend, 12 steps): the loss on the assistant turns decreases', () => {
  const lines = [];
  for (let i = 0; i < 16; i++) {
    const name = ['Tom', 'Ben', 'Sue', 'Max'][i % 4]!;
    lines.push(JSON.stringify({ messages: [{ role: 'user', content: `What is the dog called? ${i}` }, { role: 'assistant', content: ` The dog is called ${name}. He likes to run.` }] }));
  }
  const jsonl = join(dir, 'chat.jsonl');
  writeFileSync(jsonl, `${lines.join('\n')}\n`);
  const r = cli(['train', '--model', STORIES_GGUF, '--data', jsonl, '--chat-template', templateFile, '--steps', '12', '--batch', '2', '--seq', '64', '--lr', '0.01', '--backend', 'wasm', '--json', '--out', join(dir, 'out')]);
  assert.is(r.code, 0, r.stderr);
  const losses = r.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.loss !== undefined && e.step !== undefined).map((e) => e.loss as number);
  assert.is(losses.length, 12);
  const mean = (a: number[]) => a.reduce((s, x) => s + x, 0) / a.length;
  assert.ok(mean(losses.slice(-3)) < 0.8 * mean(losses.slice(0, 3)), `losses ${losses.map((x) => x.toFixed(3)).join(' ')}`);
});

test('templates travel in GGUF metadata (tokenizer.chat_template) and tokenizer_config.json (chat_template)', async () => {
  const path = join(dir, 'with-template.gguf');
  writeFileSync(path, checkpointToGguf({ ...ckpt, tokenizer: { ...data, chatTemplate: STORY } }, { modelName: 'stories' }));
  assert.is((await loadCheckpoint(path)).tokenizer!.chatTemplate, STORY);
  assert.match(cli(['info', '--model', path, '--backend', 'js']).stdout, new RegExp(`chat template: ${STORY.length} characters`));
  assert.match(cli(['info', '--model', STORIES_GGUF, '--backend', 'js']).stdout, /chat template: none \(generate --chat and messages data need --chat-template FILE\)/);
  const bad = join(dir, 'bad.jinja');
  writeFileSync(bad, '{% for m in messages %}');
  const t = cli(['train', '--model', STORIES_GGUF, '--chat-template', bad, '--steps', '1', '--backend', 'js', '--out', join(dir, 'bad')]);
  assert.is.not(t.code, 0);
  assert.match(t.stderr, /bad\.jinja: cannot parse the Jinja template/);
  assert.is(tokenizerConfigJson({ ...data, chatTemplate: STORY }).chat_template, STORY);
  assert.is(tokenizerDataFromHfJson(chatTokenizerJson(), 't.json', { chat_template: CHATML }).chatTemplate, CHATML);
  assert.is(tokenizerDataFromHfJson(chatTokenizerJson(), 't.json', {}).chatTemplate, undefined);
});

test('merge onto a GGUF with a template writes a Hugging Face folder whose tokenizer_config.json gives generate --chat its template', async () => {
  const folder = join(dir, 'merged');
  const m = cli(['merge', '--model', join(dir, 'with-template.gguf'), '--adapter', join(dir, 'out'), '--format', 'safetensors', '--out', folder]);
  assert.is(m.code, 0, m.stderr);
  assert.is((await loadCheckpoint(folder)).tokenizer!.chatTemplate, STORY);
  const g = cli(['generate', '--model', folder, '--chat', '--prompt', 'What is the dog called? 3', '--max-tokens', '12', '--backend', 'js']);
  assert.is(g.code, 0, g.stderr);
  // The tuned answer's wording. (This base model never saw </s> in pretraining and its LoRA-tuned copy does not
  // learn to emit it in a few steps, so the stop at the end-of-turn token is checked on the prompt's stop ids.)
  assert.match(g.stdout, /The dog is called/);
});

test.run();
