// A lookup whose found answers are kept for a bounded time: API keys are checked on every request,
// and a database round trip per request for an answer that changes only on revocation is a large
// share of a create's cost. Bounded staleness is the price: a revoked key keeps working in this
// process for at most `ttlMs`. Misses are never kept, so a new key works at once.

export type CachedLookupOptions = Readonly<{
  ttlMs: number;
  /** Most answers kept; the oldest goes first. */
  maxEntries?: number;
  now?: () => number;
}>;

export function cachedLookup<K, V>(
  lookup: (key: K) => Promise<V | null>,
  keyOf: (key: K) => string,
  options: CachedLookupOptions,
): (key: K) => Promise<V | null> {
  if (options.ttlMs <= 0) return lookup;
  const now = options.now ?? Date.now;
  const maxEntries = options.maxEntries ?? 10_000;
  const entries = new Map<string, { value: V; expiresAt: number }>();
  return async (key) => {
    const id = keyOf(key);
    const entry = entries.get(id);
    if (entry && entry.expiresAt > now()) return entry.value;
    entries.delete(id);
    // The answer's age counts from before the lookup: a lookup that waited for a connection must not
    // stretch how long a revoked key keeps working past ttlMs.
    const askedAt = now();
    const value = await lookup(key);
    if (value !== null) {
      if (entries.size >= maxEntries) entries.delete(entries.keys().next().value as string);
      entries.set(id, { value, expiresAt: askedAt + options.ttlMs });
    }
    return value;
  };
}
