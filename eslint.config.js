import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'data/', 'certs/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // The dashboard's page script runs in the browser.
    files: ['src/dashboard/public/**/*.js'],
    languageOptions: {
      sourceType: 'script',
      globals: Object.fromEntries(
        ['window', 'document', 'location', 'fetch', 'Node', 'URLSearchParams', 'uPlot'].map(
          (name) => [name, 'readonly'],
        ),
      ),
    },
  },
  {
    files: ['bin/**/*.js', 'scripts/**/*.mjs', '*.cjs'],
    languageOptions: { globals: { process: 'readonly', module: 'writable' } },
  },
);
