/** An append-only byte blob for the STRINGS section; short repeated strings are stored once. */
export class StringTable {
  #chunks: Buffer[] = [];
  #length = 0;
  #dedupe = new Map<string, number>();

  /** Append bytes; returns their offset. */
  addBytes(bytes: Buffer): number {
    const off = this.#length;
    this.#chunks.push(bytes);
    this.#length += bytes.length;
    return off;
  }

  /** Append a string (UTF-8); returns [offset, byteLength]. Deduplicated when `shared`. */
  add(text: string, shared: boolean): [number, number] {
    if (text === '') return [0, 0];
    if (shared) {
      const known = this.#dedupe.get(text);
      if (known !== undefined) return [known, Buffer.byteLength(text)];
    }
    const bytes = Buffer.from(text);
    const off = this.addBytes(bytes);
    if (shared) this.#dedupe.set(text, off);
    return [off, bytes.length];
  }

  /** The whole table. */
  toBuffer(): Buffer {
    return Buffer.concat(this.#chunks, this.#length);
  }
}
