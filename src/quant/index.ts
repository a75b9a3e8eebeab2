/** Compact number formats for frozen weights (f16, bf16, q8_0, q4_0, q4_1). Browser-safe, no dependencies. */
export * from './types.js';
export * from './codec.js';
export * from './half.js';
