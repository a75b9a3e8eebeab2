#!/usr/bin/env node
// The adaptkit command: runs the bundled CLI (built by `npm run build`).
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('adaptkit: dist/cli.js is missing; run `npm run build` in the adaptkit folder first\n');
  process.exit(1);
}
await import(cli.href);
