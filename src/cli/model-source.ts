/**
 * Where a model comes from: a local path, a URL, or a Hugging Face repo id (`owner/repo` for a
 * safetensors checkpoint, `owner/repo/file.gguf` for one file). Remote files are downloaded once into
 * the cache ($ADAPTKIT_CACHE, default ~/.cache/adaptkit); with no network the error says which file
 * to put where.
 */
import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

export function cacheDir(): string {
  return process.env.ADAPTKIT_CACHE || join(homedir(), '.cache', 'adaptkit');
}

const HF = 'https://huggingface.co';

async function download(url: string, dest: string, log: (s: string) => void): Promise<void> {
  if (existsSync(dest)) return;
  log(`downloading ${url} → ${dest}`);
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new Error(`could not download ${url} (${(e as Error).message}${(e as { cause?: Error }).cause ? `: ${(e as { cause?: Error }).cause!.message}` : ''}). Without network access, put the file at ${dest}`);
  }
  if (!res.ok) throw new Error(`could not download ${url}: HTTP ${res.status} ${res.statusText}. Put the file at ${dest} to use it offline`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  await mkdir(dirname(dest), { recursive: true });
  await writeFile(`${dest}.part`, bytes);
  await rename(`${dest}.part`, dest);
}

/** Resolve a model argument to a local file or directory, downloading into the cache when needed. */
export async function resolveModel(spec: string, log: (s: string) => void = () => {}): Promise<string> {
  if (existsSync(spec)) return spec;
  if (/^https?:\/\//.test(spec)) {
    const u = new URL(spec);
    const dest = join(cacheDir(), 'urls', u.host, ...u.pathname.split('/').filter(Boolean));
    await download(spec, dest, log);
    return dest;
  }
  const id = spec.replace(/^hf:/, '');
  const parts = id.split('/');
  if (parts.length >= 2 && parts.every((p) => /^[\w.-]+$/.test(p)) && !spec.startsWith('.')) {
    const [owner, repo, ...file] = parts;
    const base = join(cacheDir(), 'hf', owner!, repo!);
    if (file.length) {
      const dest = join(base, ...file);
      await download(`${HF}/${owner}/${repo}/resolve/main/${file.join('/')}`, dest, log);
      return dest;
    }
    await download(`${HF}/${owner}/${repo}/resolve/main/config.json`, join(base, 'config.json'), log);
    await download(`${HF}/${owner}/${repo}/resolve/main/model.safetensors`, join(base, 'model.safetensors'), log);
    for (const extra of ['tokenizer.json', 'tokenizer_config.json']) {
      await download(`${HF}/${owner}/${repo}/resolve/main/${extra}`, join(base, extra), log).catch(() => {});
    }
    return base;
  }
  throw new Error(`model '${spec}' is not a file, a directory, a URL or a Hugging Face repo id (owner/repo or owner/repo/file.gguf)`);
}
