// `adaptkit generate --draft trigram --draft-corpus FILE` as users run it: the text equals plain greedy
// generation's, --draft-stats reports several tokens per pass, and options it cannot honour are refused by
// name before any work.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { STORIES_GGUF } from '../assets.js';
import { cli } from './run.js';

const CORPUS = '../shared/assets/data/tinystories/tinystories_val.txt';
const base = ['generate', '--model', STORIES_GGUF, '--prompt', 'Once upon a time', '--max-tokens', '48', '--backend', 'wasm'];

test('the drafted text is greedy generation\'s, in fewer passes', () => {
  const plain = cli(base);
  assert.is(plain.code, 0, plain.stderr);
  const drafted = cli([...base, '--draft', 'trigram', '--draft-corpus', CORPUS, '--draft-depth', '5', '--draft-width', '2', '--draft-stats']);
  assert.is(drafted.code, 0, drafted.stderr);
  assert.is(drafted.stdout, plain.stdout);
  const m = /draft: (\d+) tokens in (\d+) passes/.exec(drafted.stderr);
  assert.ok(m, drafted.stderr);
  assert.ok(Number(m![1]) >= 2 * Number(m![2]), drafted.stderr);
});

test('options draft decoding cannot honour are refused by name', () => {
  const draft = [...base, '--draft', 'trigram', '--draft-corpus', CORPUS];
  for (const [extra, re] of [
    [['--temperature', '0.8'], /--draft does not combine with --temperature > 0/],
    [['--rules'], /--draft does not combine with --rules/],
    [['--draft-width', '0'], /--draft-width must be an integer in \[1, 64\] \(got 0\)/],
  ] as const) {
    const r = cli([...draft, ...extra]);
    assert.is.not(r.code, 0);
    assert.match(r.stderr, re);
  }
  const noCorpus = cli([...base, '--draft', 'trigram']);
  assert.match(noCorpus.stderr, /--draft trigram needs --draft-corpus FILE/);
  const stray = cli([...base, '--draft-corpus', CORPUS]);
  assert.match(stray.stderr, /--draft-corpus needs --draft trigram/);
});

test.run();
