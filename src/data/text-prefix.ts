/**
 * A fixed text before every example (Lingo's "language prefix" for sequences that are not natural language,
 * e.g. "DNA sequence: " before a genome fragment): a tokenizer whose encode puts the prefix first, so every
 * data format (paragraphs, {"text"}, {"prompt", "completion"}: before the prompt) gets it the same way.
 */
import type { Tokenizer } from '../tokenizer/types.js';

export function withTextPrefix(tok: Tokenizer, prefix: string): Tokenizer {
  if (!prefix) return tok;
  return new Proxy(tok, {
    get(target, key, receiver) {
      if (key === 'encode') return (text: string, o?: Parameters<Tokenizer['encode']>[1]) => target.encode(prefix + text, o);
      const v = Reflect.get(target, key, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}
