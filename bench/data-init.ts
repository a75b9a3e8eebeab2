/**
 * Data-driven LoRA initialisations: seconds for `addAdapter` with init 'eva' and 'corda' on stories260K
 * (all seven projections of its 5 layers, r = 8) from 64 rows × 128 tokens of the hero task read 8 rows per
 * batch, beside init 'default' (no data). The time is the float64 host forward over the sample plus EVA's
 * incremental PCA or CorDA's covariance, inverse and SVD per module.
 */
import { AdaptedModel } from '../src/adapters/adapted-model.js';
import { initSampleFromBlocks } from '../src/adapters/init-sample.js';
import { heroStories } from '../src/data/builtin-task.js';
import { pack, textExamples } from '../src/data/dataset.js';
import { createTokenizer } from '../src/tokenizer/index.js';
import { loadStories } from './models.js';

export async function benchDataInit(o: { json: boolean }): Promise<void> {
  const ckpt = await loadStories();
  const blocks = pack(textExamples(heroStories(200, 7), createTokenizer(ckpt.tokenizer!), 128), 128, 0);
  const sample = initSampleFromBlocks(blocks, { batchRows: 8, rows: 64 });
  const targetModules = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
  for (const init of ['default', 'eva', 'corda']) {
    const t = performance.now();
    const a = new AdaptedModel(ckpt).addAdapter('t', 'lora', { r: 8, alpha: 16, init, targetModules }, init === 'default' ? {} : { sample });
    const seconds = (performance.now() - t) / 1000;
    const d = (a.config as { dataInit?: { evaBatches?: number; evaConverged?: boolean } }).dataInit;
    const row = { init, seconds, modules: a.modules.length, rows: init === 'default' ? 0 : sample.rows.length, tokensPerRow: 128, ...(d?.evaBatches !== undefined ? { evaBatches: d.evaBatches, evaConverged: d.evaConverged } : {}) };
    console.log(o.json ? JSON.stringify(row) : `${init.padEnd(8)} ${seconds.toFixed(2)} s  ${row.modules} modules${row.rows ? `, ${row.rows} rows × 128 tokens` : ''}${d?.evaBatches !== undefined ? `, EVA read ${d.evaBatches} batches (${d.evaConverged ? 'converged' : 'not converged'})` : ''}`);
  }
}
