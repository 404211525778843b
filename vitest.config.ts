import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    env: { LOG_LEVEL: process.env['LOG_LEVEL'] ?? 'silent' },
    typecheck: { enabled: true, include: ['test/**/*.test-d.ts'] },
  },
});
