// Waiting in a test for something that happens on its own time (a poll, a
// sync): checked every few milliseconds, failing with what never happened
// once the bound is reached. A bound on waiting, not a timed assertion.

export async function eventually(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`never happened: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
