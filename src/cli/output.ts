/**
 * Writes with backpressure. A reader that goes away (`| head`) is not an error of the command:
 * the rest of the output is dropped and the exit code still reflects the findings.
 */
export function writer(stream: NodeJS.WritableStream): (text: string) => Promise<void> {
  let closed = false;
  stream.on('error', () => {
    closed = true;
  });
  return (text) =>
    new Promise<void>((resolve) => {
      if (closed || stream.write(text)) return resolve();
      const done = (): void => {
        stream.off('drain', done);
        stream.off('error', done);
        stream.off('close', done);
        resolve();
      };
      stream.once('drain', done);
      stream.once('error', done);
      stream.once('close', done);
    });
}

/** Colour for table output: `always`, or `auto` on a terminal unless NO_COLOR is set. */
export function useColor(setting: 'auto' | 'always' | 'never', stream: NodeJS.WritableStream): boolean {
  return setting === 'always' || (setting === 'auto' && (stream as NodeJS.WriteStream).isTTY === true && !process.env['NO_COLOR']);
}
