type Container = Record<string, unknown> | unknown[];

export class FormError extends Error {}

/**
 * Stripe's request encoding (`application/x-www-form-urlencoded` with brackets, what the official
 * SDKs send): `metadata[order_id]=po_1` → `{ metadata: { order_id: 'po_1' } }`, and both
 * `payment_method_types[0]=card` and `payment_method_types[]=card` → `{ payment_method_types: ['card'] }`.
 * Objects have no prototype, so a key named `__proto__` is just a key.
 */
export function parseStripeForm(text: string): Record<string, unknown> {
  const root: Record<string, unknown> = Object.create(null);
  for (const [key, value] of new URLSearchParams(text)) assign(root, keyPath(key), value);
  return root;
}

function keyPath(key: string): string[] {
  const match = /^([^[\]]+)((?:\[[^[\]]*\])*)$/.exec(key);
  if (!match) throw new FormError(`Invalid parameter name: ${key}`);
  return [match[1]!, ...Array.from(match[2]!.matchAll(/\[([^[\]]*)\]/g), (m) => m[1]!)];
}

function assign(target: Container, path: readonly string[], value: string): void {
  const [segment, ...rest] = path as [string, ...string[]];
  const key = Array.isArray(target) ? arrayIndex(target, segment) : segment;
  if (rest.length === 0) {
    write(target, key, value);
    return;
  }
  let child = read(target, key);
  if (child === undefined) {
    child = isArraySegment(rest[0]!) ? [] : Object.create(null);
    write(target, key, child);
  }
  if (typeof child !== 'object' || child === null) throw new FormError(`Invalid parameter: ${path.join('.')}`);
  assign(child as Container, rest, value);
}

function isArraySegment(segment: string): boolean {
  return segment === '' || /^\d+$/.test(segment);
}

function arrayIndex(array: unknown[], segment: string): number {
  if (segment === '') return array.length;
  const index = Number(segment);
  // Stripe's lists are short; a huge index would only allocate a huge array.
  if (!/^\d+$/.test(segment) || index > 1000) throw new FormError(`Invalid array index: ${segment}`);
  return index;
}

function read(target: Container, key: string | number): unknown {
  return (target as Record<string | number, unknown>)[key];
}

function write(target: Container, key: string | number, value: unknown): void {
  (target as Record<string | number, unknown>)[key] = value;
}
