import type { LoadJob } from './load.js';
import { loadJob, log, measure } from './measure.js';
import type { Options } from './options.js';
import { readMemory } from './processes.js';
import { mib, type SoakResult } from './report.js';
import type { RunFiles } from './run-dir.js';
import type { Scenario } from './scenarios.js';
import { preflight, startGitopsGuard, type ApiProcess, type Cores } from './servers.js';

/** The soak: owner and checksum mixed for many requests; RSS at start, middle and end. */

export async function runSoak(scenarios: Scenario[], files: RunFiles, options: Options, cores: Cores, api: ApiProcess | undefined): Promise<SoakResult> {
  const server = await startGitopsGuard(files, options, cores, api?.kubeconfig);
  try {
    for (const scenario of scenarios) await preflight(server.port, files.caFile, scenario, files.profile);
    const idle = readMemory(server.child.pid)?.rss ?? 0;
    const concurrency = options.concurrency?.[0] ?? 50;
    const mixed: Scenario = { id: 'owner', title: 'soak', requests: scenarios.flatMap((s) => s.requests), apiReadsPerCycle: 0, defaultConcurrency: [concurrency] };
    const job: LoadJob = {
      ...loadJob(mixed, files, server.port, concurrency, options, 'admission'),
      amount: options.soakRequests,
      durationSeconds: undefined,
      progressIntervalMs: 250,
    };
    const timeline: SoakResult['timeline'] = [];
    let started = Date.now();
    let windowStart: Promise<unknown> | undefined;
    let lastLogged = 0;
    const load = await measure(
      server.child,
      job,
      files,
      cores,
      () => {
        started = Date.now();
        windowStart = api?.stats();
      },
      (done) => {
        const memory = readMemory(server.child.pid);
        if (memory) timeline.push({ requests: done, rssBytes: memory.rss, seconds: (Date.now() - started) / 1000 });
        if (done - lastLogged >= options.soakRequests / 10) {
          lastLogged = done;
          log(`  soak: ${done} requests, RSS ${memory ? mib(memory.rss) : '?'} MiB`);
        }
      },
    );
    await windowStart;
    const end = readMemory(server.child.pid);
    const peak = end?.peak ?? load.maxRssBytes;
    const measured = timeline.filter((t) => t.requests > 0);
    const nearest = (n: number) => measured.reduce((best, t) => (Math.abs(t.requests - n) < Math.abs(best.requests - n) ? t : best), measured[0] ?? { requests: 0, rssBytes: idle, seconds: 0 });
    const start = measured[0]?.rssBytes ?? idle;
    const middle = nearest(options.soakRequests / 2).rssBytes;
    const endRss = end?.rss ?? measured[measured.length - 1]?.rssBytes ?? 0;
    const apiStats = api ? await api.stats() : undefined;
    // Single samples ride the garbage collector's sawtooth; medians over a window do not.
    const medianIn = (from: number, to: number): number => {
      const values = measured.filter((t) => t.requests >= from * options.soakRequests && t.requests <= to * options.soakRequests).map((t) => t.rssBytes);
      values.sort((a, b) => a - b);
      return values[values.length >> 1] ?? 0;
    };
    const windows = { start: medianIn(0, 0.1), middle: medianIn(0.45, 0.55), end: medianIn(0.9, 1) };
    return {
      requests: options.soakRequests,
      concurrency,
      load,
      rssBytes: { idle, start, middle, end: endRss, peak },
      rssMedianBytes: windows,
      growthMiddleToEnd: Math.round(((windows.end - windows.middle) / Math.max(1, windows.middle)) * 1000) / 1000,
      growthMiddleToEndSamples: Math.round(((endRss - middle) / Math.max(1, middle)) * 1000) / 1000,
      timeline,
      ...(apiStats ? { api: { requests: apiStats.requests, connections: apiStats.connections, serviceMs: apiStats.serviceMs } } : {}),
    };
  } finally {
    await server.child.stop();
  }
}
