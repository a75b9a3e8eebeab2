/** Run the adaptkit CLI from source in a child process (a fresh process, as a user would). */
import { spawnSync } from 'node:child_process';

export function cli(args: string[], env: Record<string, string> = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--experimental-wasm-relaxed-simd', '--import', 'tsx', 'src/cli/main.ts', ...args], {
    encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
