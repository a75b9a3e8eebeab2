/**
 * Data preparation benchmark: seconds from opening a text file to its packed rows (read in chunks,
 * tokenised as read, packed first-fit decreasing) for generated text of 10, 50 and 100 MB, with the
 * stories260K tokenizer and seq 256, and the rate per 100 MB, beside the time to read the same file
 * through the same stream doing nothing else (the baseline). The text is written to a temporary file here
 * and removed after.
 */
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pack, streamExamples } from '../src/data/dataset.js';
import { createTokenizer } from '../src/tokenizer/index.js';
import { seededRandom } from '../src/util/random.js';
import { loadStories } from './models.js';

const WORDS = ('once upon a time there was a little girl named lily she liked to play outside with her dog max ' +
  'one day they found a big red ball in the park and ran to get it the sun was warm and happy birds sang').split(' ');

/** About `bytes` of story-like paragraphs (5–120 words each), seeded. */
function corpus(bytes: number, seed: number): string {
  const r = seededRandom(seed), parts: string[] = [];
  let size = 0;
  while (size < bytes) {
    const n = 5 + Math.floor(r() * 116), words: string[] = [];
    for (let i = 0; i < n; i++) words.push(WORDS[Math.floor(r() * WORDS.length)]!);
    const p = `${words.join(' ')}.\n\n`;
    parts.push(p);
    size += p.length;
  }
  return parts.join('');
}

export async function benchData(o: { json: boolean }): Promise<void> {
  const tok = createTokenizer((await loadStories()).tokenizer!);
  const dir = await mkdtemp(join(tmpdir(), 'adaptkit-bench-data-'));
  const seq = 256;
  try {
    for (const mb of [10, 50, 100]) {
      const file = join(dir, `${mb}mb.txt`);
      await writeFile(file, corpus(mb * 1e6, mb));
      // Baseline in the same run: reading the same file through the same stream, doing nothing with it.
      const r0 = performance.now();
      let chars = 0;
      for await (const c of createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 }) as AsyncIterable<string>) chars += c.length;
      const readS = (performance.now() - r0) / 1000;
      const t0 = performance.now();
      const examples = await streamExamples(createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 }) as AsyncIterable<string>, { file, jsonl: false, tok, maxLen: seq });
      const t1 = performance.now();
      const p = pack(examples, seq, 0);
      const t2 = performance.now();
      const s = (t2 - t0) / 1000, per100 = s * 100 / mb;
      console.log(o.json
        ? JSON.stringify({ suite: 'data', mb, chars, examples: examples.length, rows: p.rows, seq, readOnlyS: readS, readTokeniseS: (t1 - t0) / 1000, packS: (t2 - t1) / 1000, totalS: s, sPer100MB: per100, vsReadOnly: s / readS })
        : `${String(mb).padStart(4)} MB: ${examples.length} examples → ${p.rows} rows of ${seq} in ${s.toFixed(2)} s (read+tokenise ${((t1 - t0) / 1000).toFixed(2)} s, pack ${((t2 - t1) / 1000).toFixed(2)} s); ${per100.toFixed(2)} s per 100 MB; ${(s / readS).toFixed(1)}× reading the file alone (${readS.toFixed(2)} s)`);
      await rm(file);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
