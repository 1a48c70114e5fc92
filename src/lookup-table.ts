// A fixed table looked up by names that come from outside (a request, a
// calendar file, config.json): no prototype, so that `constructor`,
// `toString` or `__proto__` finds nothing rather than Object.prototype's
// members. Frozen.
export function lookupTable<T>(entries: Record<string, T>): Readonly<Record<string, T | undefined>> {
  return Object.freeze(Object.assign(Object.create(null) as Record<string, T>, entries));
}
