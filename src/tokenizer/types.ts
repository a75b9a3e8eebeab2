/**
 * The tokenizer description every loader produces (GGUF metadata, llama2.c tokenizer.bin, Hugging Face
 * tokenizer.json), and the interface every tokenizer implements.
 */

/** SentencePiece / GGUF token types (`tokenizer.ggml.token_type`, llama.cpp's llama_token_type). */
export const TokenType = {
  UNDEFINED: 0,
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

export interface TokenizerData {
  /**
   * - `sentencepiece`: BPE that merges the highest-scoring adjacent pair whose concatenation is a piece
   *   (llama, llama2.c), with `<0xXX>` byte fallback.
   * - `hf-json`: a Hugging Face `tokenizer.json`, kept as parsed JSON in `json`.
   */
  kind: 'sentencepiece' | 'hf-json';
  /** Pieces as stored: GGUF and HF SentencePiece vocabularies write spaces as U+2581, llama2.c as ' '. */
  tokens: string[];
  /** Merge priority per token (higher merges first); `sentencepiece` only. */
  scores?: Float32Array;
  /** TokenType per token; when absent, `<0xXX>` pieces count as bytes and bos/eos/unk as control. */
  types?: Int32Array;
  bosId?: number;
  eosId?: number;
  unkId?: number;
  padId?: number;
  /** Whether encoding prepends a space (SentencePiece's add_dummy_prefix); default true. */
  addSpacePrefix?: boolean;
  /** Whether `encode` adds BOS when the caller does not say; default true where bosId is set. */
  addBos?: boolean;
  /** The parsed tokenizer.json (`hf-json` only). */
  json?: unknown;
  /** Where it came from, for messages. */
  source?: string;
  /** Jinja chat template (tokenizer_config.json `chat_template`, GGUF `tokenizer.chat_template`). */
  chatTemplate?: string;
}

export interface EncodeOptions {
  /** Prepend BOS (default: the tokenizer's addBos). */
  bos?: boolean;
  /** Append EOS (default false). */
  eos?: boolean;
}

export interface DecodeOptions {
  /**
   * Drop the leading space of the first piece even when no BOS precedes it. By default, as in llama2.c,
   * only a piece that directly follows BOS loses its leading space (the dummy prefix added by encode),
   * so decoding a slice of a longer sequence keeps its spaces.
   */
  stripLeadingSpace?: boolean;
  /** Render control tokens (`<s>`, `</s>`) as text instead of dropping them. */
  special?: boolean;
}

export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  encode(text: string, options?: EncodeOptions): number[];
  decode(ids: ArrayLike<number>, options?: DecodeOptions): string;
  /** The bytes a token contributes to decoded text (empty for control tokens). */
  tokenBytes(id: number): Uint8Array;
  /** The stored piece for an id (e.g. `▁the`, `<0x0A>`). */
  piece(id: number): string;
  /** A decoder for printing tokens as they are generated. */
  streamDecoder(options?: DecodeOptions): StreamDecoder;
}

/**
 * Turns tokens into text one at a time. Bytes of a character split across byte tokens are held back
 * until the character is complete; `flush` emits whatever is left (invalid bytes as U+FFFD).
 * Concatenating every `push` and the final `flush` gives exactly `decode(ids)`.
 */
export interface StreamDecoder {
  push(id: number): string;
  flush(): string;
}
