// Child process for the crash test: writes checkpoint-1, checkpoint-2, … into argv[2] forever with the
// CLI's writer, each file large enough that a kill -9 usually lands mid-write. File k of checkpoint N is
// `size` bytes of the value (N + k) mod 251, so a reader can tell a whole file from a part.
import { join } from 'node:path';
import { CHECKPOINT_FILES, writeFolderAtomic } from '../../src/cli/output.js';

const out = process.argv[2]!, size = Number(process.argv[3] ?? 4 << 20);
for (let n = 1; ; n++) {
  await writeFolderAtomic(join(out, `checkpoint-${n}`), CHECKPOINT_FILES.map((f, k) => [f, new Uint8Array(size).fill((n + k) % 251)] as const));
  process.stdout.write(`${n}\n`);
}
