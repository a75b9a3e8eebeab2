/** An error from the WebGPU backend: it names the kernel (and graph node) involved where one is known. */
export class WebgpuError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebgpuError';
  }
}
