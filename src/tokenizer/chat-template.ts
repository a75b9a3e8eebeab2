/**
 * Chat templates: the Jinja `chat_template` of a Hugging Face tokenizer_config.json (a string, or a list
 * of {name, template} of which "default" is used) or GGUF's `tokenizer.chat_template` metadata, rendered
 * with @huggingface/jinja. `bos_token`, `eos_token`, `add_generation_prompt` and `raise_exception` are
 * available to the template as in transformers' apply_chat_template.
 */
import { Template } from '@huggingface/jinja';
import { TokenType, type Tokenizer, type TokenizerData } from './types.js';

export interface ChatMessage { role: string; content: string }

export class ChatTemplateError extends Error {
  constructor(message: string) { super(message); this.name = 'ChatTemplateError'; }
}

/** The template text of a tokenizer_config.json `chat_template` value (string, or list with a "default" entry). */
export function chatTemplateSource(value: unknown, where: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value.filter((t): t is { name: string; template: string } => !!t && typeof t === 'object' && typeof t.name === 'string' && typeof t.template === 'string');
    if (named.length !== value.length) throw new ChatTemplateError(`${where}: chat_template list entries must be {"name": string, "template": string}`);
    const def = named.find((t) => t.name === 'default');
    if (!def) throw new ChatTemplateError(`${where}: chat_template lists ${named.map((t) => JSON.stringify(t.name)).join(', ')} but no "default" template`);
    return def.template;
  }
  throw new ChatTemplateError(`${where}: chat_template is ${typeof value}, expected a string or a list of {name, template}`);
}

/** The message that names a missing template and how to give one. */
export function missingTemplateMessage(source: string | undefined): string {
  return `${source ?? 'the model'} has no chat template (tokenizer_config.json "chat_template" or GGUF "tokenizer.chat_template"); give one with --chat-template FILE (a Jinja file)`;
}

export class ChatTemplate {
  private readonly template: Template;
  private readonly vars: Record<string, unknown>;

  /** `source` is Jinja text; bos/eos token strings come from the tokenizer. */
  constructor(readonly source: string, data: Pick<TokenizerData, 'tokens' | 'bosId' | 'eosId'>, readonly name = 'chat template') {
    try { this.template = new Template(source); } catch (e) { throw new ChatTemplateError(`${name}: cannot parse the Jinja template (${(e as Error).message})`); }
    // llama2.c vocabularies store BOS/EOS as "\n<s>\n"; the token is "<s>".
    const piece = (id: number | undefined): string => (id === undefined ? '' : (data.tokens[id] ?? '').trim());
    this.vars = { bos_token: piece(data.bosId), eos_token: piece(data.eosId) };
  }

  /** The text for `messages`; `addGenerationPrompt` appends the opening of the assistant's turn. */
  render(messages: readonly ChatMessage[], addGenerationPrompt = false): string {
    try {
      return this.template.render({ ...this.vars, messages: messages.map((m) => ({ ...m })), add_generation_prompt: addGenerationPrompt });
    } catch (e) {
      throw new ChatTemplateError(`${this.name}: ${(e as Error).message}`);
    }
  }
}

/** The model's chat template, or `override` (Jinja text from --chat-template); a clear error when neither exists. */
export function chatTemplateFor(data: TokenizerData, override?: { text: string; name: string }): ChatTemplate {
  if (override) return new ChatTemplate(override.text, data, override.name);
  if (data.chatTemplate === undefined) throw new ChatTemplateError(missingTemplateMessage(data.source));
  return new ChatTemplate(data.chatTemplate, data, `${data.source ?? 'model'} chat template`);
}

/** End-of-turn tokens known from common families, used as stop tokens when the template writes them. */
const END_OF_TURN = ['<|im_end|>', '<|eot_id|>', '<end_of_turn>', '<|end|>', '<|endoftext|>'];

/** Ids that end an assistant turn: EOS, and any known end-of-turn special token the template text contains. */
export function endOfTurnIds(data: TokenizerData, template: ChatTemplate): number[] {
  const out = new Set<number>();
  if (data.eosId !== undefined) out.add(data.eosId);
  for (const t of END_OF_TURN) {
    if (!template.source.includes(t)) continue;
    const id = data.tokens.indexOf(t);
    if (id >= 0) out.add(id);
  }
  return [...out];
}

/**
 * Splits text into runs of plain text and special tokens (control and user-defined pieces of the vocabulary,
 * longest first), so `<|im_start|>` in rendered text becomes its id instead of being tokenised as characters.
 */
export class SpecialSplitter {
  private readonly re: RegExp | null;
  private readonly ids = new Map<string, number>();

  constructor(data: Pick<TokenizerData, 'tokens' | 'types' | 'bosId' | 'eosId' | 'unkId'>) {
    const special = (id: number): boolean => {
      const t = data.types?.[id];
      if (t !== undefined) return t === TokenType.CONTROL || t === TokenType.USER_DEFINED;
      return id === data.bosId || id === data.eosId || id === data.unkId;
    };
    // Control pieces are matched without surrounding whitespace (llama2.c stores BOS as "\n<s>\n").
    data.tokens.forEach((p, id) => {
      const t = p.trim() || p;
      if (t.length > 0 && special(id) && !this.ids.has(t)) this.ids.set(t, id);
    });
    const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const contents = [...this.ids.keys()].sort((a, b) => b.length - a.length);
    this.re = contents.length ? new RegExp(contents.map(esc).join('|'), 'gu') : null;
  }

  /** Token ids for `text`: special tokens mapped to their ids, the text between them encoded without BOS. */
  encode(text: string, tok: Tokenizer): number[] {
    const out: number[] = [];
    let at = 0;
    const plain = (s: string): void => { if (s) out.push(...tok.encode(s, { bos: false })); };
    if (this.re) {
      for (const m of text.matchAll(this.re)) {
        plain(text.slice(at, m.index));
        out.push(this.ids.get(m[0])!);
        at = m.index! + m[0].length;
      }
    }
    plain(text.slice(at));
    return out;
  }
}
