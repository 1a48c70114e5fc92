// The tests' and benchmarks' free ports: the same choice as `npm run conformance`.
export { freePort } from '../../src/free-port.js';
