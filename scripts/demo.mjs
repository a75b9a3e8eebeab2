// Builds the browser demo and serves it on localhost, cross-origin isolated (COOP/COEP) so the wasm
// backend can use threads. Also serves the stories260K model and the TinyStories validation text from
// ../shared/assets, which the page offers as defaults.
// Usage: node scripts/demo.mjs [--port N (default 8787; 0: any free port)] [--host 127.0.0.1]
//                              [--no-isolation (serve without COOP/COEP: wasm runs single-threaded)]
//                              [--no-build]
import { spawnSync } from 'node:child_process';
import { createReadStream, existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { buildDemoPage, formatSizes } from './demo-build.mjs';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.json': 'application/json',
  '.map': 'application/json', '.wasm': 'application/wasm', '.txt': 'text/plain; charset=utf-8', '.css': 'text/css',
  '.gguf': 'application/octet-stream', '.bin': 'application/octet-stream', '.wgsl': 'text/plain; charset=utf-8',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.json', '.map', '.wasm', '.txt', '.css', '.wgsl']);

/** The shared assets the page may fetch, by URL path under /assets/. Nothing else there is served. */
const SHARED = {
  model: { path: 'models/stories260K/stories260K.gguf', label: 'stories260K (GGUF, 1.2 MB)' },
  evalText: { path: 'data/tinystories/tinystories_val.txt', label: 'TinyStories validation text' },
};

function sharedDir(root) {
  return [join(root, '..', 'shared', 'assets'), join(root, 'shared', 'assets')].find((d) => existsSync(d));
}

/**
 * Starts the server; resolves once it listens. `port: 0` picks a free port. `sent` counts the bytes of
 * each response body by path (what went over the wire, compressed where it was).
 */
export async function startDemoServer({ port = 8787, host = '127.0.0.1', isolate = true, root = repo } = {}) {
  const dist = join(root, 'dist');
  const shared = sharedDir(root);
  const offered = Object.fromEntries(Object.entries(SHARED)
    .filter(([, a]) => shared && existsSync(join(shared, a.path)))
    .map(([k, a]) => [k, { url: `/assets/${a.path}`, label: a.label }]));
  const sharedPaths = new Set(Object.values(SHARED).map((a) => `/assets/${a.path}`));
  const gzipCache = new Map();
  const sent = new Map();

  const headers = (type, extra = {}) => ({
    'Content-Type': type, 'Cache-Control': 'no-cache', 'Cross-Origin-Resource-Policy': 'same-origin',
    ...(isolate ? { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' } : {}),
    ...extra,
  });

  async function send(req, res, file) {
    const info = await stat(file).catch(() => undefined);
    if (!info?.isFile()) return notFound(res);
    const ext = extname(file);
    const type = TYPES[ext] ?? 'application/octet-stream';
    const path = new URL(req.url, 'http://x').pathname;
    if (COMPRESSIBLE.has(ext) && /\bgzip\b/.test(req.headers['accept-encoding'] ?? '')) {
      let c = gzipCache.get(file);
      if (!c || c.mtime !== info.mtimeMs) {
        c = { mtime: info.mtimeMs, body: gzipSync(await readFile(file), { level: 6 }) };
        gzipCache.set(file, c);
      }
      res.writeHead(200, headers(type, { 'Content-Encoding': 'gzip', 'Content-Length': c.body.length, Vary: 'Accept-Encoding' }));
      sent.set(path, (sent.get(path) ?? 0) + c.body.length);
      return req.method === 'HEAD' ? res.end() : res.end(c.body);
    }
    // Range requests let the page read a model a tensor at a time instead of downloading it whole.
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (range) {
      const start = Number(range[1]), end = Math.min(range[2] ? Number(range[2]) : info.size - 1, info.size - 1);
      if (start > end) {
        res.writeHead(416, headers('text/plain; charset=utf-8', { 'Content-Range': `bytes */${info.size}` }));
        return res.end();
      }
      res.writeHead(206, headers(type, { 'Content-Length': end - start + 1, 'Content-Range': `bytes ${start}-${end}/${info.size}`, 'Accept-Ranges': 'bytes' }));
      sent.set(path, (sent.get(path) ?? 0) + end - start + 1);
      if (req.method === 'HEAD') return res.end();
      return void createReadStream(file, { start, end }).pipe(res);
    }
    res.writeHead(200, headers(type, { 'Content-Length': info.size, 'Accept-Ranges': 'bytes' }));
    sent.set(path, (sent.get(path) ?? 0) + info.size);
    if (req.method === 'HEAD') return res.end();
    createReadStream(file).pipe(res);
  }

  function notFound(res) {
    res.writeHead(404, headers('text/plain; charset=utf-8'));
    res.end('not found\n');
  }

  const server = createServer((req, res) => {
    let path;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      res.writeHead(400, headers('text/plain; charset=utf-8'));
      return res.end('bad request\n');
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, headers('text/plain; charset=utf-8'));
      return res.end('method not allowed\n');
    }
    if (path === '/' || path === '/demo') {
      res.writeHead(302, { Location: '/demo/' });
      return res.end();
    }
    if (path === '/demo/assets.json') {
      const body = JSON.stringify(offered);
      res.writeHead(200, headers('application/json', { 'Content-Length': Buffer.byteLength(body) }));
      return res.end(body);
    }
    if (sharedPaths.has(path)) return void send(req, res, join(shared, path.slice('/assets/'.length))).catch(() => notFound(res));
    // The wasm loader tries ../../../dist/wasm/ (its place from the source tree) before ../wasm/.
    const rel = path.startsWith('/dist/wasm/') ? path.slice('/dist'.length) : path;
    const file = normalize(join(dist, rel.endsWith('/') ? `${rel}index.html` : rel));
    if (!file.startsWith(dist + sep)) return notFound(res);
    send(req, res, file).catch(() => notFound(res));
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
  const actual = server.address().port;
  return {
    server, port: actual, url: `http://${host}:${actual}/demo/`, sent,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/** Builds dist/wasm (the whole `npm run build`) when it is missing, then the page. */
export async function prepareDemo({ root = repo } = {}) {
  if (!existsSync(join(root, 'dist/wasm/adaptkit-simd.wasm'))) {
    const r = spawnSync(process.execPath, [join(root, 'scripts/build.mjs')], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('npm run build failed');
  }
  return buildDemoPage({ root });
}

function parseArgs(argv) {
  const o = { port: 8787, host: '127.0.0.1', isolate: true, build: true };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const value = () => inline ?? argv[++i];
    if (flag === '--port') o.port = Number(value());
    else if (flag === '--host') o.host = value();
    else if (flag === '--no-isolation') o.isolate = false;
    else if (flag === '--no-build') o.build = false;
    else if (flag === '--help' || flag === '-h') o.help = true;
    else throw new Error(`unknown option ${argv[i]} (options: --port N, --host H, --no-isolation, --no-build)`);
  }
  if (!(Number.isInteger(o.port) && o.port >= 0 && o.port < 65536)) throw new Error(`--port must be 0–65535 (got ${o.port})`);
  return o;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    const o = parseArgs(process.argv.slice(2));
    if (o.help) {
      console.log('node scripts/demo.mjs [--port N] [--host H] [--no-isolation] [--no-build]');
      process.exit(0);
    }
    if (o.build) console.log(`built dist/demo/: ${formatSizes(await prepareDemo())}`);
    const s = await startDemoServer(o).catch((e) => {
      throw e.code === 'EADDRINUSE' ? new Error(`port ${o.port} is in use; choose another with --port N (0: any free port)`) : e;
    });
    if (!sharedDir(repo)) console.log('note: ../shared/assets not found; the page will have no default model');
    console.log(`AdaptKit demo: ${s.url}${o.isolate ? '' : ' (not cross-origin isolated: wasm runs on one thread)'}\nCtrl-C stops the server.`);
  } catch (e) {
    console.error(`demo: ${e.message}`);
    process.exit(1);
  }
}
