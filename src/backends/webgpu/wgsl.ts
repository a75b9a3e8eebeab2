/**
 * WGSL sources live in `wgsl/*.wgsl` at the package root, the single place a kernel is written.
 *
 * Unbundled code reads them from disk (Node, Deno) or over HTTP (a browser loading the module tree).
 * A bundle has no folder beside it, so the bundler inlines the folder: it defines the global
 * `__ADAPTKIT_WGSL__` as an object { name: source } (see `wgslDefine` in ./bundle.ts). Callers may also
 * pass sources explicitly.
 *
 * WGSL has no modules: code shared by several kernel files (compact.wgsl, the readers of compact weights)
 * is pulled in by a line `// #include <name>`, replaced by that file's text before compiling.
 */
import { WebgpuError } from './errors.js';

declare const __ADAPTKIT_WGSL__: Record<string, string> | undefined;

export type WgslSources = Readonly<Record<string, string>>;

const cache = new Map<string, Promise<string>>();

/**
 * Where the WGSL folder may be, relative to this module: from src/backends/webgpu/ when running the
 * sources, from dist/ when this module is part of a bundle there (the package ships wgsl/ beside dist/).
 */
const folders = [new URL('../../../wgsl/', import.meta.url), new URL('../wgsl/', import.meta.url)];

function inlined(): WgslSources | undefined {
  return typeof __ADAPTKIT_WGSL__ !== 'undefined' ? __ADAPTKIT_WGSL__ : undefined;
}

async function readFromFolders(name: string): Promise<string> {
  const errors: string[] = [];
  for (const folder of folders) {
    try {
      return await readOne(new URL(`${name}.wgsl`, folder));
    } catch (e) {
      errors.push(`${folder.href}: ${(e as Error).message}`);
    }
  }
  throw new Error(errors.join('; '));
}

async function readOne(url: URL): Promise<string> {
  const g = globalThis as { Deno?: { readTextFile(u: URL): Promise<string> }; process?: { versions?: { node?: string } } };
  if (g.Deno) return g.Deno.readTextFile(url);
  if (g.process?.versions?.node !== undefined && url.protocol === 'file:') {
    const fsName = 'node:fs/promises';
    const fs = (await import(fsName)) as typeof import('node:fs/promises');
    return fs.readFile(url, 'utf8');
  }
  const res = await fetch(url);
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return res.text();
}

/** The source of `wgsl/<name>.wgsl`. */
export function loadWgsl(name: string, sources?: WgslSources): Promise<string> {
  const given = sources?.[name] ?? inlined()?.[name];
  if (given !== undefined) return Promise.resolve(given);
  let p = cache.get(name);
  if (!p) {
    p = readFromFolders(name).catch((e: Error) => {
      cache.delete(name);
      throw new WebgpuError(`cannot load WGSL kernel source '${name}.wgsl' (${e.message})`);
    });
    cache.set(name, p);
  }
  return p;
}

const INCLUDE = /^\/\/ #include (\w+)[ \t]*$/gm;

/** The source of `wgsl/<name>.wgsl` with its `// #include` lines replaced, each file at most once. */
export async function loadKernelSource(name: string, sources?: WgslSources, seen: Set<string> = new Set([name])): Promise<string> {
  const code = await loadWgsl(name, sources);
  const parts: string[] = [];
  let at = 0;
  for (const m of code.matchAll(INCLUDE)) {
    parts.push(code.slice(at, m.index));
    const inc = m[1]!;
    if (!seen.has(inc)) {
      seen.add(inc);
      parts.push(await loadKernelSource(inc, sources, seen));
    }
    at = m.index! + m[0].length;
  }
  parts.push(code.slice(at));
  return parts.join('');
}
