// Loaded with `node --import` by tests: records the URL of every module the
// process resolves into the file named by MODULE_TRACE (one per line).
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url, { data: { out: process.env.MODULE_TRACE } });
