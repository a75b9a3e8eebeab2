/** The js backend's kernel registry: one kernel per op name of the catalogue (views need none). */
import { elementwise } from './elementwise.js';
import { layout } from './layout.js';
import { matmul } from './matmul.js';
import { nn } from './nn.js';
import { reductions } from './reduce.js';
import type { JsKernel } from './types.js';

export const jsKernels: Readonly<Record<string, JsKernel>> = { matmul, ...elementwise, ...layout, ...reductions, ...nn };
export { adamw } from './adamw.js';
export type { FloatArray, JsData, JsKernel, View } from './types.js';
