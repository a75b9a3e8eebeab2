// Builds everything under dist/. Usage: node scripts/build.mjs
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import asc from 'assemblyscript/asc';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

// The four WebAssembly builds named in asconfig.json: baseline SIMD and relaxed SIMD, each with a
// shared (threads) memory and a plain one for pages without cross-origin isolation.
const WASM_TARGETS = ['simd', 'simd-mt', 'relaxed', 'relaxed-mt'];

async function buildWasm() {
  await mkdir(join(root, 'dist', 'wasm'), { recursive: true });
  // Sequential: asc's compiler state is module-global, and each build takes about a second.
  for (const target of WASM_TARGETS) {
    const { error, stderr } = await asc.main(
      ['--config', join(root, 'asconfig.json'), '--target', target, '--baseDir', root],
      {},
    );
    if (error) {
      process.stderr.write(stderr.toString());
      throw new Error(`asc (${target}) failed: ${error.message}`);
    }
  }
}

/**
 * The TypeScript bundles: the library (dist/adaptkit.js, for Node, Deno and browsers) and the CLI
 * (dist/cli.js, for Node and Deno). The Node-only `webgpu` package (Dawn) stays external: it is loaded
 * only where it exists.
 */
async function buildBundles() {
  const { wgslSources } = await import('./demo-build.mjs');
  // The WGSL kernels travel inside the bundles, so a bundle works without the wgsl/ folder beside it.
  const define = { __ADAPTKIT_WGSL__: JSON.stringify(await wgslSources(root)) };
  const common = { bundle: true, format: 'esm', target: 'es2022', sourcemap: true, logLevel: 'warning', external: ['webgpu', 'node:*'], define };
  await build({ ...common, entryPoints: [join(root, 'src/index.ts')], outfile: join(root, 'dist/adaptkit.js'), platform: 'neutral', mainFields: ['module', 'main'] });
  await build({
    ...common, entryPoints: [join(root, 'src/cli/main.ts')], outfile: join(root, 'dist/cli.js'), platform: 'node',
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
}

/** The browser demo (dist/demo/, served by `npm run demo`); see scripts/demo-build.mjs. */
export async function buildDemo() {
  const { buildDemoPage } = await import('./demo-build.mjs');
  await buildDemoPage({ root });
}

await buildWasm();
await buildBundles();
await buildDemo();
