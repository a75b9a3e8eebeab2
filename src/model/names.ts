/**
 * Names shared by the model families. This module imports nothing on purpose: the family modules and the
 * loaders import each other (families.ts ↔ formats/ ↔ llama.ts), and a constant read while a family object is
 * being built must come from a module that is always fully initialised, whichever file a program imports first.
 */

/** Hugging Face model types whose weights use Llama's names and shapes. */
export const LLAMA_MODEL_TYPES: readonly string[] = ['llama', 'mistral', 'qwen2', 'qwen3', 'granite'];

/** The seven projections adapters usually target, in Hugging Face naming. */
export const LLAMA_PROJECTIONS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;

/** The decoding graph's input that selects a virtual token or the real one (see ModelHooks.embeddings). */
export const VIRTUAL_SLOT_INPUT = 'virtual_slot';

/**
 * The i32 [B] input holding each batch row's task id, read by adapters that route by task (Poly); graphs
 * have it only when such an adapter is active (ModelHooks.tasks).
 */
export const TASK_ID_INPUT = 'task_ids';

/**
 * The f32 [B, D] input holding each row's instance representation (IDPT): the mean base embedding of the
 * row's context tokens, computed on the host (ModelHooks.instance); graphs have it only when such an
 * adapter is active.
 */
export const INSTANCE_INPUT = 'instance_repr';
