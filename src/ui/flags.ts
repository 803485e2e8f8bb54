import { Flags } from '@oclif/core';

export const registryFlag = Flags.string({
  char: 'r',
  description: 'registry of difusores (YAML)',
  default: './difusores.yaml',
  env: 'DIFUSION_REGISTRY',
  helpValue: 'FILE',
});

export const onlyFlag = Flags.string({
  description: 'limit to this difusor id (repeatable)',
  multiple: true,
  helpValue: 'ID',
});
