// `adaptkit generate --proxy-expert --proxy-anti --proxy-alpha` as users run it: with the base as the
// anti-expert and an adapter folder as the expert, the text is the adapted model's own (--adapter); with
// α = 0 it is the base's; one of the pair alone is refused.
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdaptedModel } from '../../src/adapters/adapted-model.js';
import { savePeft } from '../../src/adapters/peft.js';
import { loadCheckpoint } from '../../src/formats/checkpoint.js';
import { randomizeParams } from '../methods/helpers.js';
import { STORIES_GGUF } from '../assets.js';
import { cli } from './run.js';

const dir = mkdtempSync(join(tmpdir(), 'adaptkit-proxy-'));

test('proxy-tuning from the command line', async () => {
  const model = new AdaptedModel(await loadCheckpoint(STORIES_GGUF));
  model.addAdapter('default', 'lora', { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'] }, { seed: 3 });
  randomizeParams(model, 'default', 0.3);
  const files = savePeft(model, 'default', { baseModel: STORIES_GGUF });
  const adapter = join(dir, 'expert');
  mkdirSync(adapter);
  writeFileSync(join(adapter, 'adapter_config.json'), files.config);
  writeFileSync(join(adapter, 'adapter_model.safetensors'), files.weights);
  const base = ['generate', '--model', STORIES_GGUF, '--prompt', 'Once upon a time', '--max-tokens', '20', '--backend', 'wasm'];
  const plain = cli(base), adapted = cli([...base, '--adapter', adapter]);
  assert.is(plain.code, 0, plain.stderr);
  assert.is.not(adapted.stdout, plain.stdout, 'the adapter changes the text, so the checks can fail');
  const proxied = cli([...base, '--proxy-expert', adapter, '--proxy-anti', STORIES_GGUF]);
  assert.is(proxied.code, 0, proxied.stderr);
  assert.is(proxied.stdout, adapted.stdout);
  assert.is(cli([...base, '--proxy-expert', adapter, '--proxy-anti', STORIES_GGUF, '--proxy-alpha', '0']).stdout, plain.stdout);
  const alone = cli([...base, '--proxy-expert', adapter]);
  assert.is.not(alone.code, 0);
  assert.match(alone.stderr, /needs both --proxy-expert and --proxy-anti/);
});

test.run();
