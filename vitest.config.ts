import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Suites start real plugin-server processes and HTTP servers: keep them in separate
    // processes and give process start-up room; timing goals live in `npm run bench`.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // In CI also write a JSON report, from which .ci/run prints a plain "N passed, N failed".
    reporters: process.env.CI ? ['default', 'json'] : ['default'],
    outputFile: { json: '.vitest-report.json' },
  },
});
