import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The arrows of the house point one way: commands → ui → core ← adapters. The core names what it needs
// (its ports) and never reaches for the outside; adapters implement the core and are wired by the commands.
const layer = (files, forbidden, why) => ({
  files,
  rules: {
    'no-restricted-imports': ['error', { patterns: forbidden.map((dir) => ({ group: [`**/${dir}/**`], message: why })) }],
  },
});

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  layer(['src/core/**/*.ts'], ['adapters', 'ui', 'commands'], 'the core declares a port beside the code that needs it; adapters implement it'),
  layer(['src/adapters/**/*.ts'], ['ui', 'commands'], 'adapters implement the core; only commands wire them'),
  layer(['src/ui/**/*.ts'], ['adapters', 'commands'], 'ui renders what the core returns; commands pass the adapters in'),
);
