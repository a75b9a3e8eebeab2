/** Loads every op definition into the catalogue. */
import './elementwise.js';
import './reduce.js';
import './layout.js';
import './matmul.js';
import './nn.js';
export { getOp, hasOp, opNames } from './registry.js';
export type { GradContext, OpDef, OutSpec } from './registry.js';
