import { readFileSync } from 'node:fs';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { testApp } from './support/app.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

/** The README promises exact answers for the examples; they must stay true. */
describe('README quick start', () => {
  const pairs = [...readme.matchAll(/--data @(examples\/[\w.-]+\.json) https:\/\/localhost:8443(\/\w+)\n```\n\n```json\n(.+)\n```/g)];

  it('has the two set-up commands and both examples', () => {
    expect(readme).toContain('npm ci && npm start');
    expect(readme).toContain('npm ci && npm test');
    expect(pairs).toHaveLength(2);
  });

  for (const [, file, path, expected] of pairs) {
    it(`answers ${file} on ${path} exactly as documented`, async () => {
      const { app } = testApp();
      const body = readFileSync(new URL(`../${file}`, import.meta.url), 'utf8');
      const res = await request(app).post(path!).set('content-type', 'application/json').send(body);
      expect(res.body).toEqual(JSON.parse(expected!));
    });
  }
});

describe('CI', () => {
  it('runs the README test command verbatim', () => {
    expect(readFileSync(new URL('../.ci/run', import.meta.url), 'utf8')).toContain('npm ci && npm test');
  });
});
