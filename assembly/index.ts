// The module's exports. The host owns the imported memory and everything in it; the module keeps no
// heap of its own, so any number of instances (one per thread) can share one memory.
import { gemmScratchBytes, matmulJob } from './matmul';
import { attentionBackwardJob, attentionJob, attentionScratchBytes } from './attention';
import { rowsJob } from './rows';

export { gather, copyRows, zero, kvWrite, embedding, embeddingBackward } from './layout';
export { reduce } from './reduce';
export { sumPartials } from './norm';
export { crossEntropyFinish } from './loss';
export { fill32 } from './simd';
export { dequantize, embeddingCompact } from './compact';

export const JOB_MATMUL = 1;
export const JOB_ATTENTION = 2;
export const JOB_ATTENTION_BACKWARD = 3;
export const JOB_ROWS = 4;

// Where the host may start placing its own data (above this module's static data).
export function heapBase(): usize {
  return __heap_base;
}

/** Per-thread scratch bytes a job needs; S: keys, for the attention jobs. */
export function scratchBytes(job: i32, S: i32): i32 {
  if (job == JOB_MATMUL) return gemmScratchBytes();
  if (job == JOB_ATTENTION || job == JOB_ATTENTION_BACKWARD) return attentionScratchBytes(S);
  return 0;
}

// One entry for every parallel kernel, so the worker loop needs no per-kernel code.
export function runJob(job: i32, desc: usize, tid: i32, nth: i32): void {
  if (job == JOB_MATMUL) matmulJob(desc, tid, nth);
  else if (job == JOB_ATTENTION) attentionJob(desc, tid, nth);
  else if (job == JOB_ATTENTION_BACKWARD) attentionBackwardJob(desc, tid, nth);
  else if (job == JOB_ROWS) rowsJob(desc, tid, nth);
}
