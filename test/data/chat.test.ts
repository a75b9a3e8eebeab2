// Chat templates: exact renderings in three families' styles, the loss mask on assistant turns, errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chatExample, DataError, jsonlExamples } from '../../src/data/dataset.js';
import { ChatTemplate, chatTemplateFor, chatTemplateSource, endOfTurnIds, SpecialSplitter } from '../../src/tokenizer/index.js';
import { CHATML, chatTokenizer, GEMMA, LLAMA3 } from './chat-fixtures.js';

const qwen = chatTokenizer({ eos_token: '<|im_end|>', chat_template: CHATML });
const llama = chatTokenizer({ bos_token: '<|begin_of_text|>', eos_token: '<|eot_id|>', chat_template: [{ name: 'tool_use', template: 'x' }, { name: 'default', template: LLAMA3 }] });
const gemma = chatTokenizer({ bos_token: '<bos>', eos_token: '<eos>', chat_template: GEMMA });
const conv = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hello' },
  { role: 'assistant', content: 'Hello the world' },
  { role: 'user', content: 'us' },
  { role: 'assistant', content: 'ass' },
];
const id = (t: { data: { tokens: string[] } }, s: string): number => t.data.tokens.indexOf(s);
/** Positions whose flag is 1, as the ids there. */
const targets = (e: { ids: number[]; target: Uint8Array }): number[] => e.ids.filter((_, i) => e.target[i] === 1);

test('renderings equal the expected text exactly (ChatML, Llama-3 "default" from a list, Gemma), with and without the generation prompt', () => {
  const t = chatTemplateFor(qwen.data);
  assert.is(t.render(conv.slice(0, 3)), '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHello the world<|im_end|>\n');
  assert.is(t.render(conv.slice(1, 2), true), '<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n');
  assert.is(chatTemplateFor(llama.data).render(conv.slice(0, 2), true),
    '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n');
  assert.is(chatTemplateFor(gemma.data).render(conv.slice(1, 3)), '<bos><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\nHello the world<end_of_turn>\n');
});

test('special tokens in rendered text map to their ids, as the tokenizer\'s own added-token split gives them', () => {
  for (const t of [qwen, llama, gemma]) {
    const text = chatTemplateFor(t.data).render(conv.slice(1));
    assert.equal(new SpecialSplitter(t.data).encode(text, t.tok), t.tok.encode(text, { bos: false }));
  }
  const ids = new SpecialSplitter(qwen.data).encode('<|im_start|>user', qwen.tok);
  assert.equal(ids, [id(qwen, '<|im_start|>'), ...qwen.tok.encode('user', { bos: false })]);
  assert.ok(ids.every((i) => i !== id(qwen, '<'))); // not split as characters
});

test('segments are tokenised apart at the assistant spans: the prompt part equals what generate --chat encodes', () => {
  // ChatML: the cut falls after "\n" following a word, so the segments give the whole text's ids.
  const q = chatExample(conv, { template: chatTemplateFor(qwen.data), data: qwen.data }, qwen.tok, 4096, 'x');
  assert.equal(q.ids, qwen.tok.encode(chatTemplateFor(qwen.data).render(conv), { bos: false }));
  // Llama-3: the generation prompt ends in "\n\n", one merged token on its own; in the whole text the
  // pre-tokenizer splits "\n\nHello" as "\n" "\n" "Hello". The example keeps the prompt's own ids, the
  // ones the model sees when it answers that prompt.
  const t = chatTemplateFor(llama.data), msgs = conv.slice(1, 3);
  const l = chatExample(msgs, { template: t, data: llama.data }, llama.tok, 4096, 'x');
  const prompt = llama.tok.encode(t.render(msgs.slice(0, 1), true), { bos: false });
  assert.equal(l.ids, [...prompt, ...llama.tok.encode('Hello the world', { bos: false }), id(llama, '<|eot_id|>')]);
  assert.is(prompt.at(-1), id(llama, 'ĊĊ'));
  assert.not.equal(l.ids, llama.tok.encode(t.render(msgs), { bos: false }));
});

test('ChatML, multi-turn with a system message: targets are exactly each assistant content, <|im_end|> and the newline after it', () => {
  const e = chatExample(conv, { template: chatTemplateFor(qwen.data), data: qwen.data }, qwen.tok, 4096, 'x');
  const enc = (s: string) => qwen.tok.encode(s, { bos: false });
  const end = id(qwen, '<|im_end|>');
  assert.equal(targets(e), [...enc('Hello the world'), end, ...enc('\n'), ...enc('ass'), end, ...enc('\n')]);
  // The masked prefix is exactly the rendering of everything before the first answer, with the generation prompt.
  const first = e.target.indexOf(1);
  assert.is(qwen.tok.decode(e.ids.slice(0, first), { special: true }), chatTemplateFor(qwen.data).render(conv.slice(0, 2), true));
});

test('Llama-3 header style: targets are the content and <|eot_id|>; Gemma: the content, <end_of_turn> and newline', () => {
  const l = chatExample(conv.slice(0, 3), { template: chatTemplateFor(llama.data), data: llama.data }, llama.tok, 4096, 'x');
  assert.equal(targets(l), [...llama.tok.encode('Hello the world', { bos: false }), id(llama, '<|eot_id|>')]);
  assert.is(l.ids[0], id(llama, '<|begin_of_text|>'));
  const g = chatExample(conv.slice(1), { template: chatTemplateFor(gemma.data), data: gemma.data }, gemma.tok, 4096, 'x');
  const enc = (s: string) => gemma.tok.encode(s, { bos: false });
  assert.equal(targets(g), [...enc('Hello the world'), id(gemma, '<end_of_turn>'), ...enc('\n'), ...enc('ass'), id(gemma, '<end_of_turn>'), ...enc('\n')]);
});

test('JSONL messages lines: errors name file:line (bad JSON, rejected role, Gemma system, no template, no assistant)', () => {
  const chat = { template: chatTemplateFor(qwen.data), data: qwen.data };
  const ok = JSON.stringify({ messages: conv.slice(1, 3) });
  assert.is(jsonlExamples(`${ok}\n\n${ok}\n`, 'c.jsonl', qwen.tok, 256, chat).length, 2);
  assert.throws(() => jsonlExamples(`${ok}\n{"messages": [\n`, 'c.jsonl', qwen.tok, 256, chat), (e: Error) => e instanceof DataError && /^c\.jsonl:2: not valid JSON/.test(e.message));
  const tool = JSON.stringify({ messages: [{ role: 'tool', content: 'x' }, { role: 'assistant', content: 'y' }] });
  assert.throws(() => jsonlExamples(`${ok}\n${ok}\n${tool}\n`, 'c.jsonl', qwen.tok, 256, chat), /^c\.jsonl:3: .*Unknown role: tool/);
  assert.throws(() => jsonlExamples(JSON.stringify({ messages: conv }), 'g.jsonl', gemma.tok, 256, { template: chatTemplateFor(gemma.data), data: gemma.data }), /^g\.jsonl:1: .*System role not supported/);
  const bare = chatTokenizer({});
  assert.throws(() => jsonlExamples(ok, 'n.jsonl', bare.tok, 256, { data: bare.data }), /n\.jsonl:1: "messages" data needs a chat template, but tok\/tokenizer\.json has no chat template .*--chat-template FILE/);
  assert.throws(() => chatTemplateFor(bare.data), /has no chat template/);
  assert.throws(() => jsonlExamples(JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }), 'u.jsonl', qwen.tok, 256, chat), /u\.jsonl:1: no assistant message/);
  assert.throws(() => jsonlExamples('{"messages": [{"role": "user"}]}', 'm.jsonl', qwen.tok, 256, chat), /m\.jsonl:1: messages\[0\] must be \{"role": string, "content": string\}/);
});

test('chat_template values: a list without "default" and a non-string are errors; end-of-turn ids include the template\'s turn token', () => {
  assert.throws(() => chatTemplateSource([{ name: 'rag', template: 'x' }], 'cfg'), /no "default" template/);
  assert.throws(() => chatTemplateSource(3, 'cfg'), /chat_template is number/);
  assert.equal(endOfTurnIds(qwen.data, chatTemplateFor(qwen.data)), [id(qwen, '<|im_end|>')]);
  assert.equal(new Set(endOfTurnIds(gemma.data, chatTemplateFor(gemma.data))), new Set([id(gemma, '<eos>'), id(gemma, '<end_of_turn>')]));
  assert.throws(() => new ChatTemplate('{% for %}', qwen.data, 'bad.jinja'), /bad\.jinja: cannot parse/);
});

test('truncation to maxLen keeps the mask aligned with the ids', () => {
  const e = chatExample(conv, { template: chatTemplateFor(qwen.data), data: qwen.data }, qwen.tok, 20, 'x');
  assert.is(e.ids.length, 21);
  assert.is(e.target.length, 21);
});

test.run();
