/** The webgpu backend's kernel registry: one entry per op of the catalogue (views need none). */
import type { KernelImpl } from '../executable.js';
import { attention, attentionBackward } from './attention.js';
import { dequantize } from './compact.js';
import { crossEntropy, crossEntropyBackward } from './cross_entropy.js';
import { elementwise } from './elementwise.js';
import { embedding, embeddingBackward } from './embedding.js';
import { layout } from './layout.js';
import { matmul } from './matmul.js';
import { norms } from './norm.js';
import { reductions } from './reduce.js';
import { rope } from './rope.js';

export const webgpuKernels: Readonly<Record<string, KernelImpl>> = {
  matmul,
  ...elementwise,
  ...layout,
  ...reductions,
  ...norms,
  rope,
  attention,
  attention_backward: attentionBackward,
  embedding,
  embedding_backward: embeddingBackward,
  dequantize,
  cross_entropy: crossEntropy,
  cross_entropy_backward: crossEntropyBackward,
};
