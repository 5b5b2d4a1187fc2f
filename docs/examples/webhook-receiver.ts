// A webhook receiver for the payment order gateway: the example of /docs/receiving-events.
// Run it with WEBHOOK_SECRET=whsec_... node docs/examples/webhook-receiver.ts (Node 24), or copy it.
// test/receiving-events.test.ts runs it against a real gateway.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';

export type GatewayEvent = { id: string; type: string; createdAt: string; data: { id: string; status: string } };

/**
 * Where received events are kept until they are handled. In production this is your database: a
 * table with a unique key on the event id, so that saving the same event twice saves it once.
 */
export type EventStore = { saveOnce(event: GatewayEvent): Promise<boolean> };

export function memoryStore(): EventStore & { events: GatewayEvent[] } {
  const events: GatewayEvent[] = [];
  return {
    events,
    async saveOnce(event) {
      if (events.some((e) => e.id === event.id)) return false;
      events.push(event);
      return true;
    },
  };
}

export function createReceiver(secret: string, store: EventStore): Server {
  // The library takes the secret as the gateway shows it (whsec_...).
  const webhook = new Webhook(secret);
  return createServer(async (req, res) => {
    if (req.method !== 'POST') return void res.writeHead(405).end();
    // 1. Verify the signature on the raw bytes: parsed and re-serialised JSON would not match.
    //    verify() also refuses a webhook-timestamp more than 5 minutes away (replays).
    const raw = await readBody(req);
    let event: GatewayEvent;
    try {
      event = webhook.verify(raw, req.headers as Record<string, string>) as GatewayEvent;
    } catch (error) {
      if (error instanceof WebhookVerificationError) return void res.writeHead(400).end();
      throw error;
    }
    // 2. Save it once, keyed on its id (the webhook-id header): retries and redeliveries carry the
    //    same id, and delivery is at least once, so the same event can arrive again.
    await store.saveOnce(event);
    // 3. Answer 2xx now; handle the event later, from the store. A slow answer is a timeout, and a
    //    timeout is retried. (Answer 410 Gone instead to unsubscribe this endpoint.)
    res.writeHead(204).end();
  });
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

if (import.meta.main) {
  const secret = process.env.WEBHOOK_SECRET;
  if (!secret) throw new Error('set WEBHOOK_SECRET to the subscription secret (whsec_...)');
  const store = memoryStore();
  createReceiver(secret, store).listen(Number(process.env.PORT ?? 4000), '127.0.0.1');
}
