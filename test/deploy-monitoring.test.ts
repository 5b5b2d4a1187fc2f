// deploy/: the Prometheus alert rules and the Grafana dashboard parse, and every metric they name is
// one the gateway serves (the registry /metrics is built from), so a renamed metric fails here, not
// on call at night.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { parse } from 'yaml';
import { createMetrics } from '../src/metrics/metrics.ts';

const served = new Set(
  (await createMetrics({ kafka: true }).registry.getMetricsAsJSON()).flatMap((metric) =>
    String(metric.type) === 'histogram'
      ? [metric.name, `${metric.name}_bucket`, `${metric.name}_sum`, `${metric.name}_count`]
      : [metric.name],
  ),
);
const PROMQL_WORDS = new Set(['by', 'without', 'and', 'or', 'unless', 'on', 'ignoring', 'bool', 'vector']);

/** The metric names in a PromQL expression: identifiers that are not functions, labels or keywords. */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"[^"]*"/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b(by|without)\s*\([^)]*\)/g, '');
  return [...bare.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()/g)]
    .map((match) => match[1] as string)
    .filter((word) => !PROMQL_WORDS.has(word) && !/^\d/.test(word));
}

t.test('metricNames reads PromQL as meant', async (t) => {
  t.same(metricNames('sum by (provider) (rate(provider_calls_total{outcome="retry"}[1m])) > 2'), [
    'provider_calls_total',
  ]);
  t.same(metricNames('histogram_quantile(0.99, sum by (le, route) (rate(x_bucket[5m])))'), ['x_bucket']);
});

t.test('prometheus-alerts.yml: rules over served metrics', async (t) => {
  const rules = parse(readFileSync('deploy/prometheus-alerts.yml', 'utf8')) as {
    groups: { name: string; rules: { alert: string; expr: string; labels?: { severity?: string } }[] }[];
  };
  const all = rules.groups.flatMap((group) => group.rules);
  t.ok(all.length >= 8, `${all.length} rules`);
  t.equal(new Set(all.map((rule) => rule.alert)).size, all.length, 'alert names are unique');
  for (const rule of all) {
    const names = metricNames(rule.expr);
    t.ok(names.length > 0, `${rule.alert} names a metric`);
    for (const name of names) t.ok(served.has(name), `${rule.alert}: ${name} is served`);
    t.match(rule.labels?.severity, /^(page|ticket)$/, `${rule.alert} has a severity`);
  }
  t.ok(
    all.some((rule) => rule.expr.includes('provider_calls_total') && rule.expr.includes('> 2')),
    'the global 2 calls/s limit is watched',
  );
});

t.test('grafana-dashboard.json: panels over served metrics', async (t) => {
  const dashboard = JSON.parse(readFileSync('deploy/grafana-dashboard.json', 'utf8')) as {
    uid: string;
    panels: { title: string; targets: { expr: string }[] }[];
  };
  t.equal(dashboard.uid, 'payment-order-gateway');
  t.ok(dashboard.panels.length >= 10);
  const used = new Set<string>();
  for (const panel of dashboard.panels) {
    for (const target of panel.targets) {
      for (const name of metricNames(target.expr)) {
        used.add(name.replace(/_(bucket|sum|count)$/, ''));
        t.ok(served.has(name), `${panel.title}: ${name} is served`);
      }
    }
  }
  // Every gateway metric (not Node's defaults) has a panel.
  const ours = [...served].filter(
    (name) => !name.startsWith('process_') && !name.startsWith('nodejs_') && !/_(bucket|sum|count)$/.test(name),
  );
  t.same(
    ours.filter((name) => !used.has(name)),
    [],
    'no metric without a panel',
  );
});
