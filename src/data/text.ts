/** Plain-text corpora: paragraphs separated by blank lines. */

/** Split text into paragraphs at blank lines (lines with only whitespace count as blank); trims each. */
export function paragraphs(text: string): string[] {
  return text.split(/\r?\n[ \t]*\r?\n/).map((p) => p.trim()).filter((p) => p.length > 0);
}
