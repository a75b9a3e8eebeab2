/** A planted data set for the selectors: exact duplicates, trivially easy examples and random-token ones. */
import { rng } from '../../src/select/common/index.js';

const STORY = 'Once upon a time, there was a little girl named Lily. She liked to play in the park with her dog.';

export interface Planted {
  lines: string[];
  /** Indices (0-based) of each kind. */
  easy: number[];
  hard: number[];
  dup: number[][];
  normal: number[];
}

export function randomText(seed: number, words: number): string {
  const r = rng(seed);
  return Array.from({ length: words }, () => Array.from({ length: 3 + Math.floor(r() * 4) }, () => 'bcdfghjkmnpqvwxz'[Math.floor(r() * 16)]).join('')).join(' ');
}

export function planted(): Planted {
  const normal = [
    { prompt: 'Tom saw a big tree.', completion: ' He wanted to climb it, but his mom said no.' },
    { prompt: 'The sun was warm.', completion: ' Sue and Ben went to the beach to build a castle.' },
    { prompt: 'Max had a red ball.', completion: ' He threw it to his friend, and they laughed.' },
    { prompt: 'Anna found a small cat.', completion: ' The cat was hungry, so she gave it some milk.' },
    { prompt: 'One day, a bird sat on the roof.', completion: ' It sang a happy song for everyone.' },
  ];
  const easy = [0, 1].map(() => ({ prompt: STORY, completion: ` ${STORY}` }));
  easy[1] = { prompt: `${STORY} ${STORY}`, completion: ` ${STORY}` };
  const hard = [1, 2, 3].map((s) => ({ prompt: 'Once upon a time,', completion: ` ${randomText(s, 8)}` }));
  const rows = [normal[0], hard[0], normal[1], easy[0], normal[2], normal[0], hard[1], normal[3], easy[1], normal[4], hard[2], normal[2]];
  const lines = rows.map((r) => JSON.stringify(r));
  return { lines, easy: [3, 8], hard: [1, 6, 10], dup: [[0, 5], [4, 11]], normal: [2, 7, 9] };
}
