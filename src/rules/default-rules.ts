import { fileURLToPath } from 'node:url';

/** The shipped rules (`rules/default-rules.yaml`, packaged next to `dist/`), used when no `--rules` is given. */
export const DEFAULT_RULES_PATH = fileURLToPath(new URL('../../rules/default-rules.yaml', import.meta.url));
