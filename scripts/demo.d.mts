// Types for scripts/demo.mjs (imported by the browser test).
import type { Server } from 'node:http';

export interface DemoServer {
  readonly server: Server;
  readonly port: number;
  /** The page's URL. */
  readonly url: string;
  /** Response body bytes sent, by path. */
  readonly sent: Map<string, number>;
  close(): Promise<void>;
}

export function startDemoServer(o?: { port?: number; host?: string; isolate?: boolean; root?: string }): Promise<DemoServer>;

/** Builds dist/wasm when missing, then the page; returns the sizes of the files a visit downloads. */
export function prepareDemo(o?: { root?: string }): Promise<{ file: string; bytes: number; gzip: number }[]>;
