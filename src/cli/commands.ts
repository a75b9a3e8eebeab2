/**
 * The adaptkit commands: generate, eval, info, train, merge, poly-to-lora, compose, convert, tokenize, prune-vocab, select, analyze, search, quickstart. The same code runs in Node and
 * Deno (node: built-ins); output meant for programs goes to stdout, progress to stderr.
 */
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AdaptedModel } from '../adapters/adapted-model.js';
import type { Backend } from '../backends/backend.js';
import { loadPeft, savePeft } from '../adapters/peft.js';
import { getMethod, methodNames } from '../adapters/registry.js';
import type { PolyConfig, PolyMode } from '../adapters/poly/index.js';
import { attachPolyAsLora, reusePoly } from '../adapters/poly/reuse.js';
import { type MixedDeps, mixedEval, mixedGenerate, rowAdapterFlags } from './mixed.js';
import { routeTopK, trainPhatgooseCommand } from './phatgoose.js';
import { trainFedinsCommand } from './fedins.js';
import { trainConpetCommand } from './conpet.js';
import { modelModules, selectTargets } from '../adapters/targets.js';
import { HERO_MARKER, HERO_OPENING, heroStories } from '../data/builtin-task.js';
import { type ChatData, type Example, pack, streamExamples, textExamples } from '../data/dataset.js';
import { paragraphs } from '../data/text.js';
import { numel } from '../formats/binary.js';
import { type LlamaCheckpoint, type LlamaConfig, isCompactTensor, loadCheckpoint, tensorDType, tensorF32, withRopeLayout } from '../formats/checkpoint.js';
import { familyOf } from '../model/families.js';
import type { CeChunk } from '../model/loss.js';
import { formatBytes, formatEstimate, memoryProblem } from '../scheduler/memory.js';
import { estimateTraining, fittingVariants } from '../train/memory.js';
import { checkpointToGguf, ggufTokenizerData } from '../formats/gguf-llama.js';
import { parseGguf } from '../formats/gguf.js';
import { type SafetensorsWriteTensor, writeSafetensors } from '../formats/safetensors.js';
import { BASE_DTYPES, type BaseDType, parseBaseDType } from '../formats/storage.js';
import { GGML_TYPE_OF } from '../quant/codec.js';
import { EVAL_RANGES, GENERATE_RANGES, type GenerateOptions, LlamaRuntime } from '../model/runtime.js';
import { proxyGenerate } from '../decoding/proxy.js';
import { DRAFT_RANGES, draftGenerate } from '../decoding/draft/decode.js';
import { trigramFromText } from '../decoding/draft/trigram.js';
import { RuleModel, rulesGenerate } from '../decoding/rules.js';
import { BACKEND_CHOICES, type ChosenBackend, createBackend } from '../scheduler/backends.js';
import { formatProfile } from '../scheduler/profile.js';
import { type ChatTemplate, chatTemplateFor, endOfTurnIds, SpecialSplitter } from '../tokenizer/chat-template.js';
import { createTokenizer, sentencePieceToHfJson, type Tokenizer, type TokenizerData, tokenizerConfigJson, tokenizerDataFromHfJson } from '../tokenizer/index.js';
import { FINE_TUNE_RANGES, fineTune } from '../train/finetune.js';
import { decodeTrainingState, encodeTrainingState, TRAINING_STATE_FILE, type TrainingState } from '../train/training-state.js';
import { checkModelLimits, type FlagSpec, type Flags, UsageError, need, parseFlags, usage } from './args.js';
import { resolveModel } from './model-source.js';
import { checkOutput, prepareOutput, resolveResume, writeFileAtomic, writeFolderAtomic } from './output.js';
import { Progress } from './progress.js';
import { augmentedCommand, checkObjectiveFlags, distillCommand, multiCommand, parseAugment, trainDpoCommand } from './train-objectives.js';
import { augmentExamples } from '../objectives/augment/tokens.js';
import { withTextPrefix } from '../data/text-prefix.js';
import { checkTeacher } from '../objectives/distill/train.js';
import { type ModelFormat, writeModel } from './write-model.js';
import { pruneVocabCommand, pruneVocabFlags } from './prune-vocab.js';
import { tokenize, tokenizeFlags } from './tokenize.js';
import { selectCommand, selectFlags } from './select.js';
import { applyDeltaToCheckpoint, isDeltaFolder, loadDeltaFolder } from '../updaters/sparse/folder.js';
import { composeCommand, composeFlags } from './compose.js';
import { baseMethodFlags, isBaseMethod, isModelFolder, loadModelFolder, trainBaseCommand } from './train-base.js';
import { UPDATERS } from '../updaters/index.js';
import { initSampleFromBlocks } from '../adapters/init-sample.js';
import type { LoraConfig } from '../adapters/lora/config.js';
import { evalClassifier, predictCommand, predictFlags, taskFlag, trainClassifier } from './classify.js';
import { analyzeCommand, analyzeFlags } from './analyze.js';
import { searchCommand, searchFlags } from './search.js';

const err = (s: string): void => { process.stderr.write(`${s}\n`); };

const common: Record<string, FlagSpec> = {
  backend: { type: 'string', help: `compute backend: ${BACKEND_CHOICES.join(' | ')}`, default: 'auto', range: { oneOf: BACKEND_CHOICES } },
  threads: { type: 'int', help: 'wasm worker threads (default: all cores)', range: { integer: true, min: 1, max: 256 } },
  help: { type: 'bool', help: 'show this help' },
};
const modelFlags: Record<string, FlagSpec> = {
  model: { type: 'string', help: 'model: a .gguf, llama2.c .bin, safetensors folder, URL or Hugging Face repo id' },
  tokenizer: { type: 'string', help: "the vocabulary when the model has none: a llama2.c tokenizer.bin (default: tok<vocab>.bin beside a .bin model), a .gguf or a tokenizer.json", path: { kind: 'file' } },
};
const baseDtypeFlag: Record<string, FlagSpec> = {
  'base-dtype': {
    type: 'string', default: 'auto',
    help: `type of the frozen base weights in memory: ${BASE_DTYPES.join(' | ')}; auto keeps the file's values (F16, BF16, Q8_0, Q4_0, Q4_1 as stored; Q4_K as q4_1 and Q5_0 as q8_0, exactly; other GGUF quants are requantised to q8_0), the others convert on load`,
  },
};

/** --base-dtype, checked before anything is loaded. */
function baseDtypeOf(f: Flags): BaseDType {
  try {
    return parseBaseDType(f['base-dtype'] ?? 'auto', '--base-dtype');
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

async function openModel(f: Flags, baseDtype: BaseDType = baseDtypeOf(f)): Promise<{ ckpt: LlamaCheckpoint; tok?: Tokenizer }> {
  const path = await resolveModel(need(f, 'model', 'model'), err);
  const tokPath = f.tokenizer ? String(f.tokenizer) : undefined;
  const borrowed = tokPath && /\.(gguf|json)$/i.test(tokPath);
  const ckpt = await loadCheckpoint(path, { ...(tokPath && !borrowed ? { tokenizer: tokPath } : {}), baseDtype });
  for (const note of ckpt.notes ?? []) err(`note: ${note}`);
  const data = borrowed ? await tokenizerFrom(tokPath) : ckpt.tokenizer;
  return data ? { ckpt: { ...ckpt, tokenizer: data }, tok: createTokenizer(data) } : { ckpt };
}

/** `openModel` for commands that need text: fails when the model has no tokenizer. */
async function openTextModel(f: Flags): Promise<{ ckpt: LlamaCheckpoint; tok: Tokenizer }> {
  const { ckpt, tok } = await openModel(f);
  if (!tok) throw new Error(`${ckpt.source}: the model has no tokenizer; pass --tokenizer (a tokenizer.bin, .gguf or tokenizer.json)`);
  return { ckpt, tok };
}

/** How many weights of each storage type a checkpoint holds, e.g. "q8_0 ×30, f16 ×5, f32 ×11". */
function storageSummary(ckpt: LlamaCheckpoint): string {
  const counts = new Map<string, number>();
  for (const t of ckpt.tensors.values()) counts.set(tensorDType(t), (counts.get(tensorDType(t)) ?? 0) + 1);
  return [...counts].map(([d, n]) => `${d} ×${n}`).join(', ');
}

/** A vocabulary borrowed from another file: a GGUF model's, or a Hugging Face tokenizer.json. */
async function tokenizerFrom(path: string): Promise<TokenizerData> {
  const bytes = new Uint8Array(await readFile(path).catch((e: Error) => { throw new Error(`${path}: ${e.message}`); }));
  if (/\.json$/i.test(path)) {
    let json: unknown;
    try { json = JSON.parse(new TextDecoder().decode(bytes)); } catch (e) { throw new Error(`--tokenizer ${path}: not valid JSON (${(e as Error).message})`); }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`--tokenizer ${path}: expected a tokenizer.json object`);
    return tokenizerDataFromHfJson(json as Record<string, unknown>, path);
  }
  const data = ggufTokenizerData(parseGguf(bytes, path));
  if (!data) throw new Error(`${path}: this GGUF file has no tokenizer`);
  return data;
}

async function openBackend(f: Flags, quiet = false): Promise<ChosenBackend> {
  const chosen = await createBackend(String(f.backend ?? 'auto'), f.threads !== undefined ? { threads: Number(f.threads) } : {});
  if (!quiet) err(`backend: ${chosen.backend.describe()} (${chosen.reason})`);
  return chosen;
}

async function readAdapterDir(model: AdaptedModel, dir: string, name = 'default') {
  const cfgPath = join(dir, 'adapter_config.json'), wPath = join(dir, 'adapter_model.safetensors');
  for (const p of [cfgPath, wPath]) if (!existsSync(p)) throw new Error(`${dir}: not a PEFT adapter folder (missing ${p.slice(dir.length + 1)}) nor a model folder (config.json and model.safetensors, or model.gguf)`);
  return loadPeft(model, name, { config: await readFile(cfgPath, 'utf8'), weights: new Uint8Array(await readFile(wPath)) }, dir);
}

async function runtimeFor(f: Flags, ckpt: LlamaCheckpoint, chosen: ChosenBackend): Promise<LlamaRuntime> {
  if (!f.adapter) return new LlamaRuntime(ckpt, chosen.backend);
  // A sparse delta (train --method spiel, …) is added to the base model.
  if (isDeltaFolder(String(f.adapter))) return new LlamaRuntime(applyDeltaToCheckpoint(ckpt, (await loadDeltaFolder(String(f.adapter))).delta, `--adapter ${f.adapter}`), chosen.backend);
  // A whole model (train --method full|lisa|hft) is used in the base model's place.
  if (isModelFolder(String(f.adapter))) return new LlamaRuntime(await loadModelFolder(String(f.adapter), ckpt, baseDtypeOf(f)), chosen.backend);
  const model = new AdaptedModel(ckpt);
  routeTopK(f, await readAdapterDir(model, String(f.adapter)));
  return model.runtime(chosen.backend);
}

// ---------------------------------------------------------------------------------------------- generate

const chatTemplateFlag: Record<string, FlagSpec> = {
  'chat-template': { type: 'string', help: "a Jinja chat template file, used instead of the model's (tokenizer_config.json chat_template, GGUF tokenizer.chat_template)", path: { kind: 'file' } },
};

/** The chat template: --chat-template FILE, else the model's; a clear error naming what is missing. */
async function chatTemplateOf(f: Flags, data: TokenizerData): Promise<ChatTemplate> {
  const file = f['chat-template'] === undefined ? undefined : String(f['chat-template']);
  const text = file === undefined ? undefined : await readFile(file, 'utf8');
  return chatTemplateFor(data, text === undefined ? undefined : { text, name: file! });
}

const taskIdFlag: Record<string, FlagSpec> = {
  'task-id': { type: 'int', help: 'the task id a Poly adapter routes by (default 0 when it has one task; required when it has more)', range: GENERATE_RANGES.task },
  'route-top-k': { type: 'int', help: 'with a PHATGOOSE --adapter: route each token to this many experts instead of the top_k it was saved with (at most its experts)', range: { integer: true, min: 1 } },
};

const generateFlags: Record<string, FlagSpec> = {
  ...modelFlags,
  prompt: { type: 'string', help: 'text to continue (default: start from BOS)', default: '' },
  chat: { type: 'bool', help: "render --prompt as one user message with the chat template and its generation prompt; stop at the template's end-of-turn token" },
  ...chatTemplateFlag,
  'max-tokens': { type: 'int', help: "tokens to generate (fewer when the model's context fills up first, which is reported)", default: 256, range: GENERATE_RANGES.maxTokens },
  temperature: { type: 'number', help: 'sampling temperature; 0 is greedy', default: 0, range: GENERATE_RANGES.temperature },
  'top-k': { type: 'int', help: 'sample among the k most likely tokens (0: all)', default: 0, range: GENERATE_RANGES.topK },
  'top-p': { type: 'number', help: 'nucleus sampling mass', default: 1, range: GENERATE_RANGES.topP },
  'repetition-penalty': { type: 'number', help: 'penalty for tokens already seen (1: off)', default: 1, range: GENERATE_RANGES.repetitionPenalty },
  mirostat: { type: 'number', help: 'Mirostat 2.0 target surprise τ in bits (enables Mirostat)', range: GENERATE_RANGES.mirostatTau },
  'mirostat-eta': { type: 'number', help: 'Mirostat learning rate η', default: 0.1, range: GENERATE_RANGES.mirostatEta },
  seed: { type: 'int', help: 'random seed for sampling', default: 0, range: GENERATE_RANGES.seed },
  adapter: { type: 'string', help: 'a PEFT adapter folder to apply, or a model folder written by train --method full|lisa|hft (used in place of --model), or a sparse-delta folder written by train --method spiel (added to --model)', path: { kind: 'folder' } },
  ...taskIdFlag,
  ...rowAdapterFlags,
  'proxy-expert': { type: 'string', help: 'proxy-tuning: the tuned small model, a model or a PEFT adapter folder (applied to --proxy-anti); each step decodes base + α·(expert − anti-expert) logits' },
  'proxy-anti': { type: 'string', help: 'proxy-tuning: the untuned small model (the anti-expert); all three models must share the tokenizer' },
  'proxy-alpha': { type: 'number', help: 'proxy-tuning: α, how much of the expert\'s change is applied', default: 1 },
  rules: { type: 'bool', help: 'decode the model as a product of experts with a hand-written rule model (Hewitt et al. 2024): an EOS ramp over the first --rules-eos-end tokens, biases against "I", "What", "should", "We" and prompt markup, for list and heading markup, and a first token that is a word' },
  'rules-eos-end': { type: 'int', help: 'with --rules: generated tokens over which the EOS bias rises to its top', default: 250, range: { integer: true, min: 1 } },
  draft: { type: 'string', help: 'draft-and-verify greedy decoding (ADED-style, Liu et al. 2024): trigram drafts a tree of continuations from --draft-corpus, the model checks the whole tree in one pass; the text is plain greedy decoding\'s, in fewer passes', range: { oneOf: ['trigram'] } },
  'draft-corpus': { type: 'string', help: "with --draft: a text file whose tri-grams (tokenised with the model's tokenizer, per blank-line paragraph) seed the draft table", path: { kind: 'file' } },
  'draft-depth': { type: 'int', help: 'with --draft: the deepest drafted token of a tree', default: 4, range: DRAFT_RANGES.depth },
  'draft-width': { type: 'int', help: 'with --draft: most drafted children of one token', default: 2, range: DRAFT_RANGES.width },
  'draft-budget': { type: 'int', help: 'with --draft: most drafted tokens per tree (default depth × width)', range: DRAFT_RANGES.budget },
  'draft-keep': { type: 'int', help: 'with --draft: continuations kept per two-token context of the table', default: 8, range: { integer: true, min: 1, max: 1024 } },
  'draft-stats': { type: 'bool', help: 'with --draft: print the passes, tokens and accepted drafted tokens per pass on stderr' },
  ...baseDtypeFlag,
  ...common,
};

/** --proxy-expert / --proxy-anti: the expert's and anti-expert's runtimes on the chosen backend. */
async function proxyRuntimes(f: Flags, chosen: ChosenBackend): Promise<{ expert: LlamaRuntime; anti: LlamaRuntime } | undefined> {
  const [e, a] = [f['proxy-expert'], f['proxy-anti']];
  if (e === undefined && a === undefined) return undefined;
  if (e === undefined || a === undefined) throw new UsageError('proxy-tuning needs both --proxy-expert and --proxy-anti');
  const anti = await loadCheckpoint(await resolveModel(String(a), err), { baseDtype: baseDtypeOf(f) });
  if (existsSync(join(String(e), 'adapter_config.json'))) {
    const tuned = new AdaptedModel(anti);
    await readAdapterDir(tuned, String(e));
    return { expert: tuned.runtime(chosen.backend), anti: new LlamaRuntime(anti, chosen.backend) };
  }
  const expert = await loadCheckpoint(await resolveModel(String(e), err), { baseDtype: baseDtypeOf(f) });
  return { expert: new LlamaRuntime(expert, chosen.backend), anti: new LlamaRuntime(anti, chosen.backend) };
}

/**
 * --draft: refused, before any work, with the options it cannot honour (it decodes greedily, alone);
 * returns whether draft decoding was asked for.
 */
function checkDraftFlags(f: Flags): boolean {
  const draftOnly = ['draft-corpus', 'draft-budget', 'draft-stats'];
  if (f.draft === undefined) {
    const stray = draftOnly.find((k) => f[k] !== undefined && f[k] !== false);
    if (stray) throw new UsageError(`--${stray} needs --draft trigram`);
    return false;
  }
  if (f['draft-corpus'] === undefined) throw new UsageError('--draft trigram needs --draft-corpus FILE (the text its tri-gram table is built from)');
  const conflicts: [string, boolean][] = [
    ['--temperature > 0 (draft decoding is greedy)', Number(f.temperature) > 0],
    ['--top-k (draft decoding is greedy)', Number(f['top-k']) !== 0],
    ['--top-p (draft decoding is greedy)', Number(f['top-p']) !== 1],
    ['--repetition-penalty (draft decoding is plain greedy)', Number(f['repetition-penalty']) !== 1],
    ['--mirostat (draft decoding is greedy)', f.mirostat !== undefined],
    ['proxy-tuning', f['proxy-expert'] !== undefined || f['proxy-anti'] !== undefined],
    ['--rules', f.rules === true],
  ];
  const bad = conflicts.find(([, on]) => on);
  if (bad) throw new UsageError(`--draft does not combine with ${bad[0]}`);
  return true;
}

const mixedDeps: MixedDeps = { openTextModel, openBackend, readAdapterDir, err };

async function generate(f: Flags): Promise<void> {
  if (f['row-adapter'] !== undefined) return mixedGenerate(f, mixedDeps);
  const drafting = checkDraftFlags(f);
  const { ckpt, tok } = await openTextModel(f);
  if ((f['proxy-expert'] === undefined) !== (f['proxy-anti'] === undefined)) throw new UsageError('proxy-tuning needs both --proxy-expert and --proxy-anti');
  if (f.rules && f['proxy-expert'] !== undefined) throw new UsageError('--rules and proxy-tuning are separate decoders; use one at a time');
  // The chat template is checked before the backend starts: a model without one fails at once.
  const chat = f.chat ? chatPrompt(await chatTemplateOf(f, ckpt.tokenizer!), ckpt.tokenizer!, tok, String(f.prompt ?? '')) : undefined;
  const chosen = await openBackend(f);
  const rt = await runtimeFor(f, ckpt, chosen);
  const proxy = await proxyRuntimes(f, chosen);
  const prompt = chat ? chat.ids : tok.encode(String(f.prompt ?? ''), { bos: true });
  const stream = tok.streamDecoder({ stripLeadingSpace: !f.prompt || !!chat });
  if (f.prompt && !chat) process.stdout.write(String(f.prompt));
  const rules = f.rules ? new RuleModel(ckpt.tokenizer!, { eosEnd: Number(f['rules-eos-end']) }) : undefined;
  const table = drafting ? trigramFromText(await readFile(String(f['draft-corpus']), 'utf8'), tok, { keep: Number(f['draft-keep']) }) : undefined;
  const drafted = async (o: GenerateOptions): Promise<number[]> => {
    const r = await draftGenerate(rt, table!, prompt, {
      ...o, depth: Number(f['draft-depth']), width: Number(f['draft-width']), ...(f['draft-budget'] !== undefined ? { budget: Number(f['draft-budget']) } : {}),
    });
    if (f['draft-stats']) err(`draft: ${r.stats.tokens} tokens in ${r.stats.passes} passes (${(r.stats.tokens / Math.max(1, r.stats.passes)).toFixed(2)} per pass, ${r.stats.accepted} drafted tokens accepted; ${r.stats.promptPasses} prompt passes)`);
    return r.tokens;
  };
  const run = (o: GenerateOptions) => (table ? drafted(o) : proxy ? proxyGenerate(rt, proxy.expert, proxy.anti, prompt, { ...o, alpha: Number(f['proxy-alpha']) }) : rules ? rulesGenerate(rt, rules, prompt, o) : rt.generate(prompt, o));
  await run({
    ...(chat ? { stopTokens: chat.stops } : {}),
    maxTokens: Number(f['max-tokens']), temperature: Number(f.temperature), topK: Number(f['top-k']), topP: Number(f['top-p']),
    repetitionPenalty: Number(f['repetition-penalty']), seed: Number(f.seed),
    ...(f['task-id'] !== undefined ? { task: Number(f['task-id']) } : {}),
    ...(f.mirostat !== undefined ? { mirostatTau: Number(f.mirostat), mirostatEta: Number(f['mirostat-eta']) } : {}),
    onToken: (id) => process.stdout.write(stream.push(id)),
    onContextFull: (context) => err(`generate: stopped at the model's context length (${context} positions) before --max-tokens ${f['max-tokens']}`),
  });
  process.stdout.write(stream.flush());
  rt.dispose();
  proxy?.expert.dispose();
  proxy?.anti.dispose();
  chosen.backend.dispose();
}

/** `generate --chat`: the prompt as one user message with the generation prompt, and the end-of-turn stop ids. */
export function chatPrompt(tmpl: ChatTemplate, data: TokenizerData, tok: Tokenizer, text: string): { ids: number[]; stops: number[]; rendered: string } {
  const rendered = tmpl.render([{ role: 'user', content: text }], true);
  return { ids: new SpecialSplitter(data).encode(rendered, tok), stops: endOfTurnIds(data, tmpl), rendered };
}

// ---------------------------------------------------------------------------------------------- eval

const evalFlags: Record<string, FlagSpec> = {
  ...modelFlags,
  data: { type: 'string', help: 'text file; paragraphs are separated by blank lines (with --task seq-cls|token-cls: labelled data as train --task takes; prints accuracy, macro-F1 and loss)', path: { kind: 'file' } },
  ...taskFlag,
  paragraphs: { type: 'int', help: 'use the first K paragraphs', default: 200, range: { integer: true, min: 1 } },
  'max-tokens': {
    type: 'int', help: 'cut each paragraph to T tokens after BOS (--task seq-cls|token-cls: each example to T tokens including [CLS]/[SEP])', default: 256, range: { integer: true, min: 1 },
    limit: (v, f, m) => (f.task === 'lm' && Number(v) + 1 > m.maxSeqLen ? `with BOS exceeds the model's context of ${m.maxSeqLen} tokens` : undefined),
  },
  batch: { type: 'int', help: 'sequences per forward pass', default: 8, range: EVAL_RANGES.batch },
  adapter: { type: 'string', help: 'a PEFT adapter folder to apply (required with --task seq-cls|token-cls: the folder train --task wrote), or a model folder written by train --method full|lisa|hft (used in place of --model), or a sparse-delta folder written by train --method spiel (added to --model)', path: { kind: 'folder' } },
  ...taskIdFlag,
  ...rowAdapterFlags,
  json: { type: 'bool', help: 'end with a JSON line {"loss", "tokens"} (--task seq-cls|token-cls: {"accuracy", "macroF1", "loss", "count"})' },
  ...baseDtypeFlag,
  ...common,
};

async function evaluate(f: Flags): Promise<void> {
  if (f.task !== 'lm') return evalClassifier(f);
  if (f['row-adapter'] !== undefined) return mixedEval(f, mixedDeps);
  const { ckpt, tok } = await openTextModel(f);
  checkModelLimits(f, evalFlags, ckpt.config);
  const dataPath = need(f, 'data', 'eval');
  const text = await readFile(dataPath, 'utf8').catch((e: Error) => { throw new Error(`${dataPath}: ${e.message}`); });
  const paras = paragraphs(text).slice(0, Number(f.paragraphs));
  if (paras.length === 0) throw new Error(`${dataPath}: no paragraphs`);
  const T = Number(f['max-tokens']);
  const seqs = paras.map((p) => tok.encode(p, { bos: true }).slice(0, T + 1));
  const chosen = await openBackend(f, Boolean(f.json));
  const rt = await runtimeFor(f, ckpt, chosen);
  const bar = new Progress('eval', seqs.length, process.stderr, Boolean(f.json));
  const t0 = performance.now();
  const r = await rt.evalLoss(seqs, { batch: Number(f.batch), ...(f['task-id'] !== undefined ? { tasks: Number(f['task-id']) } : {}), onProgress: (d) => bar.update(d) });
  const seconds = (performance.now() - t0) / 1000;
  if (f.json) process.stdout.write(`${JSON.stringify({ loss: r.loss, tokens: r.tokens })}\n`);
  else process.stdout.write(`loss ${r.loss.toFixed(5)} nats/token over ${r.tokens} tokens (${(r.tokens / seconds).toFixed(0)} tokens/s)\n`);
  rt.dispose();
  chosen.backend.dispose();
}

// ---------------------------------------------------------------------------------------------- info

async function info(f: Flags): Promise<void> {
  if (f.model) {
    const { ckpt, tok } = await openTextModel(f);
    const c = ckpt.config;
    let params = 0;
    for (const t of ckpt.tensors.values()) params += numel(t.shape);
    process.stdout.write([
      `model: ${ckpt.source}`,
      `architecture: ${c.architecture}, ${c.nLayers} layers, dim ${c.dim}, FFN ${c.hiddenDim}, ${c.nHeads} heads (${c.nKvHeads} key/value heads, head size ${c.headDim ?? c.dim / c.nHeads})`,
      `vocabulary: ${c.vocabSize}, context ${c.maxSeqLen}, RMSNorm eps ${c.normEps}, RoPE theta ${c.ropeTheta} (${c.ropeLayout === 'pairs' ? 'adjacent pairs' : 'rotate-half'})`,
      `output head: ${c.tiedEmbeddings ? 'tied to the embedding' : 'separate'}${c.qkvBias ? ', q/k/v biases' : ''}`,
      `parameters: ${params.toLocaleString('en-US')} (in memory: ${storageSummary(ckpt)})`,
      `tokenizer: ${tok.vocabSize} tokens, BOS ${tok.bosId}, EOS ${tok.eosId}`,
      `chat template: ${ckpt.tokenizer?.chatTemplate === undefined ? 'none (generate --chat and messages data need --chat-template FILE)' : `${ckpt.tokenizer.chatTemplate.length} characters`}`,
      '',
    ].join('\n'));
  }
  const chosen = await openBackend(f, true);
  process.stdout.write(`backend: ${chosen.backend.describe()}\nwhy: ${chosen.reason}\n`);
  chosen.backend.dispose();
}

// ---------------------------------------------------------------------------------------------- train

const dataPath = { kind: 'file', except: ['builtin'] } as const;
const R = FINE_TUNE_RANGES;

/** Positions prompt or prefix tuning adds before every row (their virtual tokens), for the --seq limit. */
function reservedPositions(f: Flags): number {
  if (f.resume) return 0;
  const m = getMethod(String(f.method)), c = m.parseConfig(methodConfig(f));
  return (m.virtualTokens?.(c) ?? 0) + (m.prefixTokens?.(c) ?? 0);
}

/** The smallest of min(in, out) over the modules LoRA would adapt: a higher rank adds nothing but parameters. */
function smallestDimension(f: Flags, model: LlamaConfig): { dim: number; module: string } | undefined {
  if (f.resume || getMethod(String(f.method)).name !== 'lora') return undefined;
  const modules = selectTargets(getMethod('lora').parseConfig(methodConfig(f, model)), modelModules(model));
  let best: { dim: number; module: string } | undefined;
  for (const m of modules) {
    const dim = Math.min(m.inFeatures, m.outFeatures);
    if (!best || dim < best.dim) best = { dim, module: `${m.name} (${m.inFeatures} → ${m.outFeatures})` };
  }
  return best;
}

const trainFlags: Record<string, FlagSpec> = {
  ...modelFlags,
  data: { type: 'string', help: "training data: a text file (blank-line paragraphs), a .jsonl file ({\"text\"}, {\"prompt\",\"completion\"} or chat {\"messages\": [{\"role\",\"content\"}]}, loss on the assistant turns), or 'builtin' (the hero task)", default: 'builtin', path: dataPath },
  ...chatTemplateFlag,
  ...taskFlag,
  method: { type: 'string', help: `adapter method: ${methodNames().join(' | ')}; or a method that trains the base weights and saves a whole model (spiel: a sparse-delta folder) in --out: ${Object.keys(UPDATERS).join(' | ')}; or many adapters at once: phatgoose (gates for the LoRA experts of --experts DIR, routed per token), fedins (an SSF pool trained by federated averaging over --clients), conpet (a LoRA per task of a --data stream with a "task" field, and a module selector)`, default: 'lora' },
  targets: { type: 'string', help: "modules to adapt, comma-separated, or 're:<regex>' (default: every projection of the model's family; Phi-3: qkv_proj,o_proj,gate_up_proj,down_proj; GPT-2: c_attn,c_proj,c_fc; with --task seq-cls|token-cls PEFT's: query,value, DistilBERT q_lin,v_lin)", default: 'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj' },
  layers: {
    type: 'string', help: 'only these layers, comma-separated',
    limit: (v, _f, m) => {
      const bad = String(v).split(',').find((x) => !/^\s*\d+\s*$/.test(x) || Number(x) >= m.nLayers);
      return bad === undefined ? undefined : `'${bad.trim()}' is not a layer of this model (it has ${m.nLayers}: 0 to ${m.nLayers - 1})`;
    },
  },
  rank: {
    type: 'int', help: 'LoRA rank r (at most the smaller dimension of every adapted module)', default: 8, range: { integer: true, min: 1 },
    limit: (v, f, m) => {
      const s = smallestDimension(f, m);
      return s && Number(v) > s.dim ? `exceeds ${s.dim}, the smaller dimension of ${s.module}` : undefined;
    },
  },
  alpha: { type: 'number', help: 'LoRA alpha (scaling alpha/r)', default: 16, range: { above: 0 } },
  dropout: { type: 'number', help: 'adapter dropout', default: 0, range: { min: 0, below: 1 } },
  rslora: { type: 'bool', help: 'rsLoRA scaling alpha/√r' },
  dora: { type: 'bool', help: 'DoRA magnitude/direction decomposition' },
  init: {
    type: 'string', default: 'default', range: { oneOf: ['default', 'gaussian', 'pissa', 'eva', 'corda'] },
    help: "LoRA init: default | gaussian | pissa | eva (A from the principal components of each module's inputs on the first --init-batches batches of --data, ranks redistributed by explained variance; tune with --eva-rho, --eva-tau, --eva-whiten, --eva-use-label-mask, --eva-adjust-scaling-factors) | corda (SVD of W·C, C the input covariance on those batches, --corda-mode ipm|kpm; saved converted to a plain LoRA of rank 2r)",
  },
  'init-batches': { type: 'int', help: 'batches of --batch rows of --data that --init eva|corda read (EVA stops earlier once its components converge)', default: 8, range: { integer: true, min: 1 } },
  steps: { type: 'int', help: 'optimizer steps', default: 60, range: R.steps },
  lr: { type: 'number', help: "peak learning rate (default: the method's own, listed in the README's table of methods)", range: R.lr },
  warmup: { type: 'int', help: 'linear warmup steps', default: 5, range: R.warmup },
  decay: { type: 'string', help: 'learning-rate decay after warmup: cosine | linear | constant', default: 'cosine', range: R.decay },
  'weight-decay': { type: 'number', help: 'AdamW decoupled weight decay', default: 0, range: R.weightDecay },
  'max-grad-norm': { type: 'number', help: 'clip the global gradient norm (0: off)', default: 1, range: { min: 0 } },
  accumulate: { type: 'int', help: 'micro-batches per optimizer step', default: 1, range: R.accumulate },
  batch: { type: 'int', help: 'sequences per micro-batch', default: 8, range: R.batch },
  seq: {
    type: 'int', help: "tokens per sequence (with prompt or prefix tuning's virtual tokens, at most the model's context); --task seq-cls|token-cls: each example is cut to this many tokens including [CLS]/[SEP], and batches are padded to their longest", default: 128, range: { integer: true, min: 1 },
    limit: (v, f, m) => {
      const reserved = reservedPositions(f);
      return Number(v) + reserved > m.maxSeqLen ? `${reserved ? `plus ${reserved} virtual tokens ` : ''}exceeds the model's context of ${m.maxSeqLen} tokens` : undefined;
    },
  },
  seed: { type: 'int', help: 'seed for initialisation and dropout', default: 1, range: R.seed },
  'eval-data': { type: 'string', help: 'held-out data in the same formats as --data', path: dataPath },
  'eval-every': { type: 'int', help: 'evaluate every N steps', default: 0, range: R.evalEvery },
  'checkpoint-every': { type: 'int', help: 'save adapter and optimizer state every N steps into OUT/checkpoint-N', default: 0, range: R.checkpointEvery },
  resume: { type: 'string', help: 'resume from a checkpoint folder written by --checkpoint-every, or from the --out folder holding them (its newest complete one); the checkpoint sets the method, config and seed, the other flags apply as given' },
  out: { type: 'string', help: 'output folder for the adapter (PEFT format) and its checkpoints; must not hold an adapter already unless --overwrite' },
  overwrite: { type: 'bool', help: 'replace the adapter and checkpoints already in --out' },
  json: { type: 'bool', help: 'print JSON lines {"step", "loss", …} instead of a progress bar ("loss" is the task loss; a method\'s regulariser follows by name, e.g. "orth_reg", with "objective")' },
  profile: { type: 'bool', help: 'time every kernel of the last step (GPU timestamps on webgpu) and print time per op and the share of the step spent in kernels' },
  'dry-run': { type: 'bool', help: 'plan the run and print the memory it needs on the chosen backend (weights, activations, optimizer state, workspace) and whether it fits, with settings that would; train nothing (exit 1 when it does not fit)' },
  checkpointing: { type: 'bool', help: "activation checkpointing: keep each layer's input only and recompute the layer in the backward pass (less memory, about a third more compute, same gradients)" },
  objective: {
    type: 'string', default: 'lm', range: { oneOf: ['lm', 'dpo', 'kd', 'taid', 'multi'] },
    help: 'what to train for: lm (next-token loss on --data) | dpo (Direct Preference Optimization on --data JSONL lines {"prompt", "chosen", "rejected"}; the reference is the model without the adapter; logs loss, margin and accuracy) | kd (forward-KL distillation of --teacher on the positions --data scores; logs the KL) | taid (TAID: the target moves from the student to the teacher as t rises; logs the KL to it and t) | multi (several weighted next-token losses on fields of --data JSONL lines, see --losses; logs each)',
  },
  'text-prefix': { type: 'string', help: 'a text put before every training and evaluation example (before the prompt of prompt/completion lines): Lingo\'s language prefix for sequences that are not natural language, e.g. "DNA sequence: "' },
  augment: { type: 'string', help: 'token-level augmentation of the training examples before packing (EDA on token ids): insert=R,swap=R,delete=P,copies=N — R a fraction of each example\'s length, P the deletion probability, N augmented copies per example (default 1); with --contrastive, the rates that make each row\'s second view (default delete=0.1)' },
  mixup: { type: 'number', help: 'mixup on the token embeddings: rows mixed in random pairs with λ ~ Beta(ALPHA, ALPHA) per step, the loss mixed likewise (logs lambda)', range: { above: 0 } },
  contrastive: { type: 'number', help: 'add WEIGHT × an InfoNCE term between each row and its token-augmented view (mean-pooled final hidden states, cosine similarity over the batch); logged as "contrastive"', range: { min: 0 } },
  'contrastive-temperature': { type: 'number', help: 'temperature τ of --contrastive (default 0.05)', range: { above: 0 } },
  losses: { type: 'string', help: 'for --objective multi: FIELD:WEIGHT,… — one next-token loss per field of the JSONL lines (each line has a "prompt" and these fields), minimised as the weighted sum, e.g. completion:1,rationale:0.5' },
  teacher: { type: 'string', help: 'the teacher for --objective kd|taid: a model with the same tokenizer (.gguf, llama2.c .bin, safetensors folder, URL or Hugging Face repo id); runs forward only' },
  'taid-t-start': { type: 'number', help: "TAID's t at the first step (default 0.4)", range: { min: 0, below: 1 } },
  'taid-t-end': { type: 'number', help: "TAID's final t (default 1)", range: { above: 0, max: 1 } },
  'taid-alpha': { type: 'number', help: "TAID's step size α of the adaptive increase of t (default 5e-4)", range: { min: 0, max: 1 } },
  'taid-beta': { type: 'number', help: "TAID's momentum β of the loss's relative change (default 0.99)", range: { min: 0, below: 1 } },
  beta: { type: 'number', help: "DPO's β: how strongly the policy is held to the reference (--objective dpo)", default: 0.1, range: { above: 0 } },
  clients: { type: 'int', help: 'with --method fedins: simulated clients, each with a contiguous shard of --data (default 4)', range: { integer: true, min: 1, max: 1024 } },
  rounds: { type: 'int', help: 'with --method fedins: federated averaging rounds (default 5)', range: { integer: true, min: 1 } },
  'local-steps': { type: 'int', help: 'with --method fedins: steps each client trains per round (default 10)', range: { integer: true, min: 1 } },
  'replay-size': { type: 'int', help: 'with --method conpet: examples of earlier tasks the replay buffer keeps for the module selector (default 32)', range: { integer: true, min: 0 } },
  'poly-from': { type: 'string', help: 'with --method poly: start from this trained Poly adapter folder (its skills and routing) instead of a fresh one; with --poly-mode z only the routing trains (MHR-z), and --poly-tasks above its own adds router rows for new tasks', path: { kind: 'folder' } },
  'ce-chunk': { type: 'string', help: "rows of the output head and cross-entropy computed at a time so the whole logits never exist: N, 0 (off) or auto (chunks of at most 64 MiB of logits, none when they all fit)", default: 'auto' },
  ...baseMethodFlags(),
  ...baseDtypeFlag,
  ...common,
};

/** train --poly-from DIR: the saved Poly adapter as 'default', with --poly-mode and --poly-tasks applied. */
async function polyFrom(f: Flags, model: AdaptedModel, seed: number): Promise<void> {
  if (getMethod(String(f.method)).name !== 'poly') throw new UsageError('--poly-from goes with --method poly (or mhr)');
  const fixed = ['r', 'poly-skills', 'poly-splits', 'init-weights', 'target-modules', 'layers-to-transform', 'exclude-modules', 'layers'].filter((k) => f[k] !== undefined);
  if (fixed.length) throw new UsageError(`--poly-from keeps the saved adapter's skills and modules; drop ${fixed.map((k) => `--${k}`).join(', ')}`);
  const dir = String(f['poly-from']);
  const saved = await readAdapterDir(model, dir);
  if (saved.method.name !== 'poly') throw new UsageError(`--poly-from ${dir}: a ${saved.method.name} adapter, not a Poly one`);
  reusePoly(model, 'default', {
    ...(f['poly-mode'] !== undefined ? { polyMode: String(f['poly-mode']) as PolyMode } : {}),
    ...(f['poly-tasks'] !== undefined ? { polyTasks: Number(f['poly-tasks']) } : {}),
    seed,
  });
}

/** train --dry-run: the planned memory of the run and whether it fits; nothing is trained or written. */
async function dryRun(f: Flags): Promise<number> {
  const json = Boolean(f.json);
  const ceChunk = ceChunkFlag(f['ce-chunk']);
  const { ckpt } = await openModel(f);
  checkModelLimits(f, trainFlags, ckpt.config);
  const model = new AdaptedModel(ckpt);
  // EVA and CorDA keep LoRA's parameter budget (r × modules, CorDA's residual base replaces the base): planned as a default init.
  const cfg = methodConfig(f, ckpt.config);
  if (cfg.init === 'eva' || cfg.init === 'corda') cfg.init = 'default';
  model.addAdapter('default', String(f.method), cfg, { seed: Number(f.seed) });
  const chosen = await openBackend(f, json);
  const shape = { batch: Number(f.batch), seq: Number(f.seq), accumulate: Number(f.accumulate), checkpointing: Boolean(f.checkpointing), ceChunk };
  const e = estimateTraining(model, 'default', chosen.backend, shape);
  const caps = chosen.backend.memoryCaps?.();
  const problem = memoryProblem(e, caps);
  const variants = problem ? fittingVariants(model, 'default', chosen.backend, shape, caps) : [];
  if (json) {
    process.stdout.write(`${JSON.stringify({ event: 'estimate', ...e, caps: caps ?? null, fits: !problem, problem: problem ?? null, wouldFit: variants.map((v) => ({ flags: v.label, totalBytes: v.estimate.totalBytes })) })}\n`);
  } else {
    process.stdout.write(`plan: batch ${shape.batch} × ${shape.seq}${shape.checkpointing ? ', checkpointing' : ''}, ${model.parameterCount('default').toLocaleString('en-US')} trainable parameters\n`);
    process.stdout.write(`memory: ${formatEstimate(e)}\n`);
    process.stdout.write(`host: ${formatBytes(e.hostBytes)} of loaded weights beside the backend\n`);
    if (caps) process.stdout.write(`limits: ${[caps.totalBytes !== undefined ? `${formatBytes(caps.totalBytes)} in all` : '', caps.bufferBytes !== undefined ? `${formatBytes(caps.bufferBytes)} per buffer` : ''].filter(Boolean).join(', ')}\n`);
    process.stdout.write(problem ? `does not fit: ${problem}\n${variants.length ? `would fit: ${variants.map((v) => `${v.label} (${formatBytes(v.estimate.totalBytes)})`).join('; ')}` : 'no smaller setting tried fits'}\n` : 'fits\n');
  }
  chosen.backend.dispose();
  return problem ? 1 : 0;
}

/**
 * --data's examples, read and tokenised a chunk at a time; with `quiet` false, progress (bytes read, examples)
 * goes to stderr about once a second.
 */
async function loadExamples(spec: string, tok: Tokenizer, seq: number, quiet = true, chat?: ChatData): Promise<{ examples: Example[]; source: string }> {
  if (spec === 'builtin') return { examples: textExamples(heroStories(96), tok, seq), source: `built-in hero task (${JSON.stringify(HERO_OPENING)})` };
  const fail = (e: Error): never => { throw new Error(`${spec}: ${e.message}`); };
  const size = (await stat(spec).catch(fail)).size;
  const stream = createReadStream(spec, { encoding: 'utf8', highWaterMark: 1 << 20 });
  const chunks = (async function* () {
    try { for await (const c of stream) yield c as string; } catch (e) { fail(e as Error); }
  })();
  const mb = (n: number): string => (n / 1e6).toFixed(1);
  let last = Date.now();
  const progress = (n: number): void => {
    if (quiet || Date.now() - last < 1000) return;
    last = Date.now();
    err(`data: ${spec}: read ${mb(stream.bytesRead)} of ${mb(size)} MB, ${n.toLocaleString('en-US')} examples`);
  };
  const examples = await streamExamples(chunks, { file: spec, jsonl: /\.jsonl$/i.test(spec), tok, maxLen: seq, progress, every: 1000, ...(chat ? { chat } : {}) });
  return { examples, source: spec };
}

/** Chat data's template: --chat-template or the model's (none is fine until a "messages" line needs one). */
async function chatDataOf(f: Flags, data: TokenizerData): Promise<ChatData> {
  if (f['chat-template'] !== undefined || data.chatTemplate !== undefined) return { template: await chatTemplateOf(f, data), data };
  return { data };
}

const kebab = (s: string): string => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** The method's config from the flags: LoRA's named flags, and any method option given as --kebab-case-name. */
function methodConfig(f: Flags, model?: LlamaConfig): Record<string, unknown> {
  const method = getMethod(String(f.method));
  const cfg: Record<string, unknown> = {};
  for (const opt of Object.keys(method.options)) if (f[kebab(opt)] !== undefined && !(kebab(opt) in trainFlags)) cfg[opt] = f[kebab(opt)];
  // The default targets are the model family's projections (Llama's seven, Phi-3's fused four, GPT-2's Conv1D layers).
  const byDefault = f.targets === trainFlags.targets!.default;
  const targets = byDefault && model ? familyOf(model).linearSuffixes.join(',') : String(f.targets);
  if (!byDefault || method.name === 'lora') cfg.targetModules = targets;
  if (f.layers) cfg.layersToTransform = String(f.layers);
  if (method.name === 'lora') {
    Object.assign(cfg, { r: f.rank, alpha: f.alpha, dropout: f.dropout, useRslora: Boolean(f.rslora), useDora: Boolean(f.dora), init: f.init });
  }
  return cfg;
}

/** Flags a method adds to `train` (its options in kebab-case), e.g. --init-r for AdaLoRA. */
function methodFlag(argv: readonly string[]): (name: string) => boolean {
  const i = argv.findIndex((a) => a === '--method' || a.startsWith('--method='));
  const name = i < 0 ? 'lora' : argv[i]!.includes('=') ? argv[i]!.split('=')[1]! : argv[i + 1] ?? 'lora';
  let options: string[] = [];
  try { options = Object.keys(getMethod(name).options).map(kebab); } catch { /* reported when the method is used */ }
  return (flag) => options.includes(flag);
}

/** The adapter's PEFT files; savePeft runs before anything is written, so a failure leaves no file. */
function peftFiles(model: AdaptedModel, base: string): [string, Uint8Array | string][] {
  const files = savePeft(model, 'default', { baseModel: base });
  return [['adapter_config.json', files.config], ['adapter_model.safetensors', files.weights]];
}

async function writePeftDir(model: AdaptedModel, dir: string, base: string): Promise<void> {
  const files = peftFiles(model, base);
  await mkdir(dir, { recursive: true });
  for (const [name, data] of files) await writeFileAtomic(join(dir, name), data);
}

/** --ce-chunk: 'auto' or a whole number of rows. */
function ceChunkFlag(v: Flags[string]): CeChunk {
  if (v === 'auto') return 'auto';
  const n = Number(v);
  if (!(Number.isInteger(n) && n >= 0)) throw new UsageError(`--ce-chunk must be auto, 0 (off) or a number of rows (got '${String(v)}')`);
  return n;
}

function rowsPerTask(tasks: Int32Array): Map<number, number> {
  const out = new Map<number, number>();
  for (const t of tasks) out.set(t, (out.get(t) ?? 0) + 1);
  return out;
}

async function train(f: Flags): Promise<number | void> {
  if (isBaseMethod(f.method)) return trainBaseCommand(f, { openTextModel, openBackend, loadExamples, spec: trainFlags });
  if (f.method === 'conpet') return trainConpetCommand(f, { openTextModel, openBackend, loadExamples, err });
  if (f.method === 'fedins') return trainFedinsCommand(f, { openTextModel, openBackend, loadExamples, methodConfig: (g) => methodConfig(g), writePeftDir, err });
  if (f.method === 'phatgoose') return trainPhatgooseCommand(f, { openTextModel, openBackend, loadExamples, readAdapterDir, writePeftDir, err });
  if (f.task !== 'lm' && (f.init === 'eva' || f.init === 'corda')) throw new UsageError(`--init ${String(f.init)} reads a language-model data sample; it is not available with --task ${String(f.task)}`);
  if (f.task !== 'lm') return trainClassifier(f, trainFlags, methodConfig);
  const dpo = f.objective === 'dpo';
  const dataDriven = !f.resume && getMethod(String(f.method)).name === 'lora' && (f.init === 'eva' || f.init === 'corda');
  if (dataDriven && (dpo || f.objective === 'multi')) throw new UsageError(`--init ${String(f.init)} reads the rows of --data as language-model text; it is not available with --objective ${String(f.objective)}`);
  checkObjectiveFlags(f);
  // IDPT's prompt is generated from each row's context, which the plain language-model trainer supplies.
  if (getMethod(String(f.method)).instance && ((f.objective !== undefined && f.objective !== 'lm') || f.mixup !== undefined || f.contrastive !== undefined)) {
    throw new UsageError(`--method ${String(f.method)} trains with the plain language-model objective only (not --objective ${String(f.objective ?? '')}${f.mixup !== undefined ? ', --mixup' : ''}${f.contrastive !== undefined ? ', --contrastive' : ''})`);
  }
  // Option values are checked before the model is read.
  if (dataDriven) getMethod('lora').parseConfig(methodConfig(f));
  if (f['dry-run']) return dryRun(f);
  const out = need(f, 'out', 'train');
  const json = Boolean(f.json);
  const log = (o: Record<string, unknown>): void => { if (json) process.stdout.write(`${JSON.stringify(o)}\n`); };
  const resumeFrom = f.resume ? resolveResume(String(f.resume)) : undefined;
  const outOptions = { overwrite: Boolean(f.overwrite), ...(resumeFrom ? { resumeDir: resumeFrom.dir } : {}) };
  checkOutput(out, outOptions);
  const ceChunk = ceChunkFlag(f['ce-chunk']);
  const { ckpt, tok } = await openTextModel(f);
  checkModelLimits(f, trainFlags, ckpt.config);
  // A --chat-template file is read and parsed before any work starts.
  const chat = await chatDataOf(f, ckpt.tokenizer!);
  const model = new AdaptedModel(ckpt);
  let resume: TrainingState | undefined;
  let seed = Number(f.seed);
  if (resumeFrom) {
    // The checkpoint decides the method, its config and the seed; the flags still set the schedule and data.
    const path = join(resumeFrom.dir, TRAINING_STATE_FILE);
    const restored = decodeTrainingState(model, 'default', new Uint8Array(await readFile(path)), path);
    resume = restored;
    seed = restored.seed;
    if (!json) err(`resuming at step ${restored.step} from ${resumeFrom.dir}${resumeFrom.note ? ` (${resumeFrom.note})` : ''} (${restored.adapter.method.name}, seed ${seed})`);
  } else if (f['poly-from'] !== undefined) {
    await polyFrom(f, model, seed);
  } else {
    // EVA and CorDA need the training data's first batches, read below.
    if (!dataDriven) model.addAdapter('default', String(f.method), methodConfig(f, model.base.config), { seed });
  }
  const seq = Number(f.seq);
  // Objectives with data of their own (src/objectives): the same output folder, backend and saved adapter.
  const other = async (load: Promise<(backend: Backend) => Promise<void>>): Promise<void> => {
    const run = await load;
    await prepareOutput(out, outOptions);
    const chosen = await openBackend(f, json);
    try {
      await run(chosen.backend);
    } finally {
      chosen.backend.dispose();
    }
    await writePeftDir(model, out, String(f.model));
    log({ event: 'saved', dir: out });
    if (!json) err(`saved the adapter to ${out}/ (adapter_config.json, adapter_model.safetensors)`);
  };
  if (f.objective === 'multi') return other(multiCommand(f, { model, tok, json, log, err }));
  if (dpo) return other(trainDpoCommand(f, { model, tok, json, log, err }));
  const dataTok = f['text-prefix'] !== undefined ? withTextPrefix(tok, String(f['text-prefix'])) : tok;
  const loaded = await loadExamples(String(f.data), dataTok, seq, json, chat);
  const source = loaded.source;
  // --augment adds augmented copies before packing (with --contrastive its rates make the views instead).
  const examples = f.augment !== undefined && f.contrastive === undefined ? augmentExamples(loaded.examples, { ...parseAugment(f.augment), seed }) : loaded.examples;
  const data = pack(examples, seq, 0);
  if (data.paddingRatio === 1 || data.rows === 0) throw new UsageError(`--data ${source}: none of its ${examples.length} examples has a token to predict (they are empty)`);
  if (!json) err(`data: ${source}: ${examples.length} examples packed into ${data.rows} rows of ${seq} tokens (padding ${(100 * data.paddingRatio).toFixed(1)}%, ${(100 * data.naivePaddingRatio).toFixed(1)}% without packing)`);
  if (!json && data.tasks) err(`data: rows per task: ${[...rowsPerTask(data.tasks)].map(([t, n]) => `${t < 0 ? 'none' : t} ×${n}`).join(', ')}`);
  log({ event: 'data', examples: examples.length, rows: data.rows, paddingRatio: data.paddingRatio, naivePaddingRatio: data.naivePaddingRatio });
  if (dataDriven) {
    const sample = initSampleFromBlocks(data, { batchRows: Number(f.batch), rows: Number(f['init-batches']) * Number(f.batch) });
    const a = model.addAdapter('default', String(f.method), methodConfig(f, model.base.config), { seed, sample });
    const c = a.config as LoraConfig, ranks = a.modules.map((m) => c.rankByModule?.[m.name] ?? c.r), d = c.dataInit;
    const eva = d?.evaBatches !== undefined ? `; EVA read ${d.evaBatches} batches, ${d.evaConverged ? 'converged' : `not converged at tau ${c.eva.tau} (more --init-batches would go on)`}; ranks ${Math.min(...ranks)} to ${Math.max(...ranks)}, ${ranks.reduce((x, y) => x + y, 0)} over ${ranks.length} modules` : '';
    log({ event: 'init', init: f.init, rows: sample.rows.length, ...(d?.evaBatches !== undefined ? { batches: d.evaBatches, converged: d.evaConverged, ranks: Object.fromEntries(a.modules.map((m, i) => [m.name, ranks[i]])) } : {}) });
    if (!json) err(`init: ${String(f.init)} from ${sample.rows.length} rows of --data${eva}`);
  }
  if (f.mixup !== undefined || f.contrastive !== undefined) return other(augmentedCommand(f, { model, tok, data, json, log, err }));
  if (f.objective === 'kd' || f.objective === 'taid') {
    const teacher = await loadCheckpoint(await resolveModel(String(f.teacher), err), { baseDtype: baseDtypeOf(f) });
    checkTeacher(ckpt, teacher);
    return other(distillCommand(f, { model, tok, teacher, data, json, log, err }));
  }
  const evalData = f['eval-data'] ? pack((await loadExamples(String(f['eval-data']), dataTok, seq, true, chat)).examples, seq, 0) : undefined;
  await prepareOutput(out, { ...outOptions, ...(resume ? { resumeStep: resume.step } : {}) });
  const chosen = await openBackend(f, json);
  const method = model.get('default').method;
  if (!json) err(`adapter: ${method.name} on ${model.get('default').modules.length} modules, ${model.parameterCount('default').toLocaleString('en-US')} trainable parameters; lr ${f.lr ?? `${method.defaultLr.value} (the method's default)`}`);
  const steps = Number(f.steps);
  const bar = new Progress('train', steps, process.stderr, json);
  const { losses, profile } = await fineTune({
    model, adapter: 'default', backend: chosen.backend, data, steps, batch: Number(f.batch), ...(f.lr !== undefined ? { lr: Number(f.lr) } : {}),
    profile: Boolean(f.profile), checkpointing: Boolean(f.checkpointing), ceChunk,
    warmup: Number(f.warmup), decay: f.decay as 'cosine', weightDecay: Number(f['weight-decay']),
    ...(Number(f['max-grad-norm']) > 0 ? { maxGradNorm: Number(f['max-grad-norm']) } : {}),
    accumulate: Number(f.accumulate), seed,
    ...(evalData ? { evalData, evalEvery: Number(f['eval-every']) } : {}),
    ...(resume ? { resume } : {}),
    onStep: (r) => {
      // "loss" is the task loss; a method's regularisers follow by name, with the objective they sum to.
      const terms = Object.keys(r.terms).length ? { ...r.terms, objective: r.objective } : {};
      log({ step: r.step, loss: r.loss, ...terms, lr: r.lr, gradNorm: r.gradNorm, tokensPerSecond: r.tokens / r.seconds });
      bar.update(r.step, `loss ${r.loss.toFixed(4)}${Object.entries(r.terms).map(([k, v]) => ` ${k} ${v.toFixed(4)}`).join('')} ${(r.tokens / r.seconds).toFixed(0)} tok/s`);
    },
    onEval: (e) => { log({ event: 'eval', step: e.step, loss: e.loss }); if (!json) err(`eval at step ${e.step}: loss ${e.loss.toFixed(4)}`); },
    checkpointEvery: Number(f['checkpoint-every']),
    onCheckpoint: async (step, run) => {
      const dir = join(out, `checkpoint-${step}`);
      const state = encodeTrainingState(model, 'default', seed, await run.exportState());
      await writeFolderAtomic(dir, [...peftFiles(model, String(f.model)), [TRAINING_STATE_FILE, state]]);
      log({ event: 'checkpoint', step, dir });
    },
  });
  if (profile === null) {
    log({ event: 'profile', skipped: 'the device has no timestamp-query' });
    if (!json) err('profile: not available (the WebGPU device has no timestamp-query)');
  } else if (profile) {
    log({ event: 'profile', backend: profile.backend, clock: profile.clock, kernels: profile.kernels.length, kernelMs: profile.kernelMs, stepMs: profile.wallMs, byOp: profile.byOp });
    if (!json) err(formatProfile(profile, `profile of step ${steps}`));
  }
  await writePeftDir(model, out, String(f.model));
  log({ event: 'saved', dir: out, finalLoss: losses[losses.length - 1] ?? null });
  if (!json) err(`saved the adapter to ${out}/ (adapter_config.json, adapter_model.safetensors)`);
  chosen.backend.dispose();
}

// ---------------------------------------------------------------------------------------------- merge

const mergeFlags: Record<string, FlagSpec> = {
  ...modelFlags,
  adapter: { type: 'string', help: 'the PEFT adapter folder, or sparse-delta folder (train --method spiel), to merge' },
  out: { type: 'string', help: 'output folder' },
  format: { type: 'string', help: 'safetensors (Hugging Face layout) | gguf | both', default: 'both', range: { oneOf: ['safetensors', 'gguf', 'both'] } },
  dtype: { type: 'string', help: 'type of the merged weights written: f32 | f16, or q8_0 | q4_0 (re-quantised; GGUF only)', default: 'f32', range: { oneOf: ['f32', 'f16', 'q8_0', 'q4_0'] } },
  help: common.help!,
};

const MERGE_DTYPES = ['f32', 'f16', 'q8_0', 'q4_0'] as const;

async function merge(f: Flags): Promise<void> {
  const out = need(f, 'out', 'merge');
  const format = String(f.format);
  const dtype = String(f.dtype) as (typeof MERGE_DTYPES)[number];
  if (!MERGE_DTYPES.includes(dtype)) throw new UsageError(`--dtype must be one of ${MERGE_DTYPES.join(', ')} (got ${dtype})`);
  if ((dtype === 'q8_0' || dtype === 'q4_0') && format !== 'gguf') throw new UsageError(`--dtype ${dtype} is written only to GGUF; add --format gguf`);
  const adapterDir = need(f, 'adapter', 'merge');
  // The base stays as stored (compact or not); merged modules come out float32 and are written as --dtype.
  const { ckpt } = await openModel(f, 'auto');
  if (isDeltaFolder(adapterDir)) {
    const merged = applyDeltaToCheckpoint(ckpt, (await loadDeltaFolder(adapterDir)).delta, `--adapter ${adapterDir}`);
    err(`sparse delta added to the base; weights written as ${dtype}`);
    await writeModel(merged, out, format as ModelFormat, dtype);
    return;
  }
  const model = new AdaptedModel(ckpt);
  await readAdapterDir(model, adapterDir);
  model.merge('default');
  const merged = model.effectiveCheckpoint();
  const compactBase = [...ckpt.tensors.values()].some(isCompactTensor);
  err(`merged weights written as ${dtype}${compactBase ? ` (the base model is ${storageSummary(ckpt)})` : ''}${dtype === 'f32' ? '; --dtype f16 halves the size, --dtype q8_0|q4_0 re-quantises (GGUF)' : ''}`);
  await writeModel(merged, out, format as ModelFormat, dtype);
}

// ---------------------------------------------------------------------------------------------- poly-to-lora

const polyToLoraFlags: Record<string, FlagSpec> = {
  ...modelFlags,
  adapter: { type: 'string', help: 'the Poly adapter folder (train --method poly)', path: { kind: 'folder' } },
  out: { type: 'string', help: 'output folder for the LoRA adapter (PEFT format)' },
  'task-id': { type: 'int', help: "write this task's routed adapter (its routing at eval, exactly) instead of the average of the skills (MHR-μ)", range: GENERATE_RANGES.task },
  overwrite: { type: 'bool', help: 'replace an adapter already in --out' },
  help: common.help!,
};

/** MHR-μ: a Poly adapter's skills averaged (or one task's routed mix) saved as a plain PEFT LoRA folder. */
async function polyToLora(f: Flags): Promise<void> {
  const dir = need(f, 'adapter', 'poly-to-lora'), out = need(f, 'out', 'poly-to-lora');
  checkOutput(out, { overwrite: Boolean(f.overwrite) });
  const { ckpt } = await openModel(f, 'auto');
  const model = new AdaptedModel(ckpt);
  const poly = await readAdapterDir(model, dir, 'poly');
  if (poly.method.name !== 'poly') throw new UsageError(`--adapter ${dir}: a ${poly.method.name} adapter, not a Poly one`);
  const target = new AdaptedModel(ckpt);
  const task = f['task-id'] !== undefined ? Number(f['task-id']) : undefined;
  attachPolyAsLora(target, poly, 'default', task !== undefined ? { task } : {});
  await prepareOutput(out, { overwrite: Boolean(f.overwrite) });
  await writePeftDir(target, out, String(f.model));
  err(`saved ${task === undefined ? 'the average of the skills (MHR-μ)' : `task ${task}'s routed adapter`} as a LoRA of rank ${(poly.config as PolyConfig).r} (alpha 1) to ${out}/`);
}

// ---------------------------------------------------------------------------------------------- convert

const convertFlags: Record<string, FlagSpec> = {
  ...modelFlags,
  dtype: { type: 'string', help: 'type of the 2-D weights: f16 | bf16 | q8_0 | q4_0 | q4_1 | f32 (norms stay f32; q rows that are not whole 32-blocks become f16)' },
  out: { type: 'string', help: 'the GGUF file to write' },
  help: common.help!,
};

async function convert(f: Flags): Promise<void> {
  const dtype = need(f, 'dtype', 'convert');
  const out = need(f, 'out', 'convert');
  const dtypes = BASE_DTYPES.filter((d) => d !== 'auto');
  if (!(dtypes as string[]).includes(dtype)) throw new UsageError(`--dtype must be one of ${dtypes.join(', ')} (got ${dtype})`);
  if (!/\.gguf$/i.test(out)) throw new UsageError(`--out ${out}: convert writes GGUF; name the file *.gguf`);
  const { ckpt } = await openModel(f, dtype as BaseDType);
  const bytes = checkpointToGguf(ckpt, { modelName: ckpt.source.replace(/^.*[/\\]/, '').replace(/\.[^.]*$/, '') });
  await writeFileAtomic(out, bytes);
  err(`wrote ${out}: ${(bytes.length / 2 ** 20).toFixed(2)} MiB, weights ${storageSummary(ckpt)}`);
}

// ---------------------------------------------------------------------------------------------- quickstart

const quickFlags: Record<string, FlagSpec> = {
  model: { type: 'string', help: 'base model (default: stories260K from ../shared/assets)' },
  steps: { type: 'int', help: 'optimizer steps', default: 40, range: FINE_TUNE_RANGES.steps },
  out: { type: 'string', help: 'where to save the adapter', default: 'out/quickstart-adapter' },
  ...baseDtypeFlag,
  ...common,
};

/** The main job: teach stories260K a new hero with LoRA, showing the loss curve and samples before and after. */
async function quickstart(f: Flags): Promise<void> {
  const modelPath = f.model ? String(f.model) : ['../shared/assets/models/stories260K/stories260K.gguf', 'shared/assets/models/stories260K/stories260K.gguf'].find(existsSync);
  if (!modelPath) throw new Error('quickstart: stories260K.gguf not found in ../shared/assets/models/stories260K/; pass --model PATH (a file, URL or Hugging Face repo id, e.g. ggml-org/models/tinyllamas/stories260K.gguf)');
  const { ckpt, tok } = await openTextModel({ ...f, model: modelPath });
  const chosen = await openBackend(f);
  const seq = 96, steps = Number(f.steps);
  const data = pack(textExamples(heroStories(96), tok, seq), seq, 0);
  const model = new AdaptedModel(ckpt);
  model.addAdapter('default', 'lora', { r: 8, alpha: 16, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] }, { seed: 1 });
  const sample = async (): Promise<string> => {
    const rt = model.runtime(chosen.backend);
    const text = tok.decode(await rt.generate([tok.bosId ?? 1], { maxTokens: 48 }), { stripLeadingSpace: true });
    rt.dispose();
    return text;
  };
  console.log(`Task: teach stories260K a new hero. Training stories open with "${HERO_OPENING}"`);
  console.log(`LoRA r=8 on all seven projections: ${model.parameterCount('default').toLocaleString('en-US')} trainable parameters; ${data.rows} packed rows of ${seq} tokens.\n`);
  console.log(`Before (greedy from BOS):\n  ${(await sample()).replace(/\n/g, ' ')}\n`);
  const t0 = performance.now();
  const { losses } = await fineTune({
    model, adapter: 'default', backend: chosen.backend, data, steps, batch: 8, lr: 1e-2, warmup: 4, maxGradNorm: 1, seed: 1,
    onStep: (r) => { if (r.step === 1 || r.step % 5 === 0) console.log(`step ${String(r.step).padStart(3)}  loss ${r.loss.toFixed(4)}  ${'█'.repeat(Math.max(1, Math.round(r.loss * 12)))}`); },
  });
  const secs = (performance.now() - t0) / 1000;
  const after = await sample();
  console.log(`\nTrained ${steps} steps in ${secs.toFixed(1)} s (${((steps * 8 * seq) / secs).toFixed(0)} tokens/s); loss ${losses[0]!.toFixed(3)} → ${losses[losses.length - 1]!.toFixed(3)}.`);
  console.log(`\nAfter (greedy from BOS):\n  ${after.replace(/\n/g, ' ')}\n`);
  console.log(after.includes(HERO_MARKER) ? `The model now tells of the new hero ("${HERO_MARKER}").` : `The sample does not mention "${HERO_MARKER}" yet; try more --steps.`);
  await writePeftDir(model, String(f.out), modelPath);
  console.log(`Adapter saved to ${f.out}/ (Hugging Face PEFT format).`);
  chosen.backend.dispose();
}

// ---------------------------------------------------------------------------------------------- dispatch

const commands: Record<string, { summary: string; flags: Record<string, FlagSpec>; run: (f: Flags) => Promise<number | void> }> = {
  quickstart: { summary: 'fine-tune stories260K on the built-in task and show before/after samples', flags: quickFlags, run: quickstart },
  train: { summary: 'fine-tune an adapter and save it in the PEFT format', flags: trainFlags, run: train },
  tokenize: { summary: 'print the token ids of a text (from a tokenizer.json, tokenizer.bin or GGUF file)', flags: tokenizeFlags, run: tokenize },
  'prune-vocab': { summary: 'keep the tokens a corpus uses: a smaller model with its embedding, head and tokenizer rewritten', flags: pruneVocabFlags, run: pruneVocabCommand },
  generate: { summary: 'generate text (prints only the generated text on stdout)', flags: generateFlags, run: generate },
  eval: { summary: 'mean next-token cross-entropy over the first K paragraphs of a text file; with --task seq-cls|token-cls, a classifier\'s accuracy, macro-F1 and loss', flags: evalFlags, run: evaluate },
  predict: { summary: 'classify texts with an encoder and an adapter trained by train --task seq-cls|token-cls', flags: { ...predictFlags, ...common }, run: predictCommand },
  info: { summary: 'describe a model and the backend auto would choose', flags: { ...modelFlags, ...baseDtypeFlag, ...common }, run: info },
  merge: { summary: 'merge an adapter into the base model; write safetensors and/or GGUF', flags: mergeFlags, run: merge },
  'poly-to-lora': { summary: "save a Poly adapter as a plain LoRA: its skills averaged (MHR-μ), or one task's routed adapter", flags: polyToLoraFlags, run: polyToLora },
  select: { summary: 'keep the most useful examples of a JSONL data set (cdas, deita, nudge, adapt-inf)', flags: { ...modelFlags, ...selectFlags, ...baseDtypeFlag, ...common }, run: (f) => selectCommand(f, openTextModel, openBackend) },
  convert: { summary: 'write a GGUF copy of a model with f16, bf16, q8_0, q4_0 or q4_1 weights', flags: convertFlags, run: convert },
  compose: { summary: 'add sparse deltas (train --method spiel, …) into one delta folder, checked against the model', flags: composeFlags, run: composeCommand },
  analyze: { summary: 'intruder dimensions and the effective rank of each weight update of an adapter or a fine-tuned model', flags: analyzeFlags, run: (f) => analyzeCommand(f, { openModel, readAdapterDir }) },
  search: { summary: 'configuration search (AutoPEFT-style): method × rank × targets × layers by successive halving; Pareto front of held-out loss and parameters', flags: { ...searchFlags, ...baseDtypeFlag, ...common }, run: (f) => searchCommand(f, { openTextModel, openBackend, loadExamples }) },
};

export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === 'help') {
    process.stdout.write(`adaptkit: parameter-efficient fine-tuning in JavaScript\n\ncommands:\n${Object.entries(commands).map(([k, c]) => `  ${k.padEnd(11)} ${c.summary}`).join('\n')}\n\n'adaptkit <command> --help' lists a command's options.\n`);
    return name ? 0 : 1;
  }
  const cmd = commands[name];
  try {
    if (!cmd) throw new UsageError(`unknown command '${name}' (commands: ${Object.keys(commands).join(', ')})`);
    const flags = parseFlags(rest, cmd.flags, name, name === 'train' ? methodFlag(rest) : undefined);
    if (flags.help) {
      process.stdout.write(usage(name, cmd.summary, cmd.flags));
      if (name === 'train') {
        // LoRA's main options are train's own flags (--rank, --alpha, --targets…); its others are listed as other methods' are.
        const loraFlagged = ['r', 'alpha', 'dropout', 'targetModules', 'layersToTransform', 'useRslora', 'init', 'useDora'];
        for (const m of methodNames()) {
          const options = Object.entries(getMethod(m).options).filter(([k]) => m !== 'lora' || !loraFlagged.includes(k));
          process.stdout.write(`\n--method ${m} options:\n${options.map(([k, h]) => `  --${kebab(k)}`.padEnd(30) + h).join('\n')}\n`);
        }
      }
      return 0;
    }
    return (await cmd.run(flags)) ?? 0;
  } catch (e) {
    err(`adaptkit ${name}: ${(e as Error).message}`);
    if (process.env.ADAPTKIT_DEBUG) err((e as Error).stack ?? '');
    return e instanceof UsageError ? 2 : 1;
  }
}
