// A path whose percent-encoding does not decode is the client's fault: 400 malformed_path as
// problem+json, on every route with a parameter, never a 500 — and the raw segment (which may
// be a callback token) is neither echoed nor logged.
import t from 'tap';
import { startTestService } from './helpers/service.ts';

const service = await startTestService(t);
const { api } = await service.merchant();
const anonymous = service.api();

const callback = { Body: { stkCallback: { MerchantRequestID: 'm', CheckoutRequestID: 'c', ResultCode: 0 } } };
const cases = [
  ['GET /payment-orders/%', () => api.get('/payment-orders/%')],
  ['GET /payment-orders/%E0%A4%A (a truncated UTF-8 sequence)', () => api.get('/payment-orders/%E0%A4%A')],
  ['GET /payment-orders/%C0%AF (an overlong encoding)', () => api.get('/payment-orders/%C0%AF')],
  ['POST /callbacks/mpesa/%zz', () => anonymous.request('POST', '/callbacks/mpesa/%zz', { body: callback })],
  [
    'POST /callbacks/mpesa/<token>%zz',
    () => anonymous.request('POST', '/callbacks/mpesa/Secret-Token-Part_123%zz', { body: callback }),
  ],
  ['DELETE /webhook-subscriptions/%', () => api.request('DELETE', '/webhook-subscriptions/%')],
  ['GET /webhook-subscriptions/%/deliveries', () => api.get('/webhook-subscriptions/%/deliveries')],
  ['GET /events/%ff', () => api.get('/events/%ff')],
] as const;

for (const [name, call] of cases) {
  t.test(name, async (t) => {
    const res = await call();
    t.equal(res.status, 400);
    t.match(res.headers.get('content-type'), /^application\/problem\+json/);
    t.match(res.body, { status: 400, code: 'malformed_path', type: '/problems/malformed_path' });
    t.notMatch(res.text, /%|Secret-Token/, 'the raw segment is not echoed');
  });
}

t.test('nothing of it in the logs, and nothing logged as a failure', async (t) => {
  const logs = service.logs.join('');
  t.notMatch(logs, 'Secret-Token', 'the segment is not logged');
  t.notMatch(logs, '"level":50', 'no error lines');
});
