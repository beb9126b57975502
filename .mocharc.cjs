// Tests run as compiled JS (npm test builds first); spawned servers use the same build.
// Mocha adds test files named on the command line to `spec`: naming some
// (`npx mocha dist/test/e2e/bind.test.js`) must run only those, not the whole suite.
const named = process.argv.slice(2).some((arg) => /\.test\.js$/.test(arg));
module.exports = {
  spec: named ? [] : ['dist/test/**/*.test.js'],
  // Lists pending tests after the run; in CI fails on any not allowed (test/support/ci-pending.ts).
  // Drops the run's migrated template database (test/support/test-database.ts).
  require: ['dist/test/support/ci-pending.js', 'dist/test/support/test-database.js'],
  timeout: 60000,
  forbidOnly: Boolean(process.env.CI),
  exit: true,
};
