/**
 * Export a SentencePiece-BPE vocabulary (GGUF llama, llama2.c tokenizer.bin) as a Hugging Face
 * `tokenizer.json` in the form `transformers` produces when it converts a Llama 2 `tokenizer.model`:
 * a BPE model with byte fallback, a normalizer that writes spaces as U+2581 and prepends one, no
 * pre-tokenizer (the whole text is one BPE word, as SentencePiece sees it), and a decoder undoing it.
 *
 * SentencePiece merges the adjacent pair whose concatenation is the highest-scoring piece; BPE merges
 * the pair with the lowest merge rank. Listing every split (a, b) of a piece into two pieces, ranked by
 * the piece's score (highest first), makes the two agree: at each step both pick the same pair, except
 * where different candidate pairs tie on score, which SentencePiece breaks leftmost-first and BPE by
 * rank (ids here). Vocabularies with distinct scores, such as those trained by SentencePiece, have none.
 */
import { SentencePieceTokenizer } from './sentencepiece.js';
import { TokenType, type TokenizerData } from './types.js';

const SPM_SPACE = '\u2581';

/** The tokens `transformers` treats as special: SentencePiece never produces them from text. */
function isSpecial(type: number): boolean {
  return type === TokenType.CONTROL || type === TokenType.UNKNOWN || type === TokenType.UNUSED;
}

/** Pieces the SentencePiece encoder can build from text, i.e. the ones merges may produce or consume. */
function isMergeable(type: number): boolean {
  return type === TokenType.NORMAL || type === TokenType.USER_DEFINED;
}

/** Build a Hugging Face tokenizer.json object equivalent to a SentencePiece-BPE vocabulary. */
export function sentencePieceToHfJson(data: TokenizerData): Record<string, unknown> {
  if (data.kind !== 'sentencepiece') throw new Error(`sentencePieceToHfJson: expected a sentencepiece vocabulary, got ${data.kind}`);
  const spm = new SentencePieceTokenizer(data);
  const types = spm.types;
  const n = data.tokens.length;
  const scores = data.scores ?? new Float32Array(n);
  // Hugging Face SentencePiece vocabularies always write spaces as U+2581; llama2.c stores ' '.
  const pieces = data.tokens.map((t, id) =>
    spm.spaceSymbol === ' ' && isMergeable(types[id]!) ? t.replaceAll(' ', SPM_SPACE) : t);

  // A null prototype so that a piece such as "__proto__" is stored as an ordinary key.
  const vocab: Record<string, number> = Object.create(null) as Record<string, number>;
  // Pieces the encoder can produce claim a duplicated string first, as the SentencePiece encoder
  // resolves a piece to its first mergeable id.
  const mergeable = new Map<string, number>();
  for (let id = 0; id < n; id++) {
    if (!isMergeable(types[id]!) || mergeable.has(pieces[id]!)) continue;
    mergeable.set(pieces[id]!, id);
    vocab[pieces[id]!] = id;
  }
  for (let id = 0; id < n; id++) {
    if (!(pieces[id]! in vocab)) vocab[pieces[id]!] = id;
  }

  const merges: [string, string, number, number, number][] = [];
  for (const [piece, id] of mergeable) {
    const chars = Array.from(piece);
    let left = '';
    for (let k = 1; k < chars.length; k++) {
      left += chars[k - 1]!;
      const right = piece.slice(left.length);
      const l = mergeable.get(left), r = mergeable.get(right);
      if (l !== undefined && r !== undefined) merges.push([left, right, id, l, r]);
    }
  }
  merges.sort((a, b) => scores[b[2]]! - scores[a[2]]! || a[2] - b[2] || a[3] - b[3] || a[4] - b[4]);
  // The "a b" string form is what older `tokenizers` releases read; a piece containing a space needs
  // the pair form (tokenizers 0.20 and later).
  const pairForm = merges.some(([a, b]) => a.includes(' ') || b.includes(' '));

  const addedTokens = [];
  for (let id = 0; id < n; id++) {
    if (!isSpecial(types[id]!)) continue;
    addedTokens.push({
      id, content: pieces[id]!, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    });
  }

  const addSpacePrefix = data.addSpacePrefix ?? true;
  const replaceSpaces = { type: 'Replace', pattern: { String: ' ' }, content: SPM_SPACE };
  const normalizer = addSpacePrefix
    ? { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: SPM_SPACE }, replaceSpaces] }
    : replaceSpaces;
  const decoders: Record<string, unknown>[] = [
    { type: 'Replace', pattern: { String: SPM_SPACE }, content: ' ' },
    { type: 'ByteFallback' },
    { type: 'Fuse' },
  ];
  if (addSpacePrefix) decoders.push({ type: 'Strip', content: ' ', start: 1, stop: 0 });

  const unk = data.unkId !== undefined ? pieces[data.unkId] ?? null : null;
  const bos = data.bosId !== undefined ? pieces[data.bosId] : undefined;
  let postProcessor: Record<string, unknown> | null = null;
  if (bos !== undefined && (data.addBos ?? true)) {
    const special = (type_id: number) => ({ SpecialToken: { id: bos, type_id } });
    const seq = (id: string, type_id: number) => ({ Sequence: { id, type_id } });
    postProcessor = {
      type: 'TemplateProcessing',
      single: [special(0), seq('A', 0)],
      pair: [special(0), seq('A', 0), special(1), seq('B', 1)],
      special_tokens: { [bos]: { id: bos, ids: [data.bosId], tokens: [bos] } },
    };
  }

  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer,
    pre_tokenizer: null,
    post_processor: postProcessor,
    decoder: { type: 'Sequence', decoders },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: unk,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      // SentencePiece emits one unknown piece for a run of unknown characters.
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: merges.map(([a, b]) => (pairForm ? [a, b] : `${a} ${b}`)),
    },
  };
}

/**
 * A minimal tokenizer_config.json to sit beside the exported tokenizer.json, so that
 * `AutoTokenizer.from_pretrained` adds BOS like the SentencePiece encoder and leaves spacing alone.
 */
export function tokenizerConfigJson(data: TokenizerData, modelMaxLength?: number): Record<string, unknown> {
  const spm = new SentencePieceTokenizer(data);
  const piece = (id: number | undefined) => (id === undefined ? null : spm.piece(id));
  const config: Record<string, unknown> = {
    tokenizer_class: 'LlamaTokenizerFast',
    bos_token: piece(data.bosId),
    eos_token: piece(data.eosId),
    unk_token: piece(data.unkId),
    pad_token: piece(data.padId),
    add_bos_token: data.bosId !== undefined && (data.addBos ?? true),
    add_eos_token: false,
    // The default clean-up would drop the space before punctuation that the tokens encode.
    clean_up_tokenization_spaces: false,
    legacy: true,
  };
  if (modelMaxLength !== undefined) config.model_max_length = modelMaxLength;
  if (data.chatTemplate !== undefined) config.chat_template = data.chatTemplate;
  return config;
}
