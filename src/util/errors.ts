/**
 * A problem with what the user configured (a file, a flag's value, a kubeconfig) that stops a
 * command before it starts: the CLI says it in one line (one per `; `-separated part) and exits
 * with 1. Messages name files and fields, never their content.
 */
export class ConfigurationError extends Error {
  override readonly name: string = 'ConfigurationError';
}
