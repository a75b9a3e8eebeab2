/** Model file formats: GGUF, safetensors (and Hugging Face checkpoints), llama2.c. Browser-safe. */
export * from './binary.js';
export * from './gguf.js';
export * from './gguf-llama.js';
export * from './safetensors.js';
export * from './hf.js';
export * from './llama2c.js';
export * from './checkpoint.js';
export * from './source.js';
export * from './storage.js';
