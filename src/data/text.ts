/** Plain-text corpora: paragraphs separated by blank lines. */

/** Split text into paragraphs at blank lines (lines with only whitespace count as blank); trims each. */
export function paragraphs(text: string): string[] {
  return text.split(/\r?\n[ \t]*\r?\n/).map((p) => p.trim()).filter((p) => p.length > 0);
}

/**
 * Lines of text arriving in chunks, each with its line ending ('\n', the '\r' of '\r\n' kept), the last one
 * possibly without; a line is only ever held whole, never the text around it. Yields the lines of each
 * chunk together (one await per chunk, not per line: a large corpus has millions of lines).
 */
export async function* lineBatches(chunks: AsyncIterable<string>): AsyncGenerator<string[]> {
  let tail = '';
  for await (const chunk of chunks) {
    const text = tail + chunk, batch: string[] = [];
    let from = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', from)) {
      batch.push(text.slice(from, nl + 1));
      from = nl + 1;
    }
    tail = text.slice(from);
    if (batch.length) yield batch;
  }
  if (tail) yield [tail];
}

/** `lineBatches`, a line at a time. */
export async function* lines(chunks: AsyncIterable<string>): AsyncGenerator<string> {
  for await (const batch of lineBatches(chunks)) yield* batch;
}

const BLANK = /^[ \t]*\r?\n?$/;

/**
 * `paragraphs` over text arriving in chunks: the same paragraphs, each once its blank line is read, in
 * batches (the paragraphs completed by one chunk).
 */
export async function* paragraphBatches(chunks: AsyncIterable<string>): AsyncGenerator<string[]> {
  let para: string[] = [];
  const flush = (): string => { const p = para.join('').trim(); para = []; return p; };
  for await (const batch of lineBatches(chunks)) {
    const done: string[] = [];
    for (const line of batch) {
      if (BLANK.test(line)) {
        const p = flush();
        if (p) done.push(p);
      } else {
        para.push(line);
      }
    }
    if (done.length) yield done;
  }
  const p = flush();
  if (p) yield [p];
}

/** `paragraphBatches`, a paragraph at a time. */
export async function* streamParagraphs(chunks: AsyncIterable<string>): AsyncGenerator<string> {
  for await (const batch of paragraphBatches(chunks)) yield* batch;
}
