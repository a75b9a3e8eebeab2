// Builds the browser demo into dist/demo/: index.html, main.js (the page) and worker.js (the library and
// the engine). The page expects to be served with dist/ as the site root, so that the wasm backend finds
// its builds in /wasm/ (dist/wasm/), one level above the worker. Usage: node scripts/demo-build.mjs
import { copyFile, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The WGSL kernels by name: a bundle has no wgsl/ folder beside it (see src/backends/webgpu/wgsl.ts). */
export async function wgslSources(root) {
  const dir = join(root, 'wgsl');
  const names = (await readdir(dir)).filter((f) => f.endsWith('.wgsl')).sort();
  return Object.fromEntries(await Promise.all(names.map(async (f) => [f.slice(0, -5), await readFile(join(dir, f), 'utf8')])));
}

/** Raw and gzip sizes of the files a visit downloads (source maps load only with devtools open). */
async function sizes(root) {
  const files = ['demo/index.html', 'demo/main.js', 'demo/worker.js'];
  const wasm = (await readdir(join(root, 'dist/wasm')).catch(() => [])).find((f) => f === 'adaptkit-relaxed-mt.wasm');
  if (wasm) files.push(`wasm/${wasm}`);
  const out = [];
  for (const f of files) {
    const bytes = await readFile(join(root, 'dist', f));
    out.push({ file: f, bytes: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length });
  }
  return out;
}

export async function buildDemoPage({ root = repo, minify = true } = {}) {
  const out = join(root, 'dist/demo');
  await mkdir(out, { recursive: true });
  await build({
    entryPoints: { main: join(root, 'demo/main.ts'), worker: join(root, 'demo/worker.ts') },
    outdir: out, bundle: true, format: 'esm', platform: 'browser', target: 'es2022', minify, sourcemap: 'linked',
    legalComments: 'none', logLevel: 'warning',
    // Node-only code paths are behind runtime checks and non-literal imports; nothing of Node is bundled.
    external: ['node:*', 'webgpu'],
    define: { __ADAPTKIT_WGSL__: JSON.stringify(await wgslSources(root)) },
  });
  await copyFile(join(root, 'demo/index.html'), join(out, 'index.html'));
  return sizes(root);
}

export function formatSizes(list) {
  const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
  const total = list.reduce((a, f) => a + f.gzip, 0);
  return `${list.map((f) => `${f.file} ${kb(f.bytes)} (${kb(f.gzip)} gzip)`).join(', ')}; ${kb(total)} gzip in all`;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await stat(join(repo, 'dist/wasm')).catch(() => console.warn('dist/wasm/ is missing: run `npm run build` for the wasm backend'));
  console.log(`demo built into dist/demo/: ${formatSizes(await buildDemoPage())}`);
}
