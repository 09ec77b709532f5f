//! The dashboard: server-rendered pages at `/` for the people who answer
//! for agents — runs with filters, a run's evidence timeline with its
//! verification badge and incident review, the approvals inbox with
//! approve/deny, and governance charts (SVG). Plain HTML forms and links,
//! no scripts and no external assets, so it works with JavaScript off.
//!
//! Signing in starts a server-side session ([`super::sessions`]): the
//! `HttpOnly`, `SameSite=Strict` (and, behind TLS, `Secure`) cookie holds a
//! random session id, never the API token; every page re-checks the
//! session's token against the store (a revoked token stops working at
//! once) and applies the same role rules as the API. Every form carries the
//! session's CSRF token and every POST must present it, and every
//! state-changing request must come from the dashboard's own origin
//! ([`super::sessions::check_origin`]), so a page on another port or a
//! sibling subdomain cannot post an approval in a signed-in approver's name. Every value
//! from the store is HTML-escaped, and each page carries a Content Security
//! Policy that forbids scripts, so a hostile tool name or intent cannot run
//! code in an approver's browser.

use super::AppState;
use super::sessions::{self, Current};
use crate::escalation::requests::{ApprovalRecord, Approvals};
use crate::evidence::report::{GovernanceReport, ReportFilter};
use crate::evidence::{Event, Verification, verify_run};
use crate::store::RunFilter;
use crate::trust::access::{ApiTokens, Permission, Principal};
use crate::trust::keys::TrustedKeys;
use axum::Form;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use html_escape::{encode_double_quoted_attribute as attr, encode_text as esc};
use serde::Deserialize;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

type Shared = State<Arc<AppState>>;

/// Runs shown on the runs page.
const RUNS_PAGE: usize = 200;

/// Inline-only policy: no scripts, no remote anything, forms post here.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSS: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}\
header{background:#1d2330;color:#fff;padding:10px 24px;display:flex;gap:20px;align-items:center}\
header a{color:#cfe0ff;text-decoration:none}header .who{margin-left:auto;color:#aab}\
main{padding:16px 24px}table{border-collapse:collapse;width:100%;background:#fff}\
th,td{border-bottom:1px solid #e3e6ea;padding:5px 8px;text-align:left;vertical-align:top}\
th{background:#eef1f5}code{font-size:12px;word-break:break-all}.badge{padding:2px 8px;border-radius:10px;font-weight:600}\
.ok,.allowed,.approved,.intact{background:#d8f5de;color:#17622b}\
.denied,.failed,.broken,.aborted,.interrupted,.expired{background:#fde0e0;color:#8c1d1d}\
.limit,.approval,.pending,.escalated,.running,.observed{background:#fff1c9;color:#7a5600}\
.card{background:#fff;border:1px solid #e3e6ea;padding:12px;margin:12px 0}\
form.inline{display:inline}textarea{width:100%;min-height:3em}.err{color:#8c1d1d;font-weight:600}";

/// The dashboard's routes. Every POST passes [`same_origin_only`] first.
pub fn routes(state: Arc<AppState>) -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/", get(|| async { Redirect::to("/runs") }))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/runs", get(runs_page))
        .route("/runs/{id}", get(run_page))
        .route("/runs/{id}/review", get(review_page))
        .route("/approvals", get(approvals_page))
        .route("/approvals/{id}/decide", post(decide))
        .route("/governance", get(governance_page))
        .route("/profiles/{name}", get(profile_page))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            same_origin_only,
        ))
}

/// Refuses (403) a state-changing dashboard request that the browser says
/// comes from another origin, before its handler runs.
async fn same_origin_only(
    State(state): Shared,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let changes_state = !matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    if changes_state
        && let Err(refusal) = sessions::check_origin(request.headers(), state.sessions.secure())
    {
        tracing::warn!(path = %request.uri().path(), %refusal, "refused a cross-origin dashboard request");
        return page(
            StatusCode::FORBIDDEN,
            "Refused",
            None,
            &format!("<p class=\"err\">{}</p>", esc(&refusal)),
        );
    }
    next.run(request).await
}

/// A signed-in person (the session's token, re-checked against the store);
/// pages without one redirect to the sign-in form.
pub struct Viewer {
    principal: Principal,
    session: Current,
}

impl std::ops::Deref for Viewer {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl FromRequestParts<Arc<AppState>> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let session = state.sessions.current(&parts.headers);
        let viewer = session.and_then(|session| {
            let principal = ApiTokens::new(state.runner.store())
                .authenticate(&session.token)
                .ok()
                .flatten();
            if principal.is_none() {
                // The token was revoked: the session ends with it.
                state.sessions.end(&session.id);
            }
            principal.map(|principal| Viewer { principal, session })
        });
        viewer.ok_or_else(|| Redirect::to("/login").into_response())
    }
}

impl Viewer {
    fn require(&self, permission: Permission) -> Result<&Viewer, Box<Response>> {
        if self.principal.role.allows(permission) {
            Ok(self)
        } else {
            Err(Box::new(page(
                StatusCode::FORBIDDEN,
                "Not allowed",
                Some(self),
                &format!(
                    "<p class=\"err\">Your token ({}, role {}) may not see this page.</p>",
                    esc(&self.principal.name),
                    self.principal.role
                ),
            )))
        }
    }

    /// The hidden form field carrying the session's CSRF token; every form
    /// that changes state includes it.
    fn csrf_field(&self) -> String {
        format!(
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
            attr(&self.session.csrf)
        )
    }

    /// Whether a form's CSRF token is this session's.
    fn csrf_ok(&self, presented: &str) -> bool {
        sessions::csrf_matches(&self.session, presented)
    }
}

/// The page shown when a form's CSRF token is missing or wrong.
fn csrf_refused(viewer: &Viewer) -> Response {
    page(
        StatusCode::FORBIDDEN,
        "Refused",
        Some(viewer),
        "<p class=\"err\">dashboard: the form's CSRF token is missing or is not this session's \
         (a form from another site, or an old page); reload the page and submit again.</p>",
    )
}

fn page(status: StatusCode, title: &str, viewer: Option<&Viewer>, body: &str) -> Response {
    let nav = match viewer {
        Some(p) => format!(
            "<a href=\"/runs\">Runs</a><a href=\"/approvals\">Approvals</a><a href=\"/governance\">Governance</a>\
             <span class=\"who\">{} ({})</span><form class=\"inline\" method=\"post\" action=\"/logout\">{}<button>Sign out</button></form>",
            esc(&p.name),
            p.role,
            p.csrf_field()
        ),
        None => String::new(),
    };
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · airlock</title>\
         <style>{CSS}</style></head><body><header><strong>airlock</strong>{nav}</header><main><h1>{title}</h1>{body}</main></body></html>",
        title = esc(title)
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

fn ok_page(title: &str, viewer: &Viewer, body: &str) -> Response {
    page(StatusCode::OK, title, Some(viewer), body)
}

fn failure(viewer: &Viewer, status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Something went wrong",
        Some(viewer),
        &format!("<p class=\"err\">{}</p>", esc(message)),
    )
}

/// The run's status badge, and an `observed` badge for a run in observe
/// mode (refusals were let through: not conformant, not for production).
fn status_badges(row: &crate::store::RunRow) -> String {
    let mut badges = badge(&row.status);
    if row.result["observe"] == true {
        badges.push(' ');
        badges.push_str(&badge("observed"));
    }
    badges
}

fn badge(text: &str) -> String {
    format!("<span class=\"badge {}\">{}</span>", attr(text), esc(text))
}

// ---- sign in ----

async fn login_page() -> Response {
    page(
        StatusCode::OK,
        "Sign in",
        None,
        "<form method=\"post\" action=\"/login\" class=\"card\"><label>API token<br>\
         <input type=\"password\" name=\"token\" size=\"60\" autocomplete=\"off\" autofocus></label> \
         <button type=\"submit\">Sign in</button></form>\
         <p>Tokens come from <code>airlock tokens create --role auditor|approver|submitter|admin --name NAME</code>.</p>",
    )
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(state): Shared, Form(form): Form<LoginForm>) -> Response {
    let token = form.token.trim().to_owned();
    match ApiTokens::new(state.runner.store()).authenticate(&token) {
        Ok(Some(_)) => match state.sessions.create(token) {
            Ok(id) => with_cookie(
                Redirect::to("/runs").into_response(),
                &state.sessions.cookie(Some(&id)),
            ),
            Err(_) => page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Sign in",
                None,
                "<p class=\"err\">No session could be started (the system's random source failed).</p>",
            ),
        },
        _ => page(
            StatusCode::UNAUTHORIZED,
            "Sign in",
            None,
            "<p class=\"err\">That token is unknown or revoked.</p><p><a href=\"/login\">Try again</a></p>",
        ),
    }
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(State(state): Shared, viewer: Viewer, Form(form): Form<LogoutForm>) -> Response {
    if !viewer.csrf_ok(&form.csrf) {
        return csrf_refused(&viewer);
    }
    state.sessions.end(&viewer.session.id);
    with_cookie(
        Redirect::to("/login").into_response(),
        &state.sessions.cookie(None),
    )
}

// ---- runs ----

#[derive(Deserialize, Default)]
struct RunsQuery {
    profile: Option<String>,
    status: Option<String>,
    denied: Option<String>,
}

async fn runs_page(State(state): Shared, viewer: Viewer, Query(q): Query<RunsQuery>) -> Response {
    let me = match viewer.require(Permission::ReadOwnRuns) {
        Ok(me) => me,
        Err(denied) => return *denied,
    };
    let non_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let filter = RunFilter {
        limit: RUNS_PAGE,
        profile: non_empty(q.profile),
        status: non_empty(q.status),
        submitted_by: me.run_scope(),
        denied_only: q.denied.is_some(),
    };
    let rows = match state.runner.store().find_runs(&filter) {
        Ok(rows) => rows,
        Err(e) => return failure(me, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let mut body = String::new();
    let statuses = [
        "",
        "ok",
        "failed",
        "denied",
        "limit",
        "approval",
        "aborted",
        "interrupted",
        "running",
    ];
    let options: String = statuses
        .iter()
        .map(|s| {
            let selected = if filter.status.as_deref() == Some(*s) {
                " selected"
            } else {
                ""
            };
            format!(
                "<option value=\"{s}\"{selected}>{}</option>",
                if s.is_empty() { "any status" } else { s }
            )
        })
        .collect();
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/runs\" class=\"card\">Profile <input name=\"profile\" value=\"{}\"> \
         <select name=\"status\">{options}</select> \
         <label><input type=\"checkbox\" name=\"denied\"{}> with denials</label> <button>Filter</button></form>",
        attr(filter.profile.as_deref().unwrap_or("")),
        if filter.denied_only { " checked" } else { "" },
    );
    let _ = write!(
        body,
        "<table><tr><th>Run</th><th>Tool</th><th>Profile</th><th>Status</th><th>Started</th><th>Events</th><th>Submitted by</th></tr>"
    );
    for r in &rows {
        let _ = write!(
            body,
            "<tr><td><a href=\"/runs/{id}\"><code>{id}</code></a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.tool),
            esc(&r.profile),
            status_badges(r),
            esc(&r.started_at),
            r.event_count,
            esc(r.submitted_by.as_deref().unwrap_or("-")),
            id = attr(&r.id),
        );
    }
    body.push_str("</table>");
    if rows.is_empty() {
        body.push_str("<p>No runs match.</p>");
    }
    ok_page("Runs", me, &body)
}

/// A profile explained in plain sentences (`airlock profiles explain`),
/// for whoever reviews the runs made under it.
async fn profile_page(State(state): Shared, viewer: Viewer, Path(name): Path<String>) -> Response {
    let me = match viewer.require(Permission::ReadOwnRuns) {
        Ok(me) => me,
        Err(denied) => return *denied,
    };
    match crate::config::profile::load(&state.profiles, &name) {
        Ok(profile) => {
            let text = crate::service::profiles::explain::explain(
                &profile,
                crate::service::profiles::explain::Format::Text,
            );
            let body = format!(
                "<div class=\"card\" id=\"explain\"><pre>{}</pre></div>",
                esc(&text)
            );
            ok_page(&format!("Profile {name}"), me, &body)
        }
        // The server's paths stay on the server.
        Err(e) if e.missing => failure(me, StatusCode::NOT_FOUND, &format!("no profile {name:?}")),
        Err(e) => {
            tracing::warn!(error = %e, "the dashboard asked for an unusable profile");
            failure(
                me,
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("profile {name:?} is not valid: `airlock profiles check` names the key"),
            )
        }
    }
}

/// The run `id` if the viewer may read it.
fn visible_run(
    state: &AppState,
    me: &Viewer,
    id: &str,
) -> Result<crate::store::RunRow, Box<Response>> {
    use crate::service::access::{RunAccessError, readable_run};
    match readable_run(state.runner.store(), me, id) {
        Ok(Some(row)) => Ok(row),
        Ok(None) | Err(RunAccessError::Store(crate::evidence::StoreError::RunNotFound { .. })) => {
            Err(Box::new(failure(
                me,
                StatusCode::NOT_FOUND,
                &format!("no run matches {id}"),
            )))
        }
        Err(e) => Err(Box::new(failure(
            me,
            StatusCode::BAD_REQUEST,
            &e.to_string(),
        ))),
    }
}

async fn run_page(State(state): Shared, viewer: Viewer, Path(id): Path<String>) -> Response {
    let me = match viewer.require(Permission::ReadOwnRuns) {
        Ok(me) => me,
        Err(denied) => return *denied,
    };
    let row = match visible_run(&state, me, &id) {
        Ok(row) => row,
        Err(response) => return *response,
    };
    let events = match state.runner.store().events(&row.id) {
        Ok(events) => events,
        Err(e) => return failure(me, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let verification = TrustedKeys::load(state.runner.home().root())
        .map_err(|e| e.to_string())
        .and_then(|keys| {
            verify_run(state.runner.store(), &keys, &row.id).map_err(|e| e.to_string())
        });
    let verdict = match &verification {
        Ok(v @ Verification::Intact { .. }) => format!(
            "<span class=\"badge intact\" id=\"verification\">verified: {}</span>",
            esc(&v.to_string())
        ),
        Ok(v) => format!(
            "<span class=\"badge broken\" id=\"verification\">NOT intact: {}</span>",
            esc(&v.to_string())
        ),
        Err(e) => format!(
            "<span class=\"badge broken\" id=\"verification\">cannot verify: {}</span>",
            esc(e)
        ),
    };
    let mut body = format!(
        "<div class=\"card\"><p>{verdict}</p><table>\
         <tr><th>Tool</th><td>{} <code>{}</code></td></tr><tr><th>Profile</th><td><a href=\"/profiles/{}\">{}</a></td></tr>\
         <tr><th>Status</th><td>{} (exit {})</td></tr><tr><th>Started</th><td>{}</td></tr>\
         <tr><th>Ended</th><td>{}</td></tr><tr><th>Submitted by</th><td>{}</td></tr></table>\
         <p><a href=\"/runs/{}/review\">Incident review</a></p></div>",
        esc(&row.tool),
        esc(&row.tool_digest),
        attr(&row.profile),
        esc(&row.profile),
        status_badges(&row),
        row.exit_code.map_or("-".to_owned(), |c| c.to_string()),
        esc(&row.started_at),
        esc(row.ended_at.as_deref().unwrap_or("-")),
        esc(row.submitted_by.as_deref().unwrap_or("-")),
        attr(&row.id),
    );
    body.push_str(
        "<h2>Evidence timeline</h2><table id=\"timeline\"><tr><th>#</th><th>Time</th><th>Event</th><th>Decision</th><th>Target</th><th>Details</th></tr>",
    );
    for e in &events {
        body.push_str(&timeline_row(e));
    }
    body.push_str("</table>");
    ok_page(&format!("Run {}", row.id), me, &body)
}

/// Longest details cell on the timeline; the export has everything.
const MAX_DETAILS: usize = 400;

fn timeline_row(e: &Event) -> String {
    let mut details = serde_json::Value::Object(e.fields.clone()).to_string();
    if details.len() > MAX_DETAILS {
        let cut = (0..=MAX_DETAILS)
            .rev()
            .find(|i| details.is_char_boundary(*i))
            .unwrap_or(0);
        details.truncate(cut);
        details.push('…');
    }
    format!(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
        e.seq,
        esc(e.ts.get(11..23).unwrap_or(&e.ts)),
        esc(&e.kind),
        e.decision.as_deref().map(badge).unwrap_or_default(),
        esc(e.target.as_deref().unwrap_or("")),
        esc(&details),
    )
}

async fn review_page(State(state): Shared, viewer: Viewer, Path(id): Path<String>) -> Response {
    let me = match viewer.require(Permission::ReadOwnRuns) {
        Ok(me) => me,
        Err(denied) => return *denied,
    };
    let row = match visible_run(&state, me, &id) {
        Ok(row) => row,
        Err(response) => return *response,
    };
    let review = TrustedKeys::load(state.runner.home().root())
        .map_err(|e| e.to_string())
        .and_then(|keys| {
            crate::evidence::review::load(state.runner.store(), &keys, &row.id)
                .map_err(|e| e.to_string())
        });
    match review {
        Ok(review) => {
            let mut response = Html(crate::evidence::review::html(&review)).into_response();
            response.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            );
            response
        }
        Err(e) => failure(me, StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

// ---- approvals ----

#[derive(Deserialize, Default)]
struct ApprovalsQuery {
    done: Option<String>,
}

async fn approvals_page(
    State(state): Shared,
    viewer: Viewer,
    Query(q): Query<ApprovalsQuery>,
) -> Response {
    let me = match viewer.require(Permission::ReadApprovals) {
        Ok(me) => me,
        Err(denied) => return *denied,
    };
    inbox(&state, me, q.done.as_deref(), None)
}

fn inbox(state: &AppState, me: &Viewer, done: Option<&str>, error: Option<&str>) -> Response {
    let records = match Approvals::new(state.runner.store()).list(false) {
        Ok(records) => records,
        Err(e) => return failure(me, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let (open, closed): (Vec<&ApprovalRecord>, Vec<&ApprovalRecord>) = records
        .iter()
        .filter(|r| crate::service::access::sees_approval(me, r))
        .partition(|r| r.status.is_open());
    let mut body = String::new();
    if let Some(id) = done {
        let _ = write!(body, "<p class=\"card\">Decided {}.</p>", esc(id));
    }
    if let Some(error) = error {
        let _ = write!(body, "<p class=\"card err\">{}</p>", esc(error));
    }
    let can_decide = me.role.allows(Permission::DecideApprovals);
    let _ = write!(body, "<h2>Waiting ({})</h2>", open.len());
    for r in &open {
        let _ = write!(
            body,
            "<div class=\"card approval\" id=\"approval-{id}\"><p>{} <strong>{}</strong></p><table>\
             <tr><th>Run</th><td><a href=\"/runs/{run}\"><code>{run}</code></a> · tool {} · profile {} (risk {}, owner {})</td></tr>\
             <tr><th>Intent</th><td>{}</td></tr><tr><th>Actor</th><td>{}</td></tr><tr><th>Detail</th><td><code>{}</code></td></tr>\
             <tr><th>Approvers</th><td>{} · escalates to {} at {} · expires {}</td></tr><tr><th>Runbook</th><td>{}</td></tr></table>",
            badge(r.status.as_str()),
            esc(&r.action),
            esc(&r.tool),
            esc(&r.profile),
            esc(&r.risk),
            esc(&r.owner),
            esc(r.intent.as_deref().unwrap_or("-")),
            esc(r.actor.as_deref().unwrap_or("-")),
            esc(r.detail.as_deref().unwrap_or("-")),
            esc(&r.approvers.join(", ")),
            esc(&r.escalate_to),
            esc(&r.deadline),
            esc(&r.expires_at),
            esc(r.runbook.as_deref().unwrap_or("-")),
            id = attr(&r.id),
            run = attr(&r.run_id),
        );
        if let Some(request) = &r.request {
            // The exact request the decision covers, not a description.
            let _ = write!(
                body,
                "<table class=\"request\"><tr><th>Request</th><td><code>{} {}</code></td></tr>\
                 <tr><th>Body</th><td>{} bytes · SHA-256 <code>{}</code></td></tr>\
                 <tr><th>Request SHA-256</th><td><code>{}</code> (what an approval covers)</td></tr></table>\
                 <pre class=\"body\">{}</pre>",
                esc(&request.method),
                esc(&request.url),
                request.body_bytes,
                esc(&request.body_sha256),
                esc(&request.request_sha256),
                esc(&request.body_shown),
            );
        }
        if can_decide {
            let reviewed = r
                .request
                .as_ref()
                .map(|q| {
                    format!(
                        "<input type=\"hidden\" name=\"request_sha256\" value=\"{}\">",
                        attr(&q.request_sha256)
                    )
                })
                .unwrap_or_default();
            let _ = write!(
                body,
                "<form method=\"post\" action=\"/approvals/{id}/decide\">{reviewed}{csrf}<label>Reason (recorded with the decision)<br>\
                 <textarea name=\"reason\" required></textarea></label>\
                 <button name=\"verdict\" value=\"approve\">Approve</button> <button name=\"verdict\" value=\"deny\">Deny</button></form>",
                id = attr(&r.id),
                csrf = me.csrf_field()
            );
        }
        body.push_str("</div>");
    }
    let _ = write!(
        body,
        "<h2>Decided</h2><table><tr><th>Request</th><th>Status</th><th>Action</th><th>By</th><th>Reason</th><th>When</th></tr>"
    );
    for r in &closed {
        let _ = write!(
            body,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.id),
            badge(r.status.as_str()),
            esc(&r.action),
            esc(r.decided_by.as_deref().unwrap_or("-")),
            esc(r.reason.as_deref().unwrap_or("-")),
            esc(r.decided_at.as_deref().unwrap_or("-")),
        );
    }
    body.push_str("</table>");
    let status = if error.is_some() {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::OK
    };
    page(status, "Approvals", Some(me), &body)
}

#[derive(Deserialize)]
struct DecideForm {
    verdict: String,
    reason: String,
    #[serde(default)]
    csrf: String,
    /// The request digest the page showed: the decision is refused if the
    /// request is no longer that one.
    #[serde(default)]
    request_sha256: Option<String>,
}

async fn decide(
    State(state): Shared,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<DecideForm>,
) -> Response {
    let me = match viewer.require(Permission::DecideApprovals) {
        Ok(me) => me,
        Err(denied) => return *denied,
    };
    if !me.csrf_ok(&form.csrf) {
        return csrf_refused(me);
    }
    let approve = match form.verdict.as_str() {
        "approve" => true,
        "deny" => false,
        other => {
            return inbox(
                &state,
                me,
                None,
                Some(&format!("unknown verdict {other:?}")),
            );
        }
    };
    let outcome = crate::service::access::decide_approval(
        state.runner.store(),
        state.runner.key(),
        me,
        &id,
        approve,
        &form.reason,
        form.request_sha256.as_deref(),
    )
    .map_err(|e| e.to_string());
    match outcome {
        Ok(record) => Redirect::to(&format!("/approvals?done={}", record.id)).into_response(),
        Err(error) => inbox(&state, me, None, Some(&error)),
    }
}

// ---- governance ----

#[derive(Deserialize, Default)]
struct GovernanceQuery {
    since: Option<String>,
    profile: Option<String>,
}

async fn governance_page(
    State(state): Shared,
    viewer: Viewer,
    Query(q): Query<GovernanceQuery>,
) -> Response {
    let me = match viewer.require(Permission::ReadAllRuns) {
        Ok(me) => me,
        Err(denied) => return *denied,
    };
    let since_text = q
        .since
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "7d".to_owned());
    let Ok(since) = humantime::parse_duration(&since_text) else {
        return failure(
            me,
            StatusCode::BAD_REQUEST,
            &format!("since {since_text:?} is not a duration (use e.g. 7d or 24h)"),
        );
    };
    let filter = ReportFilter {
        since,
        profile: q.profile.filter(|p| !p.trim().is_empty()),
    };
    let report = TrustedKeys::load(state.runner.home().root())
        .map_err(|e| e.to_string())
        .and_then(|keys| {
            crate::evidence::report::compute(
                state.runner.store(),
                &keys,
                &filter,
                SystemTime::now(),
            )
            .map_err(|e| e.to_string())
        });
    let report = match report {
        Ok(report) => report,
        Err(e) => return failure(me, StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let outcomes = match Approvals::new(state.runner.store()).list(false) {
        Ok(records) => escalation_outcomes(&records, since),
        Err(e) => return failure(me, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    ok_page(
        "Governance",
        me,
        &governance_body(&report, &outcomes, &since_text),
    )
}

/// Approval requests in the window, counted by status.
fn escalation_outcomes(records: &[ApprovalRecord], since: Duration) -> Vec<(String, f64)> {
    let from = SystemTime::now()
        .checked_sub(since)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut counts: std::collections::BTreeMap<String, f64> = Default::default();
    for r in records {
        let created = humantime::parse_rfc3339(&r.created_at).unwrap_or(SystemTime::UNIX_EPOCH);
        if created >= from {
            *counts.entry(r.status.as_str().to_owned()).or_default() += 1.0;
        }
    }
    counts.into_iter().collect()
}

fn ratio_cell(r: &crate::evidence::report::Ratio) -> String {
    let rate = r
        .rate
        .map_or("n/a".to_owned(), |rate| format!("{:.1}%", rate * 100.0));
    format!(
        "<td>{rate}</td><td>{} / {}</td>",
        r.numerator, r.denominator
    )
}

fn governance_body(report: &GovernanceReport, outcomes: &[(String, f64)], since: &str) -> String {
    let mut body = format!(
        "<form method=\"get\" action=\"/governance\" class=\"card\">Window <input name=\"since\" value=\"{}\" size=\"6\"> \
         Profile <input name=\"profile\" value=\"{}\"> <button>Show</button></form>",
        attr(since),
        attr(report.window.profile.as_deref().unwrap_or("")),
    );
    let times = &report.time_to_decision;
    let _ = write!(
        body,
        "<table id=\"figures\"><tr><th>Figure</th><th>Rate</th><th>Numerator / denominator</th></tr>\
         <tr><th>Policy conformance</th>{}</tr><tr><th>Escalation quality</th>{}</tr>\
         <tr><th>Recovery predictability</th>{}</tr><tr><th>Evidence completeness</th>{}</tr>\
         <tr><th>Time to decision</th><td colspan=\"2\">{} decided{}</td></tr></table>",
        ratio_cell(&report.policy_conformance),
        ratio_cell(&report.escalation_quality.ratio),
        ratio_cell(&report.recovery_predictability),
        ratio_cell(&report.evidence_completeness.ratio),
        times.decided,
        match (times.p50_ms, times.p95_ms) {
            (Some(p50), Some(p95)) => format!(" · p50 {p50} ms · p95 {p95} ms"),
            _ => String::new(),
        },
    );
    let conformance: Vec<(String, f64)> = report
        .daily
        .iter()
        .map(|d| {
            let rate = if d.runs == 0 {
                0.0
            } else {
                d.conformant as f64 / d.runs as f64 * 100.0
            };
            (d.day.get(5..).unwrap_or(&d.day).to_owned(), rate)
        })
        .collect();
    let denials: Vec<(String, f64)> = report
        .daily
        .iter()
        .map(|d| {
            (
                d.day.get(5..).unwrap_or(&d.day).to_owned(),
                d.denials as f64,
            )
        })
        .collect();
    let _ = write!(
        body,
        "<div class=\"card\"><h2>Conformance rate per day (%)</h2>{}</div>\
         <div class=\"card\"><h2>Denials per day</h2>{}</div>\
         <div class=\"card\"><h2>Escalations by outcome</h2>{}</div>",
        bar_chart(&conformance, Some(100.0)),
        bar_chart(&denials, None),
        bar_chart(outcomes, None),
    );
    denial_table(
        &mut body,
        "Denials by check",
        "Check",
        &report.denials.by_check,
    );
    denial_table(
        &mut body,
        "Denials by rule",
        "Rule",
        &report.denials.by_rule,
    );
    body
}

/// A titled table of denial counts.
fn denial_table(
    body: &mut String,
    title: &str,
    what: &str,
    rows: &[crate::evidence::report::DenialCount],
) {
    let _ = write!(
        body,
        "<h2>{title}</h2><table><tr><th>{what}</th><th>Denials</th></tr>"
    );
    for d in rows {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(&d.name),
            d.count
        );
    }
    body.push_str("</table>");
}

/// A vertical bar chart as inline SVG: one labelled bar per value.
fn bar_chart(values: &[(String, f64)], max: Option<f64>) -> String {
    const HEIGHT: f64 = 120.0;
    const BAR: f64 = 28.0;
    const GAP: f64 = 10.0;
    if values.is_empty() {
        return "<p>No data in the window.</p>".to_owned();
    }
    let top = max
        .unwrap_or_else(|| values.iter().map(|(_, v)| *v).fold(0.0, f64::max))
        .max(1.0);
    let width = values.len() as f64 * (BAR + GAP) + GAP;
    let mut svg = format!(
        "<svg role=\"img\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{}\" viewBox=\"0 0 {width} {}\">",
        HEIGHT + 40.0,
        HEIGHT + 40.0
    );
    for (i, (label, value)) in values.iter().enumerate() {
        let x = GAP + i as f64 * (BAR + GAP);
        let h = (value / top * HEIGHT).clamp(0.0, HEIGHT);
        let y = 14.0 + HEIGHT - h;
        let shown = if value.fract() == 0.0 {
            format!("{value:.0}")
        } else {
            format!("{value:.1}")
        };
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"{y}\" width=\"{BAR}\" height=\"{h}\" fill=\"#4a78c2\"><title>{}: {shown}</title></rect>\
             <text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{shown}</text>\
             <text x=\"{}\" y=\"{}\" font-size=\"9\" text-anchor=\"middle\">{}</text>",
            esc(label),
            x + BAR / 2.0,
            y - 3.0,
            x + BAR / 2.0,
            HEIGHT + 30.0,
            esc(label),
        );
    }
    svg.push_str("</svg>");
    svg
}
