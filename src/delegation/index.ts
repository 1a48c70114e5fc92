// The pure delegation model: scopes, resources, claims and actor chains.
export * from './scopes.js';
export * from './resource.js';
export * from './tokens.js';
export * from './constraints.js';
