/**
 * AdaptKit's public API: load a model, add adapters, fine-tune, generate, evaluate, save and load
 * PEFT folders, on the js, wasm or webgpu backend. Everything here runs in Node, Deno, Bun and browsers;
 * file-system helpers live in the CLI.
 */
export type { Backend, BackendName, Executable, ExecutionPlan, StepTime, WeightSources } from './backends/backend.js';
export { createJsBackend } from './backends/js/index.js';
export { createBackend, BACKEND_CHOICES, type BackendChoice, type ChosenBackend } from './scheduler/backends.js';
export { Session } from './scheduler/session.js';
export { planGraph } from './scheduler/plan.js';

export { Graph, Tensor } from './graph/graph.js';
export * as ops from './graph/api.js';
export { gradients, type GradientOptions } from './graph/autodiff.js';
export { layerSegments, type CheckpointSegment } from './graph/checkpoint.js';
export { graphFromJSON, graphToJSON, type GraphJSON } from './graph/serialize.js';
export { opNames } from './graph/ops/index.js';

export {
  isCompactTensor, loadCheckpoint, memorySource, tensorF32, withRopeLayout,
  type CompactTensor, type F32Tensor, type LlamaCheckpoint, type LlamaConfig, type NamedTensor,
} from './formats/checkpoint.js';
export { type CompactDType, compactBytes, dequantize, isCompact, quantize } from './quant/index.js';
export { BASE_DTYPES, type BaseDType } from './formats/storage.js';
export { type ByteSource, blobSource, bytesSource, httpSource } from './formats/source.js';
export { parseSafetensors, writeSafetensors } from './formats/safetensors.js';
export { parseGguf, writeGguf } from './formats/gguf.js';
export { checkpointToGguf } from './formats/gguf-llama.js';
export { createTokenizer, type Tokenizer } from './tokenizer/index.js';
export { ChatTemplate, ChatTemplateError, type ChatMessage, chatTemplateFor, endOfTurnIds, SpecialSplitter } from './tokenizer/chat-template.js';

export { buildLlama, LLAMA_PROJECTIONS, type ModelHooks } from './model/llama.js';
export { buildModel, familyOf, type DecoderFamily } from './model/families.js';
export { chunkedCrossEntropy, nextTokenLoss, type CeChunk } from './model/loss.js';
export { EVAL_RANGES, GENERATE_RANGES, LlamaRuntime, type GenerateOptions } from './model/runtime.js';
export { Sampler, type SamplingOptions } from './model/sampling.js';
export { encoderConfig, encoderModules, type EncoderConfig, type EncoderKind, type EncoderTask } from './model/encoders/config.js';
export { buildEncoder, type EncoderGraph, type EncoderGraphOptions } from './model/encoders/build.js';
export { encoderCheckpoint, loadEncoder, loadEncoderFolder, withHead, type EncoderCheckpoint } from './model/encoders/checkpoint.js';
export { readGgufEncoder } from './model/encoders/gguf.js';
export { classificationScores, EncoderClassifier, type EncodedExample, type EvalResult, type TrainOptions as ClassifierTrainOptions } from './model/encoders/classifier.js';
export { encodeExamples, encodeTexts, labelSet, parseClassificationData, sequenceFrame, type RawExample } from './model/encoders/data.js';

export { AdaptedModel, type Adapter } from './adapters/adapted-model.js';
export { generateMixed, type MixedGenerateOptions } from './adapters/mixed/generate.js';
export { MIXED_BASE } from './adapters/mixed/rows.js';
export { loadPeft, savePeft, type PeftFiles } from './adapters/peft.js';
export { getMethod, methodNames } from './adapters/registry.js';
export type { AdapterMethod, ModuleInfo, ParamStore } from './adapters/types.js';

// Methods that train the base model's own weights (full fine-tuning, LISA, HFT, …): src/updaters.
export { BASE_TRAIN_RANGES, baseTensors, trainBaseWeights, type BaseTrainOptions, type BaseTrainResult } from './updaters/train.js';
export { UPDATERS, type UpdaterEntry, type UpdaterOption, type UpdaterRun } from './updaters/index.js';
export type { BaseTensorInfo, TensorOptimizer, TensorOptimizerHyper, Updater, UpdaterContext } from './updaters/types.js';
export { fullUpdater } from './updaters/full/index.js';
export { lisaUpdater, type LisaOptions } from './updaters/lisa/index.js';
export { hftUpdater, type HftOptions } from './updaters/hft/index.js';
export { greenTrainerUpdater, type GreenTrainerOptions } from './updaters/greentrainer/index.js';
export { backwardCosts, type BackwardCosts, type TensorCost } from './updaters/greentrainer/costs.js';
export { galoreUpdater, isProjectedWeight } from './updaters/galore/index.js';
export { GALORE_DEFAULTS, GaLoreAdam, type GaLoreSettings } from './updaters/galore/projected-adam.js';
export { svd, type Svd } from './linalg/svd.js';
export { LAZY_DEFAULTS, LazyInterval, QGaLoreAdam, qGaLoreUpdater, type LazySettings, type QGaLoreSettings } from './updaters/q-galore/index.js';
export { Int4Matrix, Int8Weights, stochasticRound } from './updaters/q-galore/quant.js';

export { Trainer, type OptimizerOptions, type StepResult } from './train/trainer.js';
export { buildTrainingGraph, FINE_TUNE_RANGES, fineTune, type FineTuneOptions, type FineTuneResult, type FineTuneRun, type TrainingGraph } from './train/finetune.js';
export { buildDpoGraph, DPO_RANGES, trainDpo, type DpoOptions, type DpoStep } from './objectives/dpo/train.js';
export { preferencePairs, type PreferenceData } from './objectives/dpo/data.js';
export { distill, DISTILL_METHODS, type DistillOptions, type DistillStep } from './objectives/distill/train.js';
export { TaidSchedule, type TaidOptions } from './objectives/distill/targets.js';
export { trainMultiObjective, type MultiObjectiveOptions, type MultiObjectiveStep, type WeightedObjective } from './objectives/multi/train.js';
export { multiObjectiveData } from './objectives/multi/data.js';
export { augmentExamples, augmentTokens, type TokenAugmentOptions } from './objectives/augment/tokens.js';
export { trainAugmented, type AugmentedOptions, type AugmentedStep } from './objectives/augment/train.js';
export { checkSameTokenizer, proxyGenerate, type ProxyOptions } from './decoding/proxy.js';
export { RuleModel, rulesGenerate, type RuleOptions } from './decoding/rules.js';
export { DRAFT_RANGES, draftGenerate, type DraftOptions, type DraftStats } from './decoding/draft/decode.js';
export { TrigramTable, trigramFromText, type Continuation, type TrigramOptions } from './decoding/draft/trigram.js';
export { buildDraftTree, treeMask, type DraftNode, type DraftShape } from './decoding/draft/tree.js';
export { keptIds, pruneVocabulary, usedTokenIds, type PruneResult } from './vocab/prune.js';
export { checkRange, describeRange, type Range } from './util/ranges.js';
export { decodeTrainingState, encodeTrainingState, TRAINING_STATE_FILE, type TrainingState } from './train/training-state.js';
export { formatProfile, summarizeProfile, type OpTime, type StepProfile } from './scheduler/profile.js';
export { lrSchedule } from './train/schedule.js';
export { checkTrainingPlan, estimateTraining, fittingVariants, MemoryPlanError, planTraining, type TrainingEstimate, type TrainingShape } from './train/memory.js';
export { estimatePlanMemory, formatBytes, formatEstimate, memoryProblem, type MemoryEstimate } from './scheduler/memory.js';
export { OutOfMemoryError, type MemoryCaps } from './backends/backend.js';
export { syntheticCheckpoint, type SyntheticOptions } from './model/synthetic.js';

export { chatExample, type ChatData, jsonlExamples, pack, textExamples, type Example, type PackedBlocks } from './data/dataset.js';
export { paragraphs } from './data/text.js';
export { heroStories, HERO_OPENING, HERO_MARKER } from './data/builtin-task.js';

export { selectData, SELECT_METHODS, type SelectMethod, type SelectOptions, type Selection } from './select/index.js';
export { selectCdas } from './select/cdas/index.js';
export { selectDeita, deitaScores } from './select/deita/index.js';
export { selectNudge, sinkhornPotentials } from './select/nudge/index.js';
export { selectAdaptInf } from './select/adapt-inf/index.js';
export { Forward, gradientFeatures, itemSignals, kmeans, selectItems, type ItemSignals, type SelectItem } from './select/common/index.js';
export { analyzeWeight, effectiveRank, intruderDimensions, INTRUDER_DEFAULTS, numericalRank, type IntruderOptions, type IntruderResult, type ModuleAnalysis } from './analysis/intruder/intruder.js';
export { adaptedLinearModules, analyzeModules, intruderTotals, mergedCheckpoint, type ModuleReport } from './analysis/intruder/model.js';
export { asciiScatter, candidatesForBudget, chooseFromFront, dominates, paretoFront, paretoRanks, planSearch, rungPlan, searchConfigurations, searchGrid, sampleCandidates, successiveHalving, trainArgs, type Candidate, type Objectives, type SearchOptions, type SearchResult, type SearchSpace } from './search/index.js';
