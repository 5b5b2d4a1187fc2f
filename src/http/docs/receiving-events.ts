import { readFileSync } from 'node:fs';
import { EVENT_TYPES } from '../../domain/event-types.ts';
import { escapeHtml, page, prose } from './html.ts';

/** The example the guide shows is a real file, run by test/receiving-events.test.ts. */
const EXAMPLE = new URL('../../../docs/examples/webhook-receiver.ts', import.meta.url);

const SECTIONS: ReadonlyArray<[string, string[]]> = [
  [
    'What arrives',
    [
      'Each event is a POST with a JSON body `{ "id": "evt_...", "type": "payment_order.completed", "createdAt": "...", "data": {order} }` to every enabled subscription that wants its type. The same body goes to Kafka and is listed by `GET /events`.',
      'Three headers, per the Standard Webhooks spec: `webhook-id` (the event id, the same on every retry), `webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature` (`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{raw body}">`, space-separated; two of them for a while after you rotate the secret).',
    ],
  ],
  [
    '1. Verify the signature, on the raw body',
    [
      'Use a Standard Webhooks library (`standardwebhooks` on npm, and its ports for Python, Go, Java, Ruby, PHP, Rust, C#) with the `whsec_...` secret you got when you created the subscription. Give it the body exactly as received: parsing and re-serialising JSON changes bytes, and the signature no longer matches.',
      'The library also refuses a timestamp more than five minutes away, which stops replays. Refuse with 400 anything that does not verify.',
    ],
  ],
  [
    '2. Expect retries: dedupe on webhook-id',
    [
      'Delivery is at least once. A timeout, a 5xx, a network error, or a crash after you processed an event but before your answer reached us: each means the same event again, with the same `webhook-id`. An operator can also send an event again on purpose.',
      'Save each event under a unique key on its id (a primary key in your database) and do the work once per id. Events can arrive out of order: an order is final once its status is COMPLETED or FAILED; `GET /payment-orders/{id}` is always the truth.',
    ],
  ],
  [
    '3. Answer 2xx fast',
    [
      'Answer once the event is stored, before the slow work (send the email, ship the goods) — from a queue or a job of your own. The gateway waits at most `WEBHOOK_TIMEOUT_MS` (15 s by default); a slower answer is a failure and is retried.',
      'Any status other than 2xx is a failure. Retries follow a schedule with jitter, about three days in all (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h). `429` with `Retry-After` slows the gateway down. An endpoint that has failed every attempt for `WEBHOOK_DISABLE_AFTER_DAYS` days is turned off, and your other endpoints get `webhook_subscription.disabled`.',
    ],
  ],
  [
    '4. 410 Gone unsubscribes',
    [
      'Answer `410` to stop receiving events at that URL: the gateway disables the subscription (its `disabledReason` says why). Turn it on again with `PATCH /webhook-subscriptions/{id}` and `{"enabled": true}`; events that happened meanwhile can be sent again with `POST /events/{id}/redeliver`, or caught up from `GET /events`.',
    ],
  ],
];

export function receivingEventsPage(): string {
  const sections = SECTIONS.map(
    ([title, paragraphs]) => `<h2>${escapeHtml(title)}</h2>\n${paragraphs.map((p) => `<p>${prose(p)}</p>`).join('\n')}`,
  ).join('\n');
  return page(
    'Receiving events',
    `<h1>Receiving events</h1>
<p>${prose(`Event types: ${EVENT_TYPES.map((type) => `\`${type}\``).join(', ')}. Subscribe with \`POST /webhook-subscriptions\` \`{ "url": "https://...", "events": [...] }\`; the answer holds the signing secret, shown once.`)}</p>
${sections}
<h2>A receiver, in full</h2>
<p>${prose('Node.js (24), with the `standardwebhooks` package: verify, save once, answer 204. `docs/examples/webhook-receiver.ts` in the repository; its test runs it against the gateway.')}</p>
<pre><code>${escapeHtml(readFileSync(EXAMPLE, 'utf8'))}</code></pre>`,
  );
}
