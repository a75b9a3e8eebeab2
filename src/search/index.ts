export { dominates, paretoFront, paretoRanks, multiObjectiveOrder, chooseFromFront, type Objectives } from './pareto.js';
export { rungPlan, planSteps, candidatesForBudget, successiveHalving, type HalvingOptions, type Rung, type RungResult } from './halving.js';
export { searchGrid, sampleCandidates, candidateConfig, candidateLabel, trainArgs, type Candidate, type SearchSpace } from './space.js';
export { asciiScatter } from './plot.js';
export { planSearch, searchConfigurations, type SearchOptions, type SearchPoint, type SearchResult } from './search.js';
