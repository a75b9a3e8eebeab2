/**
 * Getting a WebGPU device in Node (Dawn through the `webgpu` package), Deno and browsers (`navigator.gpu`).
 *
 * Browser bundles must not pull in the Node-only package: it is loaded by a dynamic import whose
 * specifier is not a literal, behind a runtime check, so bundlers leave it alone.
 */
import { WebgpuError } from './errors.js';
import { ReadbackPool } from './readback-pool.js';

export interface AdapterSummary {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  /** A CPU implementation (SwiftShader, llvmpipe/lavapipe, WARP) or one the adapter flags as fallback. */
  readonly software: boolean;
  readonly runtime: 'node' | 'deno' | 'browser';
}

export interface GpuContextOptions {
  /** Prefer a low-power or high-performance adapter where the runtime offers a choice. */
  readonly powerPreference?: GPUPowerPreference;
  /**
   * Extra Dawn toggles for Node, e.g. `enable-dawn-features=allow_unsafe_apis`. `timestamp_quantization`
   * is disabled unless these name it.
   */
  readonly dawnOptions?: readonly string[];
  /** Request `timestamp-query` when the adapter has it (default true). */
  readonly timestamps?: boolean;
  /** An existing GPU object (tests and hosts that manage their own). */
  readonly gpu?: GPU;
}

/** The limits every kernel may rely on; requested at the adapter's maximum. */
const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

type Runtime = AdapterSummary['runtime'];

function detectRuntime(): Runtime {
  const g = globalThis as { Deno?: unknown; process?: { versions?: { node?: string } } };
  if (g.Deno !== undefined) return 'deno';
  if (g.process?.versions?.node !== undefined) return 'node';
  return 'browser';
}

type NodeEnv = Record<string, string | undefined>;
const nodePlatform = (): string => (globalThis as unknown as { process: { platform: string } }).process.platform;
const nodeEnv = (): NodeEnv => (globalThis as unknown as { process: { env: NodeEnv } }).process.env;

/**
 * Set an environment variable that native code (Dawn, the Vulkan loader) reads. Node's `process.env`
 * writes through to the C environment; Bun's does not, so there libc's setenv is called as well.
 */
async function setNativeEnv(key: string, value: string): Promise<void> {
  nodeEnv()[key] = value;
  if ((globalThis as { Bun?: unknown }).Bun === undefined) return;
  const ffiName = 'bun:ffi';
  const { dlopen, FFIType } = (await import(ffiName)) as {
    dlopen(lib: string, s: object): { symbols: { setenv(k: Uint8Array, v: Uint8Array, overwrite: number): number }; close(): void };
    FFIType: Record<string, number>;
  };
  let libc;
  try {
    libc = dlopen(nodePlatform() === 'darwin' ? 'libc.dylib' : 'libc.so.6', { setenv: { args: [FFIType.cstring, FFIType.cstring, FFIType.i32], returns: FFIType.i32 } });
  } catch {
    // No libc to call: native code keeps the environment it started with, as if the variable were unset.
    return;
  }
  const z = (s: string) => new TextEncoder().encode(`${s}\0`);
  try {
    libc.symbols.setenv(z(key), z(value), 1);
  } finally {
    libc.close();
  }
}

interface DawnModule { create(o: string[]): GPU; globals: object }
let nodeModule: DawnModule | undefined;

async function loadDawn(): Promise<DawnModule> {
  if (nodeModule) return nodeModule;
  const pkg = 'webgpu';
  let mod: DawnModule;
  try {
    mod = (await import(pkg)) as DawnModule;
  } catch (e) {
    throw new WebgpuError(`WebGPU in Node needs the 'webgpu' package (npm install webgpu): ${(e as Error).message}`);
  }
  // Dawn's constructors and enums (GPUBufferUsage, GPUMapMode…) are globals in every other runtime.
  for (const [k, v] of Object.entries(mod.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  nodeModule = mod;
  return mod;
}

/**
 * Dawn rounds timestamp queries to 2^16 ns by default, a browser's defence against timing attacks; a
 * process profiling its own kernels wants them exact, so Node turns the rounding off unless the caller's
 * options say otherwise.
 */
export function withDawnDefaults(options: readonly string[]): string[] {
  const out = [...options];
  const mentions = out.some((o) => /^(enable|disable)-dawn-features=.*\btimestamp_quantization\b/.test(o));
  if (mentions) return out;
  const i = out.findIndex((o) => o.startsWith('disable-dawn-features='));
  if (i >= 0) out[i] = `${out[i]},timestamp_quantization`;
  else out.push('disable-dawn-features=timestamp_quantization');
  return out;
}

async function nodeGpuObject(options: readonly string[]): Promise<GPU> {
  const fsName = 'node:fs';
  const fs = (await import(fsName)) as typeof import('node:fs');
  const env = nodeEnv();
  // With no GPU device node, the only driver Dawn can use is a software one: point the Vulkan loader at
  // SwiftShader (shipped with Debian's chromium) before Dawn starts. An explicit setting wins.
  if (!driverChosen(env) && !hasGpuDeviceNode(fs) && fs.existsSync(SWIFTSHADER_ICD)) await setNativeEnv('VK_ICD_FILENAMES', SWIFTSHADER_ICD);
  // Dawn's Vulkan setup complains on stderr when XDG_RUNTIME_DIR is unset (headless servers, CI); it needs
  // no display, so an existing temporary folder quiets it.
  if (!env.XDG_RUNTIME_DIR && fs.existsSync('/tmp')) await setNativeEnv('XDG_RUNTIME_DIR', '/tmp');
  return createDawn(options);
}

/**
 * Every GPU object made here stays referenced for the life of the process: the Dawn instance it owns is
 * polled by a timer that outlives it, and a collected instance is a use-after-free that crashes or hangs
 * the process at random.
 */
const dawnInstances = new Map<string, GPU>();

async function createDawn(options: readonly string[]): Promise<GPU> {
  const key = `${nodeEnv().VK_ICD_FILENAMES ?? ''}|${options.join(',')}`;
  let gpu = dawnInstances.get(key);
  if (!gpu) {
    gpu = (await loadDawn()).create([...options]);
    dawnInstances.set(key, gpu);
  }
  return gpu;
}

const driverChosen = (env: NodeEnv): boolean => env.VK_ICD_FILENAMES !== undefined || env.VK_DRIVER_FILES !== undefined;

function hasGpuDeviceNode(fs: typeof import('node:fs')): boolean {
  try {
    if (fs.readdirSync('/dev/dri').some((f) => f.startsWith('renderD'))) return true;
  } catch { /* no DRM devices */ }
  return fs.existsSync('/dev/nvidia0') || fs.existsSync('/dev/dxg');
}

/**
 * When the system drivers give no adapter (a Vulkan ICD whose hardware is absent; lavapipe, which Dawn
 * rejects), try SwiftShader once. The Vulkan loader reads its environment per instance, so a new
 * `create()` sees the change.
 */
async function nodeSwiftshaderRetry(options: readonly string[]): Promise<GPU | null> {
  const fsName = 'node:fs';
  const fs = (await import(fsName)) as typeof import('node:fs');
  const env = nodeEnv();
  if (driverChosen(env) || !fs.existsSync(SWIFTSHADER_ICD)) return null;
  await setNativeEnv('VK_ICD_FILENAMES', SWIFTSHADER_ICD);
  return createDawn(options);
}

/** The GPU entry point of this runtime, or null when it has none. */
export async function getGpu(opts: GpuContextOptions = {}): Promise<GPU | null> {
  if (opts.gpu) return opts.gpu;
  const runtime = detectRuntime();
  if (runtime === 'node') return nodeGpuObject(withDawnDefaults(opts.dawnOptions ?? []));
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  return nav?.gpu ?? null;
}

function isSoftware(info: GPUAdapterInfo, adapter: GPUAdapter): boolean {
  const text = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`.toLowerCase();
  const fallback = (info as { isFallbackAdapter?: boolean }).isFallbackAdapter === true
    || (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  return fallback || /swiftshader|llvmpipe|lavapipe|softpipe|microsoft basic render|\bwarp\b/.test(text);
}

/**
 * One device and what the kernels need to know about it. Errors that WebGPU reports out of band
 * (device loss, uncaptured validation errors) are kept and thrown by the next `check()`.
 */
export class GpuContext {
  readonly device: GPUDevice;
  readonly adapter: AdapterSummary;
  readonly limits: GPUSupportedLimits;
  readonly timestamps: boolean;
  readonly subgroups: boolean;
  /** Readback buffers shared by this device's executables. */
  readonly readbacks: ReadbackPool;
  /** Set when the device is lost; every later use throws. */
  lost: GPUDeviceLostInfo | null = null;
  private pendingError: GPUError | null = null;
  /** What was last submitted, so an error that arrives later can name it. */
  lastWork = '';
  private destroyed = false;

  private constructor(device: GPUDevice, adapter: AdapterSummary) {
    this.device = device;
    this.adapter = adapter;
    this.limits = device.limits;
    this.timestamps = device.features.has('timestamp-query');
    this.subgroups = device.features.has('subgroups');
    this.readbacks = new ReadbackPool(device);
    device.lost.then((info) => {
      if (!this.destroyed) this.lost = info;
    });
    device.addEventListener('uncapturederror', (ev) => {
      const e = (ev as GPUUncapturedErrorEvent).error;
      this.pendingError ??= e;
    });
  }

  static async create(opts: GpuContextOptions = {}): Promise<GpuContext> {
    const runtime = detectRuntime();
    const gpu = await getGpu(opts);
    if (!gpu) throw new WebgpuError(`this ${runtime} runtime has no WebGPU (navigator.gpu is missing)`);
    const request = opts.powerPreference ? { powerPreference: opts.powerPreference } : undefined;
    let adapter = await gpu.requestAdapter(request);
    if (!adapter && runtime === 'node' && !opts.gpu) {
      const retry = await nodeSwiftshaderRetry(withDawnDefaults(opts.dawnOptions ?? []));
      if (retry) adapter = await retry.requestAdapter(request);
    }
    if (!adapter) {
      const hint = runtime === 'node'
        ? ` (no Vulkan driver found: install libvulkan1 and a driver, or chromium for SwiftShader at ${SWIFTSHADER_ICD})`
        : '';
      throw new WebgpuError(`no WebGPU adapter available${hint}`);
    }
    const info = adapter.info;
    const summary: AdapterSummary = {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
      software: isSoftware(info, adapter),
      runtime,
    };
    const requiredLimits: Record<string, number> = {};
    for (const name of WANTED_LIMITS) {
      const v = (adapter.limits as unknown as Record<string, number | undefined>)[name];
      if (typeof v === 'number') requiredLimits[name] = v;
    }
    const requiredFeatures: GPUFeatureName[] = [];
    if (opts.timestamps !== false && adapter.features.has('timestamp-query')) requiredFeatures.push('timestamp-query');
    if (adapter.features.has('subgroups')) requiredFeatures.push('subgroups' as GPUFeatureName);
    const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
    return new GpuContext(device, summary);
  }

  describe(): string {
    const a = this.adapter;
    const name = [a.vendor, a.architecture, a.description || a.device].filter((s) => s).join(' ');
    return `webgpu (${a.runtime}): ${name || 'unknown adapter'}${a.software ? ' [software]' : ''}`;
  }

  /** Throw a kept out-of-band error (device loss, an uncaptured validation error). */
  check(what: string): void {
    if (this.destroyed) throw new WebgpuError(`${what}: the WebGPU device was disposed`);
    if (this.lost) {
      throw new WebgpuError(`${what}: the WebGPU device was lost (${this.lost.reason}: ${this.lost.message})${this.lastWork ? ` during ${this.lastWork}` : ''}`);
    }
    const e = this.pendingError;
    if (e) {
      this.pendingError = null;
      throw new WebgpuError(`${what}: WebGPU reported an error${this.lastWork ? ` in ${this.lastWork}` : ''}: ${e.message}`);
    }
  }

  /** Run `fn` inside validation and out-of-memory error scopes; throw what they catch, prefixed by `what`. */
  async scoped<T>(what: string, fn: () => T): Promise<T> {
    const d = this.device;
    d.pushErrorScope('out-of-memory');
    d.pushErrorScope('validation');
    let result: T | undefined;
    let thrown: unknown = null;
    try {
      result = fn();
    } catch (e) {
      thrown = e;
    }
    // The scopes must be popped even when fn throws, or later errors land in them.
    const [v, o] = await Promise.all([d.popErrorScope(), d.popErrorScope()]);
    const e = v ?? o;
    if (e) throw new WebgpuError(`${what}: ${e.message.trim()}`);
    if (thrown !== null) throw thrown;
    return result as T;
  }

  get isDestroyed(): boolean { return this.destroyed; }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.readbacks.destroy();
    this.device.destroy();
  }
}
