// Rule-based product-of-experts decoding (src/decoding/rules.ts): the rule model's logits by hand for the
// stories260K vocabulary; with every rule off, decoding is the base model's own greedy decoding (token for
// token); the EOS ramp ends responses; the first token starts with a letter.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createJsBackend } from '../../src/backends/js/index.js';
import { RuleModel, rulesGenerate } from '../../src/decoding/rules.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { stories } from '../methods/helpers.js';

const prompt = [1, 403, 407, 261];

test('the rule model: token biases by text, first-token scores, the EOS ramp', async () => {
  const tok = (await stories()).tokenizer!;
  const id = (t: string) => tok.tokens.indexOf(t);
  const r = new RuleModel(tok);
  const [I, The, comma, eos] = [id('▁I'), id('▁The'), id(','), tok.eosId!];
  assert.ok(I > 0 && The > 0 && comma > 0);
  const l5 = r.logits(5), l0 = r.logits(0);
  assert.is(l5[I], -5);
  assert.is(l5[The], 0);
  assert.is(l0[The], 5, 'a first token that is a word: +1 × 5');
  assert.is(l0[comma], -5, 'punctuation first: −1 × 5');
  assert.is(l0[I], -15, '"I" first: −3 × 5');
  assert.ok(Math.abs(r.logits(125)[eos]! - 7.5) < 1e-6, 'halfway up the ramp: 3 · 5 · ½');
  assert.is(r.logits(300)[eos], 15);
  assert.throws(() => new RuleModel(tok, { eosStart: 10, eosEnd: 5 }), /0 ≤ start < end/);
});

test('with every rule off it decodes as the base; the EOS ramp ends the text; the first token is a word', async () => {
  const ckpt = await stories();
  const rt = new LlamaRuntime(ckpt, createJsBackend());
  const plain = await rt.generate(prompt, { maxTokens: 40 });
  const off = new RuleModel(ckpt.tokenizer!, { scale: 0, firstWeight: 0, tokenBiases: {} });
  assert.equal(await rulesGenerate(rt, off, prompt, { maxTokens: 40 }), plain);
  const short = await rulesGenerate(rt, new RuleModel(ckpt.tokenizer!, { eosEnd: 8, scale: 20 }), prompt, { maxTokens: 40 });
  assert.ok(plain.length > 20 && short.length <= 10, `${plain.length} tokens plain, ${short.length} with the ramp`);
  const first = ckpt.tokenizer!.tokens[(await rulesGenerate(rt, new RuleModel(ckpt.tokenizer!, { firstWeight: 50 }), [1], { maxTokens: 1 }))[0]!]!;
  assert.match(first.replace(/^▁/, ''), /^\p{L}/u);
});

test.run();
