/**
 * Compute pipelines, with bind group layouts read from the WGSL source (wgsl_reflect) so a kernel's
 * bindings are written once, in its shader.
 */
import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';
import type { GpuContext } from './device.js';
import { WebgpuError } from './errors.js';
import { loadKernelSource, type WgslSources } from './wgsl.js';

/** wgsl_reflect's ResourceType enum values (not exported by its module build). */
const RESOURCE_UNIFORM = 0;
const RESOURCE_STORAGE = 1;

export interface BindingSlot {
  readonly name: string;
  readonly binding: number;
  readonly type: GPUBufferBindingType;
}

export type OverrideValues = Readonly<Record<string, number | boolean>>;

/** One entry point of one WGSL file, specialised by its override constants. */
export interface Kernel {
  readonly label: string;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
  /** Bindings of group 0 by variable name. */
  readonly slots: ReadonlyMap<string, BindingSlot>;
  readonly workgroupSize: readonly [number, number, number];
}

interface ShaderFile {
  readonly module: GPUShaderModule;
  readonly reflect: WgslReflect;
}

export class PipelineCache {
  private readonly files = new Map<string, Promise<ShaderFile>>();
  private readonly kernels = new Map<string, Promise<Kernel>>();

  constructor(private readonly ctx: GpuContext, private readonly sources?: WgslSources) {}

  private file(name: string): Promise<ShaderFile> {
    let f = this.files.get(name);
    if (!f) {
      f = (async () => {
        const code = await loadKernelSource(name, this.sources);
        let reflect: WgslReflect;
        try {
          reflect = new WgslReflect(code);
        } catch (e) {
          throw new WebgpuError(`wgsl/${name}.wgsl: cannot reflect its bindings: ${(e as Error).message}`);
        }
        const module = await this.ctx.scoped(`wgsl/${name}.wgsl`, () => this.ctx.device.createShaderModule({ label: name, code }));
        const info = await module.getCompilationInfo();
        const errors = info.messages.filter((m) => m.type === 'error');
        if (errors.length) {
          throw new WebgpuError(`wgsl/${name}.wgsl (lines counted after its includes) does not compile:\n${errors.map((m) => `  ${m.lineNum}:${m.linePos} ${m.message}`).join('\n')}`);
        }
        return { module, reflect };
      })();
      f.catch(() => this.files.delete(name));
      this.files.set(name, f);
    }
    return f;
  }

  /** The pipeline for `entry` in `wgsl/<file>.wgsl` with the given override constants. */
  kernel(file: string, entry: string, constants: OverrideValues = {}): Promise<Kernel> {
    const keys = Object.keys(constants).sort();
    const key = `${file}:${entry}:${keys.map((k) => `${k}=${Number(constants[k])}`).join(',')}`;
    let k = this.kernels.get(key);
    if (!k) {
      k = this.build(file, entry, constants, key);
      k.catch(() => this.kernels.delete(key));
      this.kernels.set(key, k);
    }
    return k;
  }

  private async build(file: string, entry: string, constants: OverrideValues, label: string): Promise<Kernel> {
    const { module, reflect } = await this.file(file);
    const fn = reflect.entry.compute.find((f) => f.name === entry);
    if (!fn) throw new WebgpuError(`wgsl/${file}.wgsl has no compute entry point '${entry}'`);
    const slots = new Map<string, BindingSlot>();
    for (const r of fn.resources) {
      if (r.group !== 0) throw new WebgpuError(`${label}: binding '${r.name}' is in group ${r.group}; kernels use group 0 only`);
      let type: GPUBufferBindingType;
      if (r.resourceType === RESOURCE_UNIFORM) type = 'uniform';
      else if (r.resourceType === RESOURCE_STORAGE) {
        // Operands are sub-ranges of one arena buffer, and WebGPU forbids a buffer to be bound both
        // read-only and writable within one dispatch, whatever the ranges: every storage binding is
        // writable, inputs included.
        if (r.access !== 'read_write') throw new WebgpuError(`wgsl/${file}.wgsl: declare '${r.name}' as var<storage, read_write> (all kernel operands live in one buffer)`);
        type = 'storage';
      }
      else throw new WebgpuError(`${label}: binding '${r.name}' is not a buffer; kernels bind buffers only`);
      slots.set(r.name, { name: r.name, binding: r.binding, type });
    }
    const known = new Set(reflect.overrides.map((o) => o.name));
    for (const name of Object.keys(constants)) {
      if (!known.has(name)) throw new WebgpuError(`${label}: wgsl/${file}.wgsl has no override '${name}'`);
    }
    const device = this.ctx.device;
    const entries: GPUBindGroupLayoutEntry[] = [...slots.values()]
      .sort((x, y) => x.binding - y.binding)
      .map((s) => ({ binding: s.binding, visibility: GPUShaderStage.COMPUTE, buffer: { type: s.type } }));
    const numeric: Record<string, number> = {};
    for (const [k, v] of Object.entries(constants)) numeric[k] = Number(v);
    const layout = await this.ctx.scoped(label, () => device.createBindGroupLayout({ label, entries }));
    const desc: GPUComputePipelineDescriptor = {
      label,
      layout: device.createPipelineLayout({ label, bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: entry, constants: numeric },
    };
    let pipeline: GPUComputePipeline;
    if (this.ctx.adapter.runtime === 'node') {
      // dawn.node's createComputePipelineAsync aborts the process on SwiftShader (a mutex assertion in
      // its worker thread); the synchronous call is safe.
      pipeline = await this.ctx.scoped(`${label}: cannot create the pipeline`, () => device.createComputePipeline(desc));
    } else {
      try {
        pipeline = await device.createComputePipelineAsync(desc);
      } catch (e) {
        throw new WebgpuError(`${label}: cannot create the pipeline: ${(e as Error).message}`);
      }
    }
    const ws = fn.workgroupSize ?? [1, 1, 1];
    return { label, pipeline, layout, slots, workgroupSize: [ws[0], ws[1], ws[2]] };
  }
}

/** A bind group for `kernel` from buffer ranges named like the shader's variables; every binding must be given. */
export function makeBindGroup(device: GPUDevice, kernel: Kernel, resources: Readonly<Record<string, GPUBufferBinding>>, label: string): GPUBindGroup {
  const entries: GPUBindGroupEntry[] = [];
  for (const slot of kernel.slots.values()) {
    const r = resources[slot.name];
    if (!r) throw new WebgpuError(`${label}: no buffer given for binding '${slot.name}' of ${kernel.label}`);
    entries.push({ binding: slot.binding, resource: r });
  }
  for (const name of Object.keys(resources)) {
    if (!kernel.slots.has(name)) throw new WebgpuError(`${label}: ${kernel.label} has no binding '${name}' (it has ${[...kernel.slots.keys()].join(', ')})`);
  }
  return device.createBindGroup({ label, layout: kernel.layout, entries });
}
