/**
 * Benchmark dispatcher: `npm run bench [-- <suite> [--json]]` runs one suite, or every suite when none
 * is named. With --json each suite prints one JSON object per measurement, one per line.
 */
import { benchArena } from './arena.js';
import { benchData } from './data.js';
import { benchDataInit } from './data-init.js';
import { benchDraft } from './draft.js';
import { benchGenerate } from './generate.js';
import { benchLoad } from './load.js';
import { benchMatmul } from './matmul.js';
import { benchMethods } from './methods.js';
import { benchScale } from './scale.js';
import { benchTrain } from './train.js';
import { benchWebgpu } from './webgpu.js';

type Suite = (opts: { json: boolean }) => Promise<void>;

const SUITES: Record<string, Suite> = { matmul: benchMatmul, train: benchTrain, generate: benchGenerate, webgpu: benchWebgpu, methods: benchMethods, arena: benchArena, load: benchLoad, data: benchData, 'data-init': benchDataInit, scale: benchScale, draft: benchDraft };

const args = process.argv.slice(2);
const json = args.includes('--json');
// Suite names come first; a suite's own flags (--models x,y) follow them.
const firstFlag = args.findIndex((a) => a.startsWith('--'));
const named = firstFlag < 0 ? args : args.slice(0, firstFlag);
const unknown = named.filter((n) => !(n in SUITES));
if (unknown.length) {
  console.error(`unknown suite ${unknown.join(', ')}; suites: ${Object.keys(SUITES).join(', ')}`);
  process.exit(2);
}
for (const name of named.length ? named : Object.keys(SUITES)) {
  if (!json) console.log(`== ${name}`);
  await SUITES[name]({ json });
}
