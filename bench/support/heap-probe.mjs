// Preloaded (`node --import`) into the server processes the load test and the
// benchmarks start, never into a real deployment: it answers the parent's
// questions about this process's memory over the IPC channel (a forced GC
// first when the process runs with --expose-gc), keeps the highest heap use
// it has seen (sampled every 50 ms), and ends the process when the parent
// goes away, so a crashed benchmark leaves no server behind.
let peakHeapUsed = 0;
const sample = () => {
  const { heapUsed } = process.memoryUsage();
  if (heapUsed > peakHeapUsed) peakHeapUsed = heapUsed;
};
setInterval(sample, 50).unref();

process.on('message', (message) => {
  if (typeof message !== 'object' || message === null || message.type !== 'memory') return;
  sample();
  const peak = peakHeapUsed;
  if (message.resetPeak) peakHeapUsed = 0;
  let collected = false;
  if (message.gc && typeof globalThis.gc === 'function') {
    // Twice: the first pass can leave objects that only the second frees (weak references, finalizers).
    globalThis.gc();
    globalThis.gc();
    collected = true;
  }
  const usage = process.memoryUsage();
  process.send?.({ type: 'memory', id: message.id, collected, peakHeapUsed: peak, usage });
});
process.on('disconnect', () => process.exit(0));
process.channel?.unref();
