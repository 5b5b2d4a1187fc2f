// Money units per provider: our amounts are ISO 4217 minor units, each adapter sends its provider's
// own units exactly, and create refuses (400) what a provider cannot be sent exactly. The pure
// conversions first, then the API over real HTTP, then orders all the way to the sandbox's ledger.
import t from 'tap';
import { isCurrencyCode } from '../src/domain/currencies.ts';
import { providerAmountRules } from '../src/providers/amount-rules.ts';
import { toMpesaAmount } from '../src/providers/mpesa-amounts.ts';
import { toStripeAmount } from '../src/providers/stripe-amounts.ts';
import { startProcessing } from './helpers/processing.ts';

const card = { type: 'card', token: 'pm_card_visa' } as const;

// [currency, ISO minor units, what Stripe is sent (a number) or the refusal's code]
const STRIPE_CASES = [
  // MGA: 2 decimals in ISO, none at Stripe. Sent unconverted, 1500.00 ariary would charge 150000.
  ['MGA', 150_000, 1500],
  ['MGA', 100, 1],
  ['MGA', 150_050, 'amount_invalid'],
  ['MGA', 99, 'amount_invalid'],
  ['mga', 150_000, 1500],
  // ISK and UGX: none in ISO, "two-decimal ... always 00" at Stripe.
  ['ISK', 5, 500],
  ['ISK', 999_999, 99_999_900],
  ['ISK', 1_000_000, 'amount_invalid'],
  ['UGX', 5000, 500_000],
  // HUF and TWD: two decimals for charges (zero only for payouts), as in ISO.
  ['HUF', 1045, 1045],
  ['TWD', 80_045, 80_045],
  // Zero-decimal in both.
  ['JPY', 500, 500],
  ['JPY', 99_999_999, 99_999_999],
  ['JPY', 100_000_000, 'amount_invalid'],
  ['KRW', 1, 1],
  // Three decimals in both, but Stripe's last digit must be 0.
  ['KWD', 5120, 5120],
  ['KWD', 5124, 'amount_invalid'],
  ['BHD', 1000, 1000],
  ['BHD', 1005, 'amount_invalid'],
  ['TND', 10, 10],
  // Two decimals in both; the eight-digit maximum and its documented exceptions.
  ['USD', 1050, 1050],
  ['USD', 99_999_999, 99_999_999],
  ['USD', 100_000_000, 'amount_invalid'],
  ['EUR', Number.MAX_SAFE_INTEGER, 'amount_invalid'],
  ['IDR', 999_999_999_999, 999_999_999_999],
  ['IDR', 1_000_000_000_000, 'amount_invalid'],
  ['INR', 999_999_999, 999_999_999],
  ['INR', 1_000_000_000, 'amount_invalid'],
  ['COP', 9_999_999_999, 9_999_999_999],
  ['XCG', 1000, 1000],
  // ISO currencies Stripe does not list, and codes ISO withdrew.
  ['GHS', 1000, 'currency_unsupported'],
  ['VES', 1000, 'currency_unsupported'],
  ['STN', 1000, 'currency_unsupported'],
  ['IQD', 1000, 'currency_unsupported'],
  ['ZWG', 1000, 'currency_unsupported'],
  ['BGN', 1000, 'currency_unsupported'],
  ['ANG', 1000, 'currency_unsupported'],
  // Not an amount at all.
  ['USD', 0, 'amount_invalid'],
  ['USD', 10.5, 'amount_invalid'],
] as const;

t.test('Stripe: ISO minor units to Stripe amounts, exactly, or refused', async (t) => {
  for (const [currency, iso, expected] of STRIPE_CASES) {
    const result = toStripeAmount(currency, iso);
    const name = `${currency} ${iso}`;
    if (typeof expected === 'number') t.same(result, { ok: true, amount: expected }, name);
    else t.match(result, { ok: false, refusal: { code: expected, message: /\S/ } }, name);
  }
});

t.test('Stripe: the refusals say what is wrong in our units', async (t) => {
  t.match(toStripeAmount('MGA', 150_050), { refusal: { message: /whole units.*150050.*multiple of 100/ } });
  t.match(toStripeAmount('KWD', 5124), { refusal: { message: /last digit is 0.*5124.*multiple of 10/ } });
  t.match(toStripeAmount('ISK', 1_000_000), { refusal: { message: /at most 999999 minor units of ISK/ } });
  t.match(toStripeAmount('MGA', 10_000_000_000), { refusal: { message: /at most 9999999900 minor units/ } });
});

t.test('Stripe: every accepted amount converts back to the order amount (nothing rounded)', async (t) => {
  const amounts = [1, 5, 10, 99, 100, 101, 1000, 1005, 150_000, 150_050, 99_999_999, 100_000_000, 9_999_999_900];
  // Stripe's amount back to ISO minor units: × 100 for MGA, ÷ 100 for ISK and UGX, as is otherwise.
  const back: Record<string, (amount: number) => number> = {
    MGA: (amount) => amount * 100,
    ISK: (amount) => amount / 100,
    UGX: (amount) => amount / 100,
  };
  let accepted = 0;
  for (const currency of ['MGA', 'ISK', 'UGX', 'JPY', 'KWD', 'USD', 'HUF', 'IDR']) {
    for (const iso of amounts) {
      const result = toStripeAmount(currency, iso);
      if (!result.ok) continue;
      accepted++;
      t.ok(Number.isSafeInteger(result.amount), `${currency} ${iso} → ${result.amount}, an integer`);
      t.equal((back[currency] ?? ((amount) => amount))(result.amount), iso, `${currency} ${iso} converts back`);
    }
  }
  t.ok(accepted > 40, `${accepted} conversions checked`);
});

t.test('M-Pesa: whole shillings of KES only', async (t) => {
  t.same(toMpesaAmount('KES', 10_100), { ok: true, amount: 101 });
  t.same(toMpesaAmount('kes', 100), { ok: true, amount: 1 });
  t.match(toMpesaAmount('KES', 10_150), { ok: false, refusal: { code: 'amount_invalid', message: /whole shillings/ } });
  t.match(toMpesaAmount('KES', 50), { ok: false, refusal: { code: 'amount_invalid' } });
  t.match(toMpesaAmount('USD', 10_000), { ok: false, refusal: { code: 'currency_unsupported' } });
});

t.test('the create port: each provider by its own rules, unknown providers unchecked', async (t) => {
  t.equal(providerAmountRules('stripe', 'MGA', 150_000), null);
  t.match(providerAmountRules('stripe', 'MGA', 150_050), { code: 'amount_invalid' });
  t.equal(providerAmountRules('mpesa', 'KES', 10_100), null);
  t.match(providerAmountRules('mpesa', 'KES', 10_150), { code: 'amount_invalid' });
  t.match(providerAmountRules('mpesa', 'MGA', 150_000), { code: 'currency_unsupported' });
  t.equal(providerAmountRules('somebody-else', 'MGA', 150_050), null);
});

t.test('the ISO table is the current List One: XCG and VED in, ANG and BGN out', async (t) => {
  for (const code of ['XCG', 'VED', 'ZWG', 'SLE', 'EUR', 'MGA']) t.ok(isCurrencyCode(code), `${code} is current`);
  for (const code of ['ANG', 'BGN', 'HRK', 'CUC', 'ZWL', 'SLL', 'XDR', 'XAD']) t.notOk(isCurrencyCode(code), `${code}`);
});

const { service, sandbox, api, terminal } = await startProcessing(t);
t.beforeEach(() => sandbox.reset());

t.test('POST /payment-orders refuses what Stripe cannot be sent exactly, and stores nothing', async (t) => {
  const before = await service.database.count('payment_orders');
  const cases = [
    [{ amount: 150_050, currency: 'MGA' }, 'amount_invalid', 'amount'],
    [{ amount: 1005, currency: 'KWD' }, 'amount_invalid', 'amount'],
    [{ amount: 1_000_000, currency: 'ISK' }, 'amount_invalid', 'amount'],
    [{ amount: 100_000_000, currency: 'USD' }, 'amount_invalid', 'amount'],
    [{ amount: 1000, currency: 'GHS' }, 'currency_unsupported', 'currency'],
    [{ amount: 10_150, currency: 'KES', provider: 'stripe' }, null, null],
  ] as const;
  for (const [body, code, param] of cases) {
    const res = await api.createOrder({ ...body, paymentMethod: card });
    const name = `${body.currency} ${body.amount}`;
    if (code === null) {
      t.equal(res.status, 201, `${name} is fine at Stripe`);
      continue;
    }
    t.equal(res.status, 400, name);
    t.match(res.headers.get('content-type'), /^application\/problem\+json/);
    t.match(res.body, { code, param, detail: /Stripe/ }, name);
  }
  t.equal(await service.database.count('payment_orders'), before + 1, 'only the KES order by card was stored');
});

t.test('M-Pesa keeps its rule through the same port', async (t) => {
  const phone = { type: 'mpesa', phone: '254708374149' };
  const res = await api.createOrder({ amount: 10_150, currency: 'KES', paymentMethod: phone });
  t.equal(res.status, 400);
  t.match(res.body, { code: 'amount_invalid', param: 'amount', detail: /whole shillings/ });
});

t.test('the sandbox refuses Stripe amounts that a wrong conversion would send', async (t) => {
  const send = async (amount: string, currency: string) => {
    const res = await fetch(`${sandbox.url}/v1/payment_intents`, {
      method: 'POST',
      headers: { Authorization: 'Bearer sk_test_x', 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ amount, currency, payment_method: 'pm_card_visa', confirm: 'true' }).toString(),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  // ISK 5 sent as ISO's 5, not 500; KWD not ending in 0; nine digits of USD.
  t.match(await send('5', 'isk'), { status: 400, body: { error: { code: 'invalid_charge_amount', param: 'amount' } } });
  t.match(await send('5124', 'kwd'), { status: 400, body: { error: { code: 'invalid_charge_amount' } } });
  t.match(await send('100000000', 'usd'), { status: 400, body: { error: { code: 'amount_too_large' } } });
  t.match(await send('500', 'isk'), { status: 200, body: { amount: 500, status: 'succeeded' } });
  t.match(await send('999999999999', 'idr'), { status: 200 });
  // These name no order (orders of the other tests may still be settling in the same ledger).
  const direct = (await sandbox.ledger()).filter((e) => e.orderId === null);
  t.same(
    direct.map((e) => [e.currency, e.amount]),
    [
      ['isk', 500],
      ['idr', 999_999_999_999],
    ],
    'only the two valid ones were charged',
  );
});

t.test('end to end: each order reaches the sandbox ledger in Stripe units', async (t) => {
  const orders = [
    // [currency, ISO minor units, what the sandbox must have charged]
    ['MGA', 150_000, 1500],
    ['ISK', 5, 500],
    ['UGX', 5000, 500_000],
    ['JPY', 500, 500],
    ['KWD', 5120, 5120],
    ['USD', 1050, 1050],
  ] as const;
  const ids: string[] = [];
  for (const [currency, amount] of orders) {
    const res = await api.createOrder({ amount, currency, paymentMethod: card });
    t.equal(res.status, 201, `${currency} ${amount} accepted`);
    ids.push(res.body.id);
  }
  for (const [i, [currency, amount, charged]] of orders.entries()) {
    const id = ids[i]!;
    const done = await terminal(id);
    t.match(done, { status: 'COMPLETED', amount, currency }, `${currency} order completed, amount as ordered`);
    const entries = (await sandbox.chargesFor(id)).filter((e) => e.status === 'charged');
    t.equal(entries.length, 1, `${currency}: one charge`);
    t.match(entries[0], { provider: 'stripe', amount: charged, currency: currency.toLowerCase() }, `${currency}`);
  }
});
