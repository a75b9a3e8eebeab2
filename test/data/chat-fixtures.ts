/** A small byte-level BPE tokenizer with the special tokens of common chat families, and templates in their styles. */
import { createTokenizer, tokenizerDataFromHfJson } from '../../src/tokenizer/index.js';

export const SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|begin_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>', '<bos>', '<eos>', '<start_of_turn>', '<end_of_turn>'];

export function chatTokenizerJson(): Record<string, unknown> {
  const chars: string[] = [];
  for (let b = 0, n = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    chars.push(String.fromCodePoint(printable ? b : 256 + n++));
  }
  const vocab: Record<string, number> = {};
  chars.forEach((c, i) => { vocab[c] = i; });
  const merges = ['h e', 'Ġ t', 'Ġt he', 'l l', 'e ll', 'H ell', 'Hell o', 'o w', 'Ġ w', 'Ġw o', 'Ċ Ċ', 'u s', 'us er', 'a s', 'as s'];
  for (const m of merges) vocab[m.replace(' ', '')] = Object.keys(vocab).length;
  const base = Object.keys(vocab).length;
  return {
    added_tokens: SPECIALS.map((content, i) => ({ id: base + i, content, special: true, lstrip: false, rstrip: false, normalized: false, single_word: false })),
    normalizer: null, pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }, decoder: { type: 'ByteLevel' },
    model: { type: 'BPE', vocab, merges, byte_fallback: false, ignore_merges: false },
  };
}

export const CHATML = "{%- for message in messages %}{%- if message.role not in ['system', 'user', 'assistant'] %}{{ raise_exception('Unknown role: ' + message.role) }}{%- endif %}"
  + "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{%- endfor %}"
  + "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}";

export const LLAMA3 = "{{- bos_token }}{%- for message in messages %}"
  + "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}"
  + "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";

export const GEMMA = "{{ bos_token }}{%- if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{%- endif %}"
  + "{%- for message in messages %}{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif %}"
  + "{%- if message['role'] == 'assistant' %}{%- set role = 'model' %}{%- else %}{%- set role = message['role'] %}{%- endif %}"
  + "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{%- endfor %}"
  + "{%- if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{%- endif %}";

/** Tokenizer data as tokenizer.json + tokenizer_config.json give it. */
export function chatTokenizer(config: Record<string, unknown>) {
  const data = tokenizerDataFromHfJson(chatTokenizerJson(), 'tok/tokenizer.json', config);
  return { data, tok: createTokenizer(data) };
}
