/**
 * The browser harness: bundles main.ts with esbuild (WGSL inlined, as a bundle has no wgsl/ folder),
 * serves it to headless Chromium through request interception at http://localhost/ (a secure context,
 * which WebGPU requires, without opening a port) and collects the page's results.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import type { CaseResult } from '../webgpu/op-cases.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CHROMIUM = '/usr/bin/chromium';
/** Headless flags that give Chromium a WebGPU adapter on SwiftShader (../shared/guides/RUNTIMES.md). */
const CHROMIUM_ARGS = [
  '--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader',
  '--use-webgpu-adapter=swiftshader', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

export interface BrowserReport { adapter: string; results: CaseResult[]; error?: string; pageErrors: string[] }

function wgslSources(): Record<string, string> {
  const dir = join(ROOT, 'wgsl');
  return Object.fromEntries(readdirSync(dir).filter((f) => f.endsWith('.wgsl')).sort().map((f) => [f.slice(0, -5), readFileSync(join(dir, f), 'utf8')]));
}

export async function bundlePage(): Promise<string> {
  const out = await build({
    entryPoints: [join(ROOT, 'test/browser-harness/main.ts')],
    bundle: true, format: 'esm', platform: 'browser', target: 'es2022', write: false, logLevel: 'warning',
    // Node-only paths sit behind runtime checks and non-literal imports; nothing of Node is bundled.
    external: ['node:*', 'webgpu'],
    define: { __ADAPTKIT_WGSL__: JSON.stringify(wgslSources()) },
  });
  return out.outputFiles[0]!.text;
}

export async function runInBrowser(timeoutMs = 240_000): Promise<BrowserReport> {
  const script = await bundlePage();
  // Playwright gives each launch a fresh temporary profile of its own.
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  const pageErrors: string[] = [];
  try {
    const page = await browser.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()); });
    await page.route('http://localhost/**', async (route) => {
      const path = new URL(route.request().url()).pathname;
      if (path === '/main.js') await route.fulfill({ status: 200, contentType: 'text/javascript', body: script });
      // The wasm backend looks for its builds in ./wasm/ beside the bundle.
      else if (/^\/wasm\/adaptkit-[\w-]+\.wasm$/.test(path)) await route.fulfill({ status: 200, contentType: 'application/wasm', body: readFileSync(join(ROOT, 'dist', path)) });
      else if (path === '/') await route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><meta charset="utf-8"><title>adaptkit ops</title><script type="module" src="/main.js"></script>' });
      else await route.fulfill({ status: 404, body: '' });
    });
    await page.goto('http://localhost/');
    await page.waitForFunction(() => (globalThis as unknown as { __adaptkitOps?: { done: boolean } }).__adaptkitOps?.done === true, null, { timeout: timeoutMs, polling: 200 });
    const r = await page.evaluate(() => (globalThis as unknown as { __adaptkitOps: Omit<BrowserReport, 'pageErrors'> }).__adaptkitOps);
    return { ...r, pageErrors };
  } finally {
    await browser.close();
  }
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'));
if (invokedDirectly) {
  const r = await runInBrowser();
  console.log(`# ${r.adapter}`);
  for (const x of r.results) console.log(`${x.ok ? 'ok' : 'FAIL'} ${x.name}${x.ok ? '' : `: ${x.detail}`}`);
  if (r.error) console.log(`error: ${r.error}`);
  const failed = r.results.filter((x) => !x.ok).length + (r.error ? 1 : 0);
  console.log(`browser: ${r.results.length - failed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}
