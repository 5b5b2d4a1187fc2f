import type { Subscription } from '../db/webhook-subscriptions.repository.ts';
import { TEST_EVENT_TYPE } from '../domain/event-types.ts';
import { newId } from '../lib/ids.ts';
import { createSafeDispatcher, type UrlPolicy } from './safe-http.ts';
import { isSuccess, sendSigned } from './send-signed.ts';

export type TestEventDeps = Readonly<{ urlPolicy: UrlPolicy; timeoutMs: number }>;

export type TestEventResult = Readonly<{
  eventId: string;
  type: typeof TEST_EVENT_TYPE;
  delivered: boolean;
  statusCode: number | null;
  latencyMs: number;
  error: string | null;
}>;

/**
 * Sends a `webhook.test` event to one endpoint, now, and returns what it answered: signed like
 * every webhook (Standard Webhooks headers, every live secret), through the SSRF-safe connector,
 * with the delivery timeout. It goes to this endpoint only and leaves no trace: no outbox row (so
 * not in GET /events, not on Kafka, not relayed), no delivery or attempt row, and what the
 * endpoint answers changes nothing (a 410 does not disable it, a failure does not count towards
 * the automatic disabling): it is a probe. A disabled endpoint can be tested too, before it is
 * turned back on. The id is a fresh event id, also the webhook-id, unknown to GET /events.
 *
 * Its own dispatcher, closed after the one request: a test is rare and interactive, and a fresh
 * connection makes its latency what a first delivery would see.
 */
export async function sendTestEvent(deps: TestEventDeps, subscription: Subscription): Promise<TestEventResult> {
  const id = newId('evt');
  const body = JSON.stringify({
    id,
    type: TEST_EVENT_TYPE,
    createdAt: new Date().toISOString(),
    data: { object: 'webhook_test', subscriptionId: subscription.id },
  });
  const dispatcher = createSafeDispatcher(deps.urlPolicy);
  try {
    const sent = await sendSigned(
      { dispatcher, timeoutMs: deps.timeoutMs },
      subscription.url,
      subscription.signingSecrets,
      {
        id,
        body,
      },
    );
    return {
      eventId: id,
      type: TEST_EVENT_TYPE,
      delivered: isSuccess(sent),
      statusCode: sent.statusCode,
      latencyMs: Math.round(sent.latencyMs),
      error: sent.error,
    };
  } finally {
    await dispatcher.close();
  }
}
