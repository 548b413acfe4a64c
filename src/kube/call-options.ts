import { Observable, type ConfigurationOptions, type ObservableMiddleware, type RequestContext, type ResponseContext } from '@kubernetes/client-node';

/**
 * Per-call options that hand `signal` to the HTTP request (node-fetch aborts the socket), so a
 * timed-out or abandoned call does not keep a connection busy.
 */
export function withSignal(signal: AbortSignal): ConfigurationOptions;
export function withSignal(signal: AbortSignal | undefined): ConfigurationOptions | undefined;
export function withSignal(signal: AbortSignal | undefined): ConfigurationOptions | undefined {
  if (!signal) return undefined;
  const middleware: ObservableMiddleware = {
    pre(context: RequestContext) {
      context.setSignal(signal);
      return new Observable(Promise.resolve(context));
    },
    post(context: ResponseContext) {
      return new Observable(Promise.resolve(context));
    },
  };
  return { middleware: [middleware], middlewareMergeStrategy: 'append' };
}
