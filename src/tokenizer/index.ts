/**
 * Tokenizers: SentencePiece-style BPE (GGUF llama vocabularies, llama2.c tokenizer.bin) and Hugging Face
 * tokenizer.json BPE, behind one interface.
 */
import { HfBpeTokenizer } from './hf-json.js';
import { SentencePieceTokenizer } from './sentencepiece.js';
import { WordPieceTokenizer } from './wordpiece.js';
import type { Tokenizer, TokenizerData } from './types.js';

export * from './types.js';
export { SentencePieceTokenizer, resolveTokenTypes } from './sentencepiece.js';
export { HfBpeTokenizer, tokenizerDataFromHfJson } from './hf-json.js';
export { WordPieceTokenizer } from './wordpiece.js';
export { ChatTemplate, ChatTemplateError, type ChatMessage, chatTemplateFor, chatTemplateSource, endOfTurnIds, missingTemplateMessage, SpecialSplitter } from './chat-template.js';
export { sentencePieceToHfJson, tokenizerConfigJson } from './hf-export.js';

/** The tokenizer for a description produced by any loader. */
export function createTokenizer(data: TokenizerData): Tokenizer {
  switch (data.kind) {
    case 'sentencepiece': return new SentencePieceTokenizer(data);
    case 'hf-json': return (data.json as { model?: { type?: string } } | undefined)?.model?.type === 'WordPiece' ? new WordPieceTokenizer(data) : new HfBpeTokenizer(data);
    default: throw new Error(`unknown tokenizer kind ${String((data as { kind: unknown }).kind)}`);
  }
}
