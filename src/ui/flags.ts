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

export const yesFlag = Flags.boolean({
  char: 'y',
  description: 'confirm without asking (required without a terminal)',
  default: false,
});

export const journalFlag = Flags.string({
  description: "another publication host's journal, copied here (its journal.jsonl; repeatable)",
  multiple: true,
  helpValue: 'FILE',
});
