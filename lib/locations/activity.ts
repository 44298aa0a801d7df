/**
 * Closing the race the spec names, within one process: a status check followed by a forwarded
 * request leaves a window in which image data may start to be written.
 *
 * While an upload of image data for an image is in flight, location changes on it are refused at
 * once (as if the image were `saving`). An upload waits until every location change of its image
 * that is between its lookup and its answer has been answered. Location changes of one image are
 * judged one after the other, so each sees the image as the previous one left it.
 */
export type Release = () => void;

export class ImageActivity {
  readonly #uploads = new Map<string, number>();
  readonly #changes = new Map<string, Promise<void>>();

  /** Whether an upload of image data for `id` is in flight. */
  uploading(id: string): boolean {
    return (this.#uploads.get(id) ?? 0) > 0;
  }

  /** Number of images with uploads in flight. */
  get uploads(): number {
    return this.#uploads.size;
  }

  /** Start an upload for `id`; resolves once no location change of `id` is pending. */
  async beginUpload(id: string): Promise<Release> {
    this.#uploads.set(id, (this.#uploads.get(id) ?? 0) + 1);
    const pending = this.#changes.get(id);
    if (pending) await pending;
    return once(() => {
      const n = (this.#uploads.get(id) ?? 1) - 1;
      if (n > 0) this.#uploads.set(id, n);
      else this.#uploads.delete(id);
    });
  }

  /**
   * Start a location change for `id`. Resolves once it is this change's turn, to its release, or
   * to `'uploading'` if an upload of `id` is (or has come) in flight: the change must then be refused.
   */
  async beginChange(id: string): Promise<{ readonly release: Release } | 'uploading'> {
    if (this.uploading(id)) return 'uploading';
    const previous = this.#changes.get(id);
    let done!: () => void;
    const mine = new Promise<void>((resolve) => (done = resolve));
    const tail = previous ? previous.then(() => mine) : mine;
    this.#changes.set(id, tail);
    const release = once(() => {
      done();
      if (this.#changes.get(id) === tail) this.#changes.delete(id);
    });
    if (previous) await previous;
    if (this.uploading(id)) {
      release();
      return 'uploading';
    }
    return { release };
  }
}

function once(fn: () => void): Release {
  let called = false;
  return () => {
    if (called) return;
    called = true;
    fn();
  };
}
