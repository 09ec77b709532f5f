//! `pay-invoice`: pays an invoice through a payments API.
//!
//! Input `{"invoice": "INV-7", "amount_cents": 1200}` (optionally with
//! `"base_url": "http://127.0.0.1:18080"`, default
//! `https://payments.example`); the tool sends `POST {base_url}/v1/payments`
//! with `{"invoice", "amount_cents"}` and returns the provider's
//! `{"payment_id", "status"}`.
//!
//! The tool does nothing special for safety, and that is the point: its
//! profile makes the host hold the POST until a human approves it, and
//! requires an idempotency key, from which the host derives the
//! `Idempotency-Key` header the payments API deduplicates on. A retried
//! run with the same key and input replays the first result instead of
//! paying twice.

use airlock_sdk::http::Request;
use airlock_sdk::{Tool, export_tool};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Where the payments API lives unless the input says otherwise.
const DEFAULT_BASE_URL: &str = "https://payments.example";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    invoice: String,
    amount_cents: u64,
    #[serde(default)]
    base_url: Option<String>,
}

#[derive(Deserialize, Serialize)]
struct Payment {
    payment_id: String,
    status: String,
}

struct PayInvoice;

impl Tool for PayInvoice {
    const NAME: &'static str = "pay-invoice";
    const DESCRIPTION: &'static str =
        "Pays an invoice (amount in cents) and returns the payment id.";
    type Input = Input;
    type Output = Payment;

    fn input_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "invoice": { "type": "string", "minLength": 1 },
                "amount_cents": { "type": "integer", "minimum": 1 },
                "base_url": { "type": "string", "description": format!("Payments API base URL (default {DEFAULT_BASE_URL}).") },
            },
            "required": ["invoice", "amount_cents"],
            "additionalProperties": false,
        })
    }

    fn run(input: Input) -> Result<Payment, String> {
        let base = input.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let url = format!("{}/v1/payments", base.trim_end_matches('/'));
        let body = json!({ "invoice": input.invoice, "amount_cents": input.amount_cents });
        let response = Request::post(url, body.to_string())
            .header("content-type", "application/json")
            .send()
            .map_err(|e| format!("payment of {} not sent: {e}", input.invoice))?;
        if !response.is_success() {
            return Err(format!(
                "the payments API returned HTTP {}",
                response.status
            ));
        }
        response
            .json()
            .map_err(|e| format!("the payments API's answer is not a payment: {e}"))
    }
}

export_tool!(PayInvoice);
