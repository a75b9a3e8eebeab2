// Prepares .gpu/ (git-ignored), everything `bash bench/gpu.sh` needs on a machine with a GPU but no
// network and perhaps no Node: the benchmarks bundled into one file (WGSL inlined), this Node binary
// (xz-compressed), Dawn for Node (linux-x64 only) and the Vulkan loader's Debian package.
// Usage: node scripts/gpu-pack.mjs   (then carry .gpu along with the working tree)
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, '.gpu');
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'node_modules', 'webgpu', 'dist'), { recursive: true });
mkdirSync(join(out, 'debs'));

const { wgslSources } = await import('./demo-build.mjs');
await build({
  entryPoints: [join(root, 'bench/run.ts')], outfile: join(out, 'bench.mjs'),
  bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'warning',
  external: ['webgpu'], define: { __ADAPTKIT_WGSL__: JSON.stringify(await wgslSources(root)) },
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
});

const dawn = join(root, 'node_modules', 'webgpu');
for (const f of ['index.js', 'package.json']) cpSync(join(dawn, f), join(out, 'node_modules', 'webgpu', f));
cpSync(join(dawn, 'dist', 'linux-x64'), join(out, 'node_modules', 'webgpu', 'dist', 'linux-x64'), { recursive: true });

execFileSync('sh', ['-c', `xz -T0 -6 -c "${realpathSync(process.execPath)}" > "${join(out, 'node.xz')}"`]);

// The loader only (the GPU machine brings its own driver), fetched for amd64 whatever this machine is.
const lists = '/tmp/adaptkit-apt-amd64';
mkdirSync(join(lists, 'partial'), { recursive: true });
const apt = ['-oAPT::Architecture=amd64', '-oAPT::Architectures=amd64', `-oDir::State::Lists=${lists}`];
execFileSync('apt-get', [...apt, '-qq', 'update'], { stdio: 'inherit' });
execFileSync('apt-get', [...apt, '-qq', 'download', 'libvulkan1'], { cwd: join(out, 'debs'), stdio: 'inherit' });

const size = (p) => (statSync(p).isDirectory() ? readdirSync(p).reduce((a, f) => a + size(join(p, f)), 0) : statSync(p).size);
writeFileSync(join(out, 'README'), 'Made by scripts/gpu-pack.mjs for bench/gpu.sh; not part of the sources.\n');
console.log(`.gpu/: ${(size(out) / 2 ** 20).toFixed(1)} MiB`);
