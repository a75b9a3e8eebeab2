// Proxy-tuning (src/decoding/proxy.ts): with α = 0 the output is the base model's own greedy decoding; with
// the anti-expert equal to the base, base + (expert − base) is the expert, so the output is the expert's own
// greedy decoding (both compared token for token with LlamaRuntime.generate, an independent loop); models
// that do not share a tokenizer, and adapters that add positions, are refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { createJsBackend } from '../../src/backends/js/index.js';
import { proxyGenerate } from '../../src/decoding/proxy.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { randomizeParams, stories } from '../methods/helpers.js';

async function models() {
  const ckpt = await stories();
  const backend = createJsBackend();
  const tuned = new AdaptedModel(ckpt);
  tuned.addAdapter('e', 'lora', { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'] }, { seed: 3 });
  randomizeParams(tuned, 'e', 0.3);
  return { ckpt, backend, base: new LlamaRuntime(ckpt, backend), expert: tuned.runtime(backend), anti: new LlamaRuntime(ckpt, backend) };
}
const prompt = [1, 403, 407, 261];

test('α = 0 decodes the base alone; anti-expert = base decodes the expert', async () => {
  const { ckpt, backend, base, expert, anti } = await models();
  const plain = await new LlamaRuntime(ckpt, backend).generate(prompt, { maxTokens: 24 });
  assert.equal(await proxyGenerate(base, expert, anti, prompt, { maxTokens: 24, alpha: 0 }), plain);
  const tuned = await expert.generate(prompt, { maxTokens: 24 });
  assert.not.equal(tuned, plain, 'the expert decodes differently from the base, so the check can tell them apart');
  assert.equal(await proxyGenerate(base, expert, anti, prompt, { maxTokens: 24, alpha: 1 }), tuned);
});

test('models without one tokenizer, and adapters that add positions, are refused', async () => {
  const { ckpt, backend, base, expert } = await models();
  const bigger = new LlamaRuntime({ ...ckpt, config: { ...ckpt.config, vocabSize: ckpt.config.vocabSize + 1 } }, backend);
  try { await proxyGenerate(base, expert, bigger, prompt, { maxTokens: 2 }); assert.unreachable(); } catch (e) { assert.match((e as Error).message, /anti-expert has 513 tokens in its vocabulary, the base 512/); }
  const tokens = [...ckpt.tokenizer!.tokens];
  tokens[7] = 'x';
  const renamed = new LlamaRuntime({ ...ckpt, tokenizer: { ...ckpt.tokenizer!, tokens } }, backend);
  try { await proxyGenerate(base, renamed, base, prompt, { maxTokens: 2 }); assert.unreachable(); } catch (e) { assert.match((e as Error).message, /the proxy expert's token 7 is "x"/); }
  const prompted = new AdaptedModel(ckpt);
  prompted.addAdapter('p', 'prompt-tuning', { numVirtualTokens: 4 }, { seed: 1 });
  try { await proxyGenerate(base, prompted.runtime(backend), base, prompt, { maxTokens: 2 }); assert.unreachable(); } catch (e) { assert.match((e as Error).message, /adapters that add positions/); }
});

test.run();
