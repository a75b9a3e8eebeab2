/**
 * Random-access byte sources, so loaders read a model file by offset (header, then one tensor at a
 * time) instead of holding the whole file: bytes in memory, a browser `File`/`Blob` (slices), an HTTP
 * URL (range requests) and, where `node:fs` exists, a file on disk (a file handle read at a position).
 *
 * Browser-safe: `node:fs/promises` is imported only when a file source is opened.
 */
import { FormatError, NeedMoreBytes } from './binary.js';

export interface ByteSource {
  /** Display name for errors (a path, URL or file name). */
  readonly name: string;
  /** Total size in bytes. */
  readonly size: number;
  /** Bytes [offset, offset + length); fails when that range is not inside the source. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Release the underlying handle, if any. */
  close?(): Promise<void>;
}

function checkRange(src: { name: string; size: number }, offset: number, length: number): void {
  if (!(Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 && offset + length <= src.size)) {
    throw new FormatError(src.name, `read of bytes [${offset}, ${offset + length}) is outside the ${src.size}-byte file (truncated?)`);
  }
}

/** Bytes already in memory; reads are views (no copy). */
export function bytesSource(bytes: Uint8Array, name = 'model'): ByteSource {
  const src: ByteSource = {
    name, size: bytes.length,
    async read(offset, length) {
      checkRange(src, offset, length);
      return bytes.subarray(offset, offset + length);
    },
  };
  return src;
}

/** A browser `File` or `Blob`, read a slice at a time. */
export function blobSource(blob: Blob, name = (blob as { name?: string }).name || 'model'): ByteSource {
  const src: ByteSource = {
    name, size: blob.size,
    async read(offset, length) {
      checkRange(src, offset, length);
      return new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
    },
  };
  return src;
}

export interface HttpSourceOptions {
  /** Extra request headers (e.g. an authorization header). */
  headers?: Record<string, string>;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
}

/**
 * A file behind an HTTP(S) URL, read with range requests. The server must answer `Range` with
 * 206 Partial Content (Hugging Face, most static hosts and CDNs do); the size comes from Content-Range.
 */
export async function httpSource(url: string, options: HttpSourceOptions = {}): Promise<ByteSource> {
  const f = options.fetch ?? fetch;
  const get = async (offset: number, length: number): Promise<Response> => {
    let res: Response;
    try {
      res = await f(url, { headers: { ...options.headers, Range: `bytes=${offset}-${offset + length - 1}` } });
    } catch (e) {
      throw new FormatError(url, `request failed (${(e as Error).message})`);
    }
    if (res.status === 200) {
      await res.body?.cancel();
      throw new FormatError(url, 'the server ignores HTTP range requests (answered 200, not 206), so the model cannot be read a tensor at a time; download the file and load it from disk');
    }
    if (res.status !== 206) throw new FormatError(url, `HTTP ${res.status} ${res.statusText}`);
    return res;
  };
  const first = await get(0, 1);
  const total = /\/(\d+)\s*$/.exec(first.headers.get('content-range') ?? '')?.[1];
  await first.arrayBuffer();
  if (total === undefined) throw new FormatError(url, 'the server answered a range request without the file size in Content-Range');
  const src: ByteSource = {
    name: url, size: Number(total),
    async read(offset, length) {
      checkRange(src, offset, length);
      if (length === 0) return new Uint8Array(0);
      const b = new Uint8Array(await (await get(offset, length)).arrayBuffer());
      if (b.length !== length) throw new FormatError(url, `asked for ${length} bytes at ${offset}, the server sent ${b.length}`);
      return b;
    },
  };
  return src;
}

interface NodeFileHandle {
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  stat(): Promise<{ size: number }>;
  close(): Promise<void>;
}

/** A file on disk read through a `node:fs/promises` file handle (Node, Deno, Bun). Close it when done. */
export async function fileSource(path: string): Promise<ByteSource> {
  // A computed specifier keeps browser bundlers from trying to resolve a Node built-in.
  const spec = ['node', 'fs/promises'].join(':');
  let fs: { open(path: string, flags: string): Promise<NodeFileHandle> };
  try {
    fs = (await import(/* @vite-ignore */ spec)) as typeof fs;
  } catch {
    throw new Error(`${path}: reading a path needs a runtime with node:fs (Node, Deno, Bun); in a browser pass a File, bytes or a URL`);
  }
  const fh = await fs.open(path, 'r');
  const { size } = await fh.stat();
  const src: ByteSource = {
    name: path, size,
    async read(offset, length) {
      checkRange(src, offset, length);
      const out = new Uint8Array(length);
      for (let got = 0; got < length;) {
        const { bytesRead } = await fh.read(out, got, length - got, offset + got);
        if (bytesRead === 0) throw new FormatError(path, `the file ended at byte ${offset + got} while reading ${length} bytes at ${offset} (changed while loading?)`);
        got += bytesRead;
      }
      return out;
    },
    close: () => fh.close(),
  };
  return src;
}

/**
 * Parse a header of unknown length from the start of a source: read `initial` bytes, and whenever
 * `parse` throws `NeedMoreBytes`, read on (at least doubling) and parse again. Reads at most
 * max(2 × header, initial) bytes.
 */
export async function readHeader<T>(src: ByteSource, parse: (prefix: Uint8Array) => T, initial = 1 << 16): Promise<T> {
  let prefix = await src.read(0, Math.min(src.size, initial));
  for (;;) {
    try {
      return parse(prefix);
    } catch (e) {
      if (!(e instanceof NeedMoreBytes) || prefix.length >= src.size) throw e;
      const want = Math.min(src.size, Math.max(e.needed, 2 * prefix.length));
      const grown = new Uint8Array(want);
      grown.set(prefix);
      grown.set(await src.read(prefix.length, want - prefix.length), prefix.length);
      prefix = grown;
    }
  }
}
