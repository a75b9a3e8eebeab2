/**
 * A graph compiled for one backend: its memory plan loaded, its frozen weights uploaded once, ready to
 * run step after step. Values are addressed by tensor or by name.
 */
import type { Backend, Executable, ExecutionPlan, HostArray } from '../backends/backend.js';
import type { Graph, Tensor } from '../graph/graph.js';
import { GraphError } from '../graph/types.js';
import { planGraph } from './plan.js';

export type ValueRef = Tensor | string | number;

export class Session {
  private constructor(readonly graph: Graph, readonly plan: ExecutionPlan, readonly exe: Executable, readonly backend: Backend) {}

  /** Plan the graph (or take a plan already made of it) and load it on the backend. */
  /**
   * Load `graph` on `backend`. `weights` (param tensor or value id → data) are loaded with it; sessions
   * given the same host array for a weight share one copy on the backend (see Backend.load).
   */
  static async create(graph: Graph, backend: Backend, plan: ExecutionPlan = planGraph(graph), weights?: ReadonlyMap<Tensor | number, HostArray>): Promise<Session> {
    const byId = weights ? new Map([...weights].map(([k, v]) => [typeof k === 'number' ? k : k.id, v])) : undefined;
    return new Session(graph, plan, await backend.load(plan, byId), backend);
  }

  id(ref: ValueRef): number {
    if (typeof ref === 'number') return ref;
    if (typeof ref === 'string') {
      const t = this.graph.byName(ref);
      if (!t) throw new GraphError(`no value named '${ref}' in this graph`);
      return t.id;
    }
    if (ref.graph !== this.graph) throw new GraphError(`${ref} belongs to another graph`);
    return ref.id;
  }

  set(ref: ValueRef, data: HostArray | readonly number[]): void {
    const id = this.id(ref);
    const info = this.graph.values[id]!;
    const arr = Array.isArray(data) ? (info.dtype === 'i32' ? Int32Array.from(data) : Float32Array.from(data)) : (data as HostArray);
    this.exe.write(id, arr);
  }

  run(skip?: Uint8Array): Promise<void> { return this.exe.run(skip); }

  async get(ref: ValueRef): Promise<HostArray> { return (await this.exe.read([this.id(ref)]))[0]!; }
  getMany(refs: readonly ValueRef[]): Promise<HostArray[]> { return this.exe.read(refs.map((r) => this.id(r))); }

  dispose(): void { this.exe.dispose(); }
}
