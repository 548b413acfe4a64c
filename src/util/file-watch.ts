import { statSync } from 'node:fs';

/**
 * Polls files for changes. Polling (not fs.watch) because Kubernetes updates mounted Secrets and
 * ConfigMaps by swapping a `..data` symlink, which inotify-based watchers on the file miss.
 */
export function watchFiles(paths: readonly string[], intervalMs: number, onChange: () => void): () => void {
  const signature = () =>
    paths
      .map((path) => {
        try {
          const s = statSync(path);
          return `${s.ino}:${s.size}:${s.mtimeMs}`;
        } catch {
          return 'missing';
        }
      })
      .join('|');
  let last = signature();
  const timer = setInterval(() => {
    const next = signature();
    if (next !== last) {
      last = next;
      onChange();
    }
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
