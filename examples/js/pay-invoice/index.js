// `pay-invoice`: pays an invoice through a payments API, in JavaScript.
// Input {"invoice": "INV-7", "amount_cents": 1200} (optionally with
// "base_url", default https://payments.example); sends POST
// {base_url}/v1/payments with {"invoice", "amount_cents"} and returns the
// provider's {"payment_id", "status"}.
//
// The tool does nothing special for safety, and that is the point: its
// profile makes the host hold the POST until a human approves it, and
// requires an idempotency key, from which the host derives the
// Idempotency-Key header the payments API deduplicates on.
import { ToolError, defineTool, httpFetch } from 'airlock-sdk';

const DEFAULT_BASE_URL = 'https://payments.example';

export const { run, describe } = defineTool({
  name: 'pay-invoice',
  description: 'Pays an invoice (amount in cents) and returns the payment id.',
  inputSchema: {
    type: 'object',
    properties: {
      invoice: { type: 'string', minLength: 1 },
      amount_cents: { type: 'integer', minimum: 1 },
      base_url: { type: 'string', description: `Payments API base URL (default ${DEFAULT_BASE_URL}).` },
    },
    required: ['invoice', 'amount_cents'],
    additionalProperties: false,
  },
  async run({ invoice, amount_cents, base_url }) {
    const base = (base_url ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
    const response = await httpFetch(`${base}/v1/payments`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ invoice, amount_cents }),
    });
    if (!response.ok) throw new ToolError(`the payments API returned HTTP ${response.status}`);
    const payment = await response.json();
    return { payment_id: payment.payment_id, status: payment.status };
  },
});
