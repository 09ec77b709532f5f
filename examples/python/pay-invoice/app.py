"""`pay-invoice`: pays an invoice through a payments API, in Python.

Input `{"invoice": "INV-7", "amount_cents": 1200}` (optionally with
`"base_url"`, default `https://payments.example`); sends `POST
{base_url}/v1/payments` with `{"invoice", "amount_cents"}` and returns the
provider's `{"payment_id", "status"}`.

The tool does nothing special for safety, and that is the point: its
profile makes the host hold the POST until a human approves it, and
requires an idempotency key, from which the host derives the
`Idempotency-Key` header the payments API deduplicates on.
"""

from typing import Optional

from airlock_sdk import ToolError, http, tool

DEFAULT_BASE_URL = "https://payments.example"


@tool(name="pay-invoice")
def pay_invoice(invoice: str, amount_cents: int, base_url: Optional[str] = None) -> dict:
    """Pays an invoice (amount in cents) and returns the payment id."""
    if amount_cents < 1:
        raise ToolError("amount_cents must be at least 1")
    base = (base_url or DEFAULT_BASE_URL).rstrip("/")
    response = http.post(
        f"{base}/v1/payments", json={"invoice": invoice, "amount_cents": amount_cents}
    )
    if not response.ok:
        raise ToolError(f"the payments API returned HTTP {response.status}")
    payment = response.json()
    return {"payment_id": payment["payment_id"], "status": payment["status"]}
