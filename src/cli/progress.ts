/** Progress output: a redrawn bar on a terminal, one line per update elsewhere, nothing with --json. */

export class Progress {
  private last = 0;
  constructor(private readonly label: string, private readonly total: number, private readonly stream: NodeJS.WriteStream = process.stderr, private readonly quiet = false) {}

  update(done: number, extra = ''): void {
    if (this.quiet) return;
    const now = Date.now();
    if (done < this.total && now - this.last < 100) return;
    this.last = now;
    const frac = this.total ? done / this.total : 1;
    if (this.stream.isTTY) {
      const width = 24, filled = Math.round(frac * width);
      this.stream.write(`\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${this.total} ${extra}\x1b[K`);
      if (done >= this.total) this.stream.write('\n');
    } else if (done === this.total || done % Math.max(1, Math.floor(this.total / 10)) === 0) {
      this.stream.write(`${this.label} ${done}/${this.total} ${extra}\n`);
    }
  }
}
