/** Plain-text corpora: paragraphs separated by blank lines. */

/** Split text into paragraphs at blank lines (lines with only whitespace count as blank); trims each. */
export function paragraphs(text: string): string[] {
  return text.split(/\r?\n[ \t]*\r?\n/).map((p) => p.trim()).filter((p) => p.length > 0);
}

/**
 * Lines of text arriving in chunks, each with its line ending ('\n', the '\r' of '\r\n' kept), the last one
 * possibly without; a line is only ever held whole, never the text around it.
 */
export async function* lines(chunks: AsyncIterable<string>): AsyncGenerator<string> {
  let tail = '';
  for await (const chunk of chunks) {
    let text = tail + chunk, from = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', from)) {
      yield text.slice(from, nl + 1);
      from = nl + 1;
    }
    tail = text.slice(from);
    text = '';
  }
  if (tail) yield tail;
}

const BLANK = /^[ \t]*\r?\n?$/;

/** `paragraphs` over text arriving in chunks: the same paragraphs, each yielded once its blank line is read. */
export async function* streamParagraphs(chunks: AsyncIterable<string>): AsyncGenerator<string> {
  let para: string[] = [];
  const flush = (): string => { const p = para.join('').trim(); para = []; return p; };
  for await (const line of lines(chunks)) {
    if (BLANK.test(line)) {
      const p = flush();
      if (p) yield p;
    } else {
      para.push(line);
    }
  }
  const p = flush();
  if (p) yield p;
}
