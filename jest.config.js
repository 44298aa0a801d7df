/**
 * Two projects: every suite, and the demo's behaviour suites once more against the sidecar in front
 * of a pre-Ocata service (test/helpers/processes.ts reads GLANCE_EDGE_TARGET).
 * @type {import('jest').Config}
 */
const base = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' } }] },
};

module.exports = {
  testTimeout: 30000,
  maxWorkers: 2,
  reporters: ['default', '<rootDir>/scripts/summary-reporter.js'],
  projects: [
    { ...base, displayName: 'glance-edge', testMatch: ['**/*.test.ts'] },
    {
      ...base,
      displayName: 'sidecar → pre-Ocata',
      testMatch: ['**/e2e/demo-{locations,ranges,formats}.test.ts'],
      globals: { GLANCE_EDGE_TARGET: 'sidecar-old' },
    },
  ],
};
