// Tests run as compiled JS (npm test builds first); spawned servers use the same build.
module.exports = {
  spec: ['dist/test/**/*.test.js'],
  timeout: 60000,
  forbidOnly: Boolean(process.env.CI),
  exit: true,
};
