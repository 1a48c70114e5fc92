import { AUTHZ_MUTANTS } from './authz.js';
import { OTHER_MUTANTS } from './other.js';
import { RESOURCE_MUTANTS } from './resource.js';
import type { Mutant } from './types.js';

export type { Mutant } from './types.js';
export const ALL_MUTANTS: Mutant[] = [...AUTHZ_MUTANTS, ...RESOURCE_MUTANTS, ...OTHER_MUTANTS];
