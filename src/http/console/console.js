// The operator console: what is stuck, what is failing, how fast the providers are called.
// Plain browser JavaScript, no build step and no framework. It reads two operator endpoints
// (GET /operator/overview, GET /operator/payment-orders/{id}) with the operator key kept in this
// tab's sessionStorage, and calls the operator actions (resolve, redeliver, re-enable).
//
// Every value from the API reaches the page as a text node or an attribute set with
// setAttribute, never as HTML: the Content-Security-Policy the server sends (Trusted Types with no
// policy) makes innerHTML and its kin throw, so a slip would fail loudly rather than inject.

const KEY_STORAGE = 'payment-gateway.console.operator-key';
/** The live numbers refresh this often (the overview is a handful of index reads, src/db/operator-console.repository.ts). */
const POLL_MS = 3000;
const REQUEST_TIMEOUT_MS = 10_000;
const ORDER_ROUTE = /^#\/orders\/([^/]+)$/;

const state = {
  timer: undefined,
  /** Bumped by every refresh: an answer that arrives after a newer request began is dropped. */
  generation: 0,
  /** The order the resolve dialog is about. */
  resolving: null,
};

const byId = (id) => document.getElementById(id);

// --- DOM building: text nodes only ---------------------------------------------------------------

/** An element with attributes (`on` for listeners, `dataset` for data-*) and children (strings become text nodes). */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'on') {
      for (const [type, handler] of Object.entries(value)) node.addEventListener(type, handler);
    } else if (name === 'dataset') {
      for (const [key, data] of Object.entries(value)) node.dataset[key] = String(data);
    } else {
      node.setAttribute(name, value === true ? '' : String(value));
    }
  }
  appendAll(node, children);
  return node;
}

function appendAll(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
}

const SVG_NS = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  appendAll(node, children);
  return node;
}

/** A link to an order's story (the id is encoded: the href is always this page's own fragment). */
const orderLink = (id) => el('a', { href: `#/orders/${encodeURIComponent(id)}`, class: 'mono' }, id);

const statusBadge = (status) => el('span', { class: `status ${status}` }, status);

// --- Formatting ----------------------------------------------------------------------------------

const numberFormat = new Intl.NumberFormat('en');
const fmtNumber = (n) => (n === null || n === undefined ? '—' : numberFormat.format(n));

/** 45 s, 3 min 12 s, 2 h 5 min, 3 d 4 h. */
function fmtAge(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
}

const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString() : '—');
const fmtClock = (date) => date.toLocaleTimeString();

/** Minor units in the currency's major units (1050 USD → 10.50 USD), the ISO 4217 exponent as Intl knows it. */
function fmtAmount(amount, currency) {
  let digits = 2;
  try {
    digits = new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits;
  } catch {
    // An unknown code: minor units with two decimals is the common case.
  }
  const major = (amount / 10 ** digits).toLocaleString('en', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
  return `${major} ${currency}`;
}

// --- The API -------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail ?? `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code ?? null;
  }
}

const readKey = () => sessionStorage.getItem(KEY_STORAGE);

/** One call with the operator key; a problem+json answer becomes an ApiError carrying its code. */
async function api(method, path, body) {
  const key = readKey();
  if (!key) throw new ApiError(401, { code: 'authentication_required', detail: 'No operator key yet.' });
  const headers = { Authorization: `Bearer ${key}`, Accept: 'application/json' };
  const init = {
    method,
    headers,
    cache: 'no-store',
    credentials: 'omit',
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const isJson = /json/.test(response.headers.get('content-type') ?? '');
  const data = isJson ? await response.json() : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

const describe = (error) =>
  error instanceof ApiError
    ? `${error.message} (${error.status}${error.code ? ` ${error.code}` : ''})`
    : String(error.message ?? error);

// --- Notices and the key -------------------------------------------------------------------------

function notify(text, kind = 'info', code = null) {
  const notice = byId('notice');
  notice.textContent = text;
  notice.className = kind === 'error' ? 'notice error' : 'notice';
  notice.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  if (code) notice.dataset.code = code;
  else delete notice.dataset.code;
  notice.hidden = false;
}

const clearNotice = () => {
  byId('notice').hidden = true;
};

/** A key the server refused (401) or that is not an operator's (403): forgotten, and the key form again. */
function refuseKey(error) {
  sessionStorage.removeItem(KEY_STORAGE);
  const what = error.status === 403 ? 'This key may not use the console' : 'The key was refused';
  notify(`${what}: ${describe(error)}`, 'error', error.code);
  showKeyForm();
}

function showKeyForm() {
  stopPolling();
  byId('overview-view').hidden = true;
  byId('order-view').hidden = true;
  byId('forget-key').hidden = true;
  byId('key-view').hidden = false;
  byId('updated').textContent = 'no key';
  byId('key-input').focus();
}

// --- Views and polling ---------------------------------------------------------------------------

function currentView() {
  const match = ORDER_ROUTE.exec(location.hash);
  return match ? { kind: 'order', id: decodeURIComponent(match[1]) } : { kind: 'overview' };
}

function route() {
  if (!readKey()) {
    showKeyForm();
    return;
  }
  const view = currentView();
  byId('key-view').hidden = true;
  byId('forget-key').hidden = false;
  byId('overview-view').hidden = view.kind !== 'overview';
  byId('order-view').hidden = view.kind !== 'order';
  if (view.kind === 'order') byId('order-view').replaceChildren(el('p', { class: 'muted' }, `Loading ${view.id}…`));
  refresh();
}

function stopPolling() {
  clearTimeout(state.timer);
  state.generation++;
}

/** Reads the current view now, renders it, and schedules the next read. */
async function refresh() {
  clearTimeout(state.timer);
  const generation = ++state.generation;
  const view = currentView();
  try {
    if (view.kind === 'overview') {
      const overview = await api('GET', '/operator/overview');
      if (generation !== state.generation) return;
      renderOverview(overview);
    } else {
      const story = await loadStory(view.id);
      if (generation !== state.generation) return;
      renderStory(view.id, story);
    }
    markUpdated(null);
  } catch (error) {
    if (generation !== state.generation) return;
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      refuseKey(error);
      return;
    }
    markUpdated(error);
  }
  if (generation === state.generation) state.timer = setTimeout(refresh, POLL_MS);
}

/** An order's story, or null when there is no such order (404). */
async function loadStory(id) {
  try {
    return await api('GET', `/operator/payment-orders/${encodeURIComponent(id)}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

/** "updated at": the last successful read; a failed one keeps the numbers and says so. */
function markUpdated(error) {
  const updated = byId('updated');
  if (error) {
    updated.classList.add('stale');
    updated.textContent = `${updated.dataset.at ? `updated ${fmtClock(new Date(updated.dataset.at))}` : 'not loaded'} · refresh failed: ${describe(error)}`;
    return;
  }
  const now = new Date();
  updated.classList.remove('stale');
  updated.dataset.at = now.toISOString();
  updated.textContent = `updated ${fmtClock(now)} · every ${POLL_MS / 1000} s`;
}

// --- Actions -------------------------------------------------------------------------------------

/** Runs an action from a button: disabled while it runs, its outcome in the notice, then a fresh read. */
async function act(button, work, success) {
  button.disabled = true;
  try {
    const result = await work();
    notify(success(result));
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      refuseKey(error);
      return;
    }
    notify(`Failed: ${describe(error)}`, 'error', error.code ?? null);
  } finally {
    button.disabled = false;
  }
  refresh();
}

function redeliverButton(eventId, subscriptionId, label) {
  const button = el('button', { type: 'button', class: 'small', dataset: { action: 'redeliver' } }, label);
  button.addEventListener('click', () =>
    act(
      button,
      () =>
        api(
          'POST',
          `/operator/events/${encodeURIComponent(eventId)}/redeliver`,
          subscriptionId ? { subscriptionId } : undefined,
        ),
      (result) =>
        `Redelivery of ${eventId} queued: ${result.data.length} ${result.data.length === 1 ? 'delivery' : 'deliveries'} pending${
          result.data.length ? ` (${result.data.map((d) => d.id).join(', ')})` : ''
        }.`,
    ),
  );
  return button;
}

function enableButton(subscription) {
  const button = el('button', { type: 'button', class: 'small', dataset: { action: 'enable' } }, 'Re-enable');
  button.addEventListener('click', () =>
    act(
      button,
      () => api('POST', `/operator/webhook-subscriptions/${encodeURIComponent(subscription.id)}/enable`),
      (result) => `Subscription ${result.id} is enabled again.`,
    ),
  );
  return button;
}

function resolveButton(order) {
  const button = el('button', { type: 'button', class: 'small', dataset: { action: 'resolve' } }, 'Resolve…');
  button.addEventListener('click', () => openResolve(order));
  return button;
}

/** `order`: id, status, and the review's reasons if known. */
function openResolve(order) {
  state.resolving = order;
  const form = byId('resolve-form');
  form.reset();
  byId('resolve-order-id').textContent = order.id;
  byId('resolve-context').textContent =
    `${order.status}${order.reasons?.length ? ` · under review: ${order.reasons.join(', ')}` : ''}${
      order.status === 'PROCESSING' ? '' : ' · a final order keeps its status: its review is closed with the note'
    }`;
  // A terminal order's review is settled at the status it has (POST /payment-orders/{id}/resolve says 409 otherwise).
  if (order.status === 'COMPLETED' || order.status === 'FAILED') {
    form.querySelector(`input[name="status"][value="${order.status}"]`).checked = true;
  }
  byId('resolve-error').hidden = true;
  byId('resolve-dialog').showModal();
  byId('resolve-note').focus();
}

async function submitResolve(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const order = state.resolving;
  const data = new FormData(form);
  const body = { status: data.get('status'), note: String(data.get('note') ?? '') };
  const reference = String(data.get('providerReference') ?? '').trim();
  if (reference) body.providerReference = reference;
  const submit = form.querySelector('button[type="submit"]');
  submit.disabled = true;
  try {
    const resolved = await api('POST', `/payment-orders/${encodeURIComponent(order.id)}/resolve`, body);
    byId('resolve-dialog').close();
    notify(`Resolved ${resolved.id}: ${resolved.status}.`);
    refresh();
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      byId('resolve-dialog').close();
      refuseKey(error);
      return;
    }
    const message = byId('resolve-error');
    message.textContent = describe(error);
    message.hidden = false;
  } finally {
    submit.disabled = false;
  }
}

// --- The overview --------------------------------------------------------------------------------

/** A figure card; `figure` names it for people reading the DOM (and the browser tests). */
function card(label, value, figure, { sub, tone } = {}) {
  return el(
    'div',
    { class: `card${tone ? ` ${tone}` : ''}` },
    el('div', { class: 'label' }, label),
    el('div', { class: 'figure', dataset: { figure } }, fmtNumber(value)),
    sub ? el('div', { class: 'sub' }, sub) : null,
  );
}

/** A table from column definitions ({ title, cell(row), num }) and rows; `rowData(row)` gives the row's data-*. */
function table(columns, rows, empty, rowData = () => ({})) {
  if (rows.length === 0) return el('p', { class: 'empty' }, empty);
  return el(
    'table',
    {},
    el(
      'thead',
      {},
      el(
        'tr',
        {},
        columns.map((c) => el('th', { class: c.num ? 'num' : null }, c.title)),
      ),
    ),
    el(
      'tbody',
      {},
      rows.map((row) =>
        el(
          'tr',
          { dataset: rowData(row) },
          columns.map((c) => el('td', { class: c.num ? 'num' : null }, c.cell(row))),
        ),
      ),
    ),
  );
}

function panel(title, total, shown, ...content) {
  const count = total > shown ? `${fmtNumber(shown)} of ${fmtNumber(total)}` : fmtNumber(total);
  return el(
    'section',
    { class: 'panel' },
    el('h2', {}, `${title} `, el('span', { class: 'count' }, `(${count})`)),
    content,
  );
}

const lastCallText = (call) =>
  call
    ? `${call.kind} ${call.outcome ?? 'no outcome yet'}${call.httpStatus ? ` · HTTP ${call.httpStatus}` : ''}${call.error ? ` · ${call.error}` : ''}`
    : 'no call yet';

const orderColumns = [
  { title: 'Order', cell: (o) => orderLink(o.id) },
  { title: 'Merchant', cell: (o) => o.merchant.name },
  { title: 'Status', cell: (o) => statusBadge(o.status) },
  { title: 'Provider', cell: (o) => o.provider },
  { title: 'Amount', cell: (o) => fmtAmount(o.amount, o.currency), num: true },
  { title: 'Age', cell: (o) => fmtAge(o.ageSeconds), num: true },
];

function renderOverview(o) {
  const orders = o.orders;
  const hooks = o.outbox.webhooks;
  const calls = o.providerCalls;
  const recent = `last ${o.orders.recent.minutes} min`;
  const cards = el(
    'div',
    { class: 'cards' },
    card('Orders stored', orders.estimatedTotal, 'orders.estimatedTotal', { sub: 'estimate (planner statistics)' }),
    card('Pending', orders.pending, 'orders.pending'),
    card('Processing', orders.processing, 'orders.processing'),
    card('Reconciling', orders.reconciling, 'orders.reconciling', { tone: orders.reconciling ? 'warn' : null }),
    card('Under review', orders.underReview, 'orders.underReview', { tone: orders.underReview ? 'bad' : null }),
    card(`Stuck (over ${o.stuck.minutes} min)`, orders.stuck, 'orders.stuck', { tone: orders.stuck ? 'bad' : null }),
    card(`Completed (${recent})`, orders.recent.byStatus.COMPLETED, 'orders.recent.COMPLETED'),
    card(`Failed (${recent})`, orders.recent.byStatus.FAILED, 'orders.recent.FAILED', {
      tone: orders.recent.byStatus.FAILED ? 'warn' : null,
    }),
    card('Events not relayed', hooks.unrelayed, 'outbox.webhooks.unrelayed', {
      sub: `oldest ${fmtAge(hooks.oldestUnrelayedSeconds)}`,
      tone: hooks.unrelayed ? 'warn' : null,
    }),
    card('Deliveries pending', hooks.deliveriesPending, 'outbox.webhooks.deliveriesPending', {
      sub: `${fmtNumber(hooks.deliveriesDue)} due · oldest ${fmtAge(hooks.oldestPendingSeconds)}`,
    }),
    o.outbox.kafka
      ? card('Kafka unpublished', o.outbox.kafka.unpublished, 'outbox.kafka.unpublished', {
          sub: `oldest ${fmtAge(o.outbox.kafka.oldestUnpublishedSeconds)} · ${fmtNumber(o.outbox.kafka.deadLettered)} set aside`,
          tone: o.outbox.kafka.unpublished ? 'warn' : null,
        })
      : null,
    card(
      `Provider calls (${Math.round((Date.parse(calls.to) - Date.parse(calls.from)) / 60_000)} min)`,
      calls.total.calls,
      'providerCalls.calls',
      {
        sub: `${fmtNumber(calls.total.rateLimited)} × 429 · ${fmtNumber(calls.total.errors)} errors · peak ${fmtNumber(calls.total.peakInAnySecond)} in 1 s`,
        tone: calls.total.rateLimited ? 'bad' : null,
      },
    ),
  );

  const stuck = panel(
    `Stuck: not final after ${o.stuck.minutes} min`,
    o.stuck.total,
    o.stuck.data.length,
    table(
      [...orderColumns, { title: 'Last provider call', cell: (x) => lastCallText(x.lastCall) }],
      o.stuck.data,
      'Nothing stuck.',
      (x) => ({ orderId: x.id }),
    ),
  );
  const review = panel(
    'Under review',
    o.underReview.total,
    o.underReview.data.length,
    table(
      [
        ...orderColumns.slice(0, 5),
        { title: 'Why', cell: (x) => `${x.reasons.join(', ')}: ${x.detail}` },
        { title: 'Waiting', cell: (x) => fmtAge(x.waitingSeconds), num: true },
        { title: '', cell: (x) => resolveButton(x) },
      ],
      o.underReview.data,
      'No order is waiting for people.',
      (x) => ({ orderId: x.id }),
    ),
  );
  const reconciling = panel(
    'Reconciling: outcome unknown, asking the provider',
    o.reconciling.total,
    o.reconciling.data.length,
    table(
      [
        ...orderColumns.slice(0, 5),
        { title: 'Since', cell: (x) => fmtTime(x.reconcilingSince) },
        { title: 'Next call', cell: (x) => fmtTime(x.nextAttemptAt) },
        { title: 'Last provider call', cell: (x) => lastCallText(x.lastCall) },
      ],
      o.reconciling.data,
      'Nothing is being reconciled.',
      (x) => ({ orderId: x.id }),
    ),
  );
  const subscriptions = panel(
    'Webhook subscriptions failing or disabled',
    o.subscriptions.total,
    o.subscriptions.data.length,
    table(
      [
        { title: 'Subscription', cell: (s) => el('span', { class: 'mono' }, s.id) },
        { title: 'Merchant', cell: (s) => s.merchant.name },
        { title: 'URL', cell: (s) => el('span', { class: 'mono' }, s.url) },
        {
          title: 'State',
          cell: (s) => (s.enabled ? 'enabled' : `disabled${s.disabledReason ? `: ${s.disabledReason}` : ''}`),
        },
        { title: 'Failing deliveries', cell: (s) => fmtNumber(s.failingDeliveries), num: true },
        {
          title: 'Last failure',
          cell: (s) =>
            s.lastFailureAt
              ? `${s.lastStatusCode ? `HTTP ${s.lastStatusCode}` : 'no answer'}${s.lastError ? ` · ${s.lastError}` : ''} · ${fmtTime(s.lastFailureAt)}`
              : '—',
        },
        { title: '', cell: (s) => (s.enabled ? null : enableButton(s)) },
      ],
      o.subscriptions.data,
      'Every subscription is delivering.',
      (s) => ({ subscriptionId: s.id }),
    ),
  );
  byId('overview-view').replaceChildren(cards, renderRates(calls), stuck, review, reconciling, subscriptions);
}

// --- The provider-call chart ---------------------------------------------------------------------

function renderRates(calls) {
  const limits = calls.limits;
  const all = {
    provider: 'all providers',
    limit: limits ? limits.callsPerSecond : null,
    ...calls.total,
    buckets: combineBuckets(calls.providers),
  };
  const charts = [all, ...calls.providers].filter((p) => p.buckets.length > 0);
  return el(
    'section',
    { class: 'panel' },
    el(
      'h2',
      {},
      'Provider calls per second ',
      el(
        'span',
        { class: 'count' },
        `(${calls.bucketSeconds} s bars, ${fmtTime(calls.from)} – now${
          limits
            ? `; gate ${limits.callsPerSecond}/s over ${limits.windowMs} ms`
            : '; gate limits not known to the console'
        })`,
      ),
    ),
    calls.providers.length === 0 ? el('p', { class: 'empty' }, 'No provider call in this span.') : null,
    el(
      'div',
      { class: 'charts' },
      charts.map((p) => rateChart(p, calls.bucketSeconds)),
    ),
  );
}

function combineBuckets(providers) {
  const first = providers[0];
  if (!first) return [];
  return first.buckets.map((b, i) =>
    providers.reduce(
      (sum, p) => ({
        start: b.start,
        calls: sum.calls + (p.buckets[i]?.calls ?? 0),
        rateLimited: sum.rateLimited + (p.buckets[i]?.rateLimited ?? 0),
        errors: sum.errors + (p.buckets[i]?.errors ?? 0),
      }),
      { start: b.start, calls: 0, rateLimited: 0, errors: 0 },
    ),
  );
}

/** Bars of calls per second (average over each bucket): blue answered, orange errors, red 429s; dashed red the limit. */
function rateChart(p, bucketSeconds) {
  const width = p.buckets.length * 10;
  const height = 100;
  const peakRate = Math.max(0, ...p.buckets.map((b) => b.calls / bucketSeconds));
  const top = Math.max(peakRate, p.limit ?? 0, 0.1) * 1.2;
  const y = (rate) => height - (rate / top) * height;
  const chart = svg('svg', {
    viewBox: `0 0 ${width} ${height}`,
    preserveAspectRatio: 'none',
    role: 'img',
    'aria-label': `${p.provider}: calls per second`,
  });
  p.buckets.forEach((b, i) => {
    const parts = [
      ['bar', b.calls - b.errors - b.rateLimited],
      ['bar errors', b.errors],
      ['bar rate-limited', b.rateLimited],
    ];
    let base = height;
    for (const [cls, count] of parts) {
      if (count <= 0) continue;
      const h = height - y(count / bucketSeconds);
      base -= h;
      chart.append(
        svg(
          'rect',
          { class: cls, x: i * 10 + 1, y: base, width: 8, height: h },
          svg(
            'title',
            {},
            `${fmtClock(new Date(b.start))}: ${b.calls} calls (${(b.calls / bucketSeconds).toFixed(2)}/s), ${b.rateLimited} × 429, ${b.errors} errors`,
          ),
        ),
      );
    }
  });
  if (p.limit) {
    chart.append(
      svg('line', {
        class: 'limit',
        x1: 0,
        x2: width,
        y1: y(p.limit),
        y2: y(p.limit),
        'vector-effect': 'non-scaling-stroke',
      }),
    );
  }
  const key = p.provider;
  const first = p.buckets[0];
  return el(
    'figure',
    { class: 'chart', dataset: { provider: key } },
    el('figcaption', {}, key),
    chart,
    el(
      'div',
      { class: 'axis' },
      el('span', {}, first ? fmtClock(new Date(first.start)) : ''),
      el('span', {}, `0 – ${top.toFixed(top < 1 ? 2 : top < 10 ? 1 : 0)} calls/s`),
      el('span', {}, 'now'),
    ),
    el(
      'div',
      { class: 'legend' },
      el('span', { dataset: { figure: `rate.${key}.calls` } }, fmtNumber(p.calls)),
      ' calls · peak ',
      el('span', { dataset: { figure: `rate.${key}.peak` } }, fmtNumber(p.peakInAnySecond)),
      ' in any 1 s',
      p.limit ? ` · limit ${p.limit}/s` : '',
      ' · 429s ',
      el('span', { dataset: { figure: `rate.${key}.rateLimited` } }, fmtNumber(p.rateLimited)),
      ' · errors ',
      el('span', { dataset: { figure: `rate.${key}.errors` } }, fmtNumber(p.errors)),
    ),
  );
}

// --- One order's story ---------------------------------------------------------------------------

function renderStory(id, story) {
  const view = byId('order-view');
  const back = el('p', {}, el('a', { href: '#/' }, '← Overview'));
  if (!story) {
    view.replaceChildren(
      back,
      el('section', { class: 'panel' }, el('h2', {}, 'No such payment order'), el('p', { class: 'mono' }, id)),
    );
    return;
  }
  const o = story.order;
  const facts = [
    ['Merchant', `${o.merchant.name} (${o.merchant.id})`],
    ['Amount', `${fmtAmount(o.amount, o.currency)} (${o.amount} minor units)`],
    ['Provider', o.provider],
    ['Provider reference', o.providerReference ?? '—'],
    ['Reference', o.reference ?? '—'],
    ['Failure', o.failure ? `${o.failure.code}: ${o.failure.message}` : '—'],
    ['Review', o.review ? `${o.review.reason} since ${fmtTime(o.review.since)}` : '—'],
    ['Reconciling since', fmtTime(o.reconcilingSince)],
    ['Next provider call', fmtTime(o.nextAttemptAt)],
    ['Created', fmtTime(o.createdAt)],
    ['Updated', fmtTime(o.updatedAt)],
  ];
  const openReasons = story.reviews.filter((r) => !r.resolvedAt).map((r) => r.reason);
  const head = el(
    'section',
    { class: 'panel', dataset: { orderId: o.id } },
    el(
      'h2',
      {},
      el('span', { class: 'mono' }, o.id),
      ' ',
      el('span', { dataset: { figure: 'order.status' }, class: `status ${o.status}` }, o.status),
      ' ',
      o.review ? resolveButton({ id: o.id, status: o.status, reasons: openReasons }) : null,
    ),
    el(
      'dl',
      { class: 'story-head' },
      facts.map(([term, value]) => el('div', {}, el('dt', {}, term), el('dd', {}, value))),
    ),
  );
  const history = panel(
    'History',
    story.history.length,
    story.history.length,
    table(
      [
        { title: 'At', cell: (t) => fmtTime(t.at) },
        { title: 'Change', cell: (t) => `${t.from ?? '—'} → ${t.to}` },
        { title: 'Why', cell: (t) => t.reason },
      ],
      story.history,
      'No transition.',
    ),
  );
  const attempts = panel(
    'Provider calls',
    story.attemptsTotal,
    story.attempts.length,
    table(
      [
        { title: '#', cell: (a) => a.number, num: true },
        { title: 'Kind', cell: (a) => a.kind },
        { title: 'Started', cell: (a) => fmtTime(a.startedAt) },
        { title: 'Outcome', cell: (a) => a.outcome ?? 'no outcome (in flight or crashed)' },
        { title: 'HTTP', cell: (a) => a.httpStatus ?? '—', num: true },
        { title: 'ms', cell: (a) => a.latencyMs ?? '—', num: true },
        { title: 'Reference', cell: (a) => el('span', { class: 'mono' }, a.providerReference ?? '—') },
        { title: 'Error', cell: (a) => a.error ?? '' },
      ],
      story.attempts,
      'No provider call yet.',
    ),
  );
  const reviews = panel(
    'Reviews',
    story.reviews.length,
    story.reviews.length,
    table(
      [
        { title: 'Opened', cell: (r) => fmtTime(r.openedAt) },
        { title: 'Why', cell: (r) => `${r.reason}: ${r.detail}` },
        {
          title: 'Settled',
          cell: (r) =>
            r.resolvedAt ? `${r.resolution} by ${r.resolvedBy} at ${fmtTime(r.resolvedAt)}: ${r.note ?? ''}` : 'open',
        },
      ],
      story.reviews,
      'Never under review.',
    ),
  );
  const callbacks = panel(
    'Provider callbacks',
    story.callbacks.length,
    story.callbacks.length,
    table(
      [
        { title: 'Received', cell: (c) => fmtTime(c.receivedAt) },
        { title: 'Charge', cell: (c) => el('span', { class: 'mono' }, c.externalId) },
        { title: 'Said', cell: (c) => `${c.outcome} (${c.resultCode})` },
        { title: 'Amount', cell: (c) => (c.amount === null ? '—' : fmtAmount(c.amount, o.currency)), num: true },
        { title: 'Receipt', cell: (c) => c.receipt ?? '—' },
        { title: 'What we made of it', cell: (c) => c.disposition },
      ],
      story.callbacks,
      'No callback.',
    ),
  );
  const events = el(
    'section',
    { class: 'panel' },
    el('h2', {}, 'Events and webhook deliveries ', el('span', { class: 'count' }, `(${story.events.length})`)),
    story.events.length === 0
      ? el('p', { class: 'empty' }, 'No event yet (the order is not final, nor under review).')
      : null,
    story.events.map(renderEvent),
  );
  view.replaceChildren(back, head, history, attempts, reviews, callbacks, events);
}

function renderEvent(e) {
  const kafka = e.kafka.publishedAt
    ? `Kafka: published ${fmtTime(e.kafka.publishedAt)}`
    : e.kafka.deadAt
      ? `Kafka: set aside ${fmtTime(e.kafka.deadAt)}: ${e.kafka.error ?? ''}`
      : 'Kafka: not published (or Kafka not configured)';
  return el(
    'div',
    { class: 'event', dataset: { eventId: e.id } },
    el(
      'h3',
      {},
      `${e.type} `,
      el('span', { class: 'mono muted' }, e.id),
      ' ',
      redeliverButton(e.id, null, 'Redeliver to every subscription'),
    ),
    el(
      'p',
      { class: 'muted' },
      `Created ${fmtTime(e.createdAt)} · ${e.relayedAt ? `relayed ${fmtTime(e.relayedAt)}` : 'not relayed yet'} · ${kafka}`,
    ),
    table(
      [
        { title: 'Delivery', cell: (d) => el('span', { class: 'mono' }, d.id) },
        {
          title: 'Subscription',
          cell: (d) =>
            el('div', {}, el('div', { class: 'mono' }, d.subscriptionId), el('div', { class: 'mono muted' }, d.url)),
        },
        {
          title: 'Status',
          cell: (d) => el('span', { class: `status ${d.status}`, dataset: { figure: 'delivery.status' } }, d.status),
        },
        {
          title: 'Attempts',
          cell: (d) =>
            el(
              'div',
              {},
              `${d.attemptCount}${d.lastStatusCode ? ` · last HTTP ${d.lastStatusCode}` : ''}${d.lastError ? ` · ${d.lastError}` : ''}`,
              d.attempts.length
                ? el(
                    'ol',
                    { class: 'attempts' },
                    d.attempts.map((a) =>
                      el(
                        'li',
                        { value: a.number },
                        `${fmtTime(a.startedAt)}: ${a.statusCode ? `HTTP ${a.statusCode}` : 'no answer'}${a.latencyMs === null ? '' : ` in ${a.latencyMs} ms`}${a.error ? ` · ${a.error}` : ''}`,
                      ),
                    ),
                  )
                : null,
            ),
        },
        {
          title: 'Next / delivered',
          cell: (d) =>
            d.deliveredAt
              ? `delivered ${fmtTime(d.deliveredAt)}`
              : d.nextAttemptAt
                ? `next ${fmtTime(d.nextAttemptAt)}`
                : '—',
        },
        { title: '', cell: (d) => redeliverButton(e.id, d.subscriptionId, 'Redeliver') },
      ],
      e.deliveries,
      e.relayedAt ? 'No subscription wanted this event.' : 'No delivery yet: the relay has not taken the event.',
      (d) => ({ deliveryId: d.id, subscriptionId: d.subscriptionId }),
    ),
  );
}

// --- Start ---------------------------------------------------------------------------------------

byId('key-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = byId('key-input');
  const key = input.value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORAGE, key);
  input.value = '';
  clearNotice();
  route();
});

byId('forget-key').addEventListener('click', () => {
  sessionStorage.removeItem(KEY_STORAGE);
  clearNotice();
  showKeyForm();
});

byId('search-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const id = byId('search-id').value.trim();
  if (!id) return;
  const target = `#/orders/${encodeURIComponent(id)}`;
  if (location.hash === target) route();
  else location.hash = target;
});

byId('resolve-form').addEventListener('submit', submitResolve);
byId('resolve-cancel').addEventListener('click', () => byId('resolve-dialog').close());
window.addEventListener('hashchange', () => {
  clearNotice();
  route();
});
// A hidden tab keeps polling (an operator's second screen); coming back shows fresh numbers at once.
document.addEventListener('visibilitychange', () => {
  if (!document.hidden && readKey()) refresh();
});

route();
