//! Operator sign-in: sessions in memory (a random id in an `HttpOnly`, `SameSite=Strict`
//! cookie, expiring after [`SESSION_LIFETIME`]), the guard in front of every page, CSRF checks
//! on every POST (a per-session token in each form, and a foreign `Origin` refused), and the
//! security headers of every response.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::{Body, to_bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::html::{self, Viewer, esc};
use crate::{Dashboard, Operators};

/// How long a session lasts after sign-in.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);
/// The session cookie's name.
pub const COOKIE: &str = "haven_session";
/// The largest form body read by the guard (the preview's pasted resource and configuration).
const MAX_FORM_BYTES: usize = 8 << 20;

struct Session {
    operator: String,
    csrf: String,
    expires: Instant,
}

/// The signed-in operators' sessions.
pub(crate) struct Sessions {
    /// The operators, when sign-in is required.
    operators: Option<Operators>,
    sessions: Mutex<HashMap<String, Session>>,
    /// The CSRF token of the open dashboard (no sign-in).
    open_csrf: String,
    /// Whether the cookie is marked `Secure` (an https base URL).
    secure: bool,
}

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    pub fn new(operators: Option<Operators>, secure: bool) -> Sessions {
        Sessions {
            operators,
            sessions: Mutex::new(HashMap::new()),
            open_csrf: random_token(),
            secure,
        }
    }

    /// Whether sign-in is on and nobody can sign in.
    fn nobody(&self) -> bool {
        self.operators
            .as_ref()
            .is_some_and(|ops| ops.operators.is_empty())
    }

    fn viewer(&self, headers: &HeaderMap) -> Option<Viewer> {
        if self.operators.is_none() {
            return Some(Viewer {
                operator: None,
                csrf: self.open_csrf.clone(),
            });
        }
        let id = session_cookie(headers)?;
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let session = sessions.get(id)?;
        if session.expires <= Instant::now() {
            sessions.remove(id);
            return None;
        }
        Some(Viewer {
            operator: Some(session.operator.clone()),
            csrf: session.csrf.clone(),
        })
    }

    fn open(&self, operator: &str) -> String {
        let id = random_token();
        let now = Instant::now();
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(
            id.clone(),
            Session {
                operator: operator.to_owned(),
                csrf: random_token(),
                expires: now + SESSION_LIFETIME,
            },
        );
        id
    }

    fn close(&self, headers: &HeaderMap) {
        if let Some(id) = session_cookie(headers) {
            self.sessions
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(id);
        }
    }

    fn cookie(&self, id: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
    }
}

/// The session id from the `Cookie` headers.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// Whether a request's `Origin` (or, without one, `Referer`) is this server: a form posted
/// from another site is refused even before its token is checked.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let origin = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|h| h.to_str().ok());
    match origin {
        None => true,
        Some(origin) => url::Url::parse(origin).is_ok_and(|url| {
            let authority = match url.port() {
                Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
                None => url.host_str().unwrap_or_default().to_owned(),
            };
            authority.eq_ignore_ascii_case(host)
        }),
    }
}

fn forbidden(message: &str) -> Response {
    let body = html::page("Forbidden", "", None, &html::notice("error", message));
    (StatusCode::FORBIDDEN, body).into_response()
}

/// Lets a request through with its [`Viewer`] when the operator is signed in (or sign-in is
/// off) and, for a POST, when its origin and CSRF token check out; sends others to sign in.
pub(crate) async fn guard(
    State(state): State<Dashboard>,
    request: Request,
    next: Next,
) -> Response {
    let Some(viewer) = state.sessions.viewer(request.headers()) else {
        if request.method() == Method::GET {
            let next = request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            let target = format!(
                "/login?next={}",
                url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
            );
            return Redirect::to(&target).into_response();
        }
        return forbidden("Sign in first.");
    };
    let mut request = request;
    if request.method() != Method::GET && request.method() != Method::HEAD {
        if !same_origin(request.headers()) {
            return forbidden("This form was sent from another site.");
        }
        let (parts, body) = request.into_parts();
        let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
            return (StatusCode::PAYLOAD_TOO_LARGE, "the form is too large").into_response();
        };
        let token = url::form_urlencoded::parse(&bytes)
            .find(|(name, _)| name == "csrf")
            .map(|(_, value)| value.into_owned());
        if !token.is_some_and(|t| same(&t, &viewer.csrf)) {
            return forbidden("The form's security token is missing or stale: reload the page.");
        }
        request = Request::from_parts(parts, Body::from(bytes));
    }
    request.extensions_mut().insert(viewer);
    next.run(request).await
}

/// Security headers on every dashboard response: nothing from elsewhere, no framing, no
/// caching of pages that may show patient data.
pub(crate) async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The query of the sign-in page.
#[derive(Debug, Deserialize)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

/// A safe place to go after sign-in: a local path only.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => {
            path
        }
        _ => "/",
    }
}

fn login_form(next: &str, error: Option<&str>, nobody: bool) -> Html<String> {
    let mut error = error.map(|e| html::notice("error", e)).unwrap_or_default();
    if nobody {
        error.push_str(&html::notice(
            "info",
            "No operator is registered yet: add one with `haven operators add NAME` and restart the server.",
        ));
    }
    let body = format!(
        r#"{error}<form method="post" action="/login" class="login">
<input type="hidden" name="next" value="{next}">
<label>Operator <input name="name" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form>"#,
        next = esc(next)
    );
    html::page("Sign in", "", None, &body)
}

/// `GET /login`.
pub(crate) async fn login_page(
    State(state): State<Dashboard>,
    Query(query): Query<NextQuery>,
) -> Response {
    if state.sessions.operators.is_none() {
        return Redirect::to("/").into_response();
    }
    login_form(
        local_path(query.next.as_deref()),
        None,
        state.sessions.nobody(),
    )
    .into_response()
}

/// The sign-in form.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    name: String,
    password: String,
    next: Option<String>,
}

/// `POST /login`: checks the password (on a blocking thread: PBKDF2 is slow on purpose) and
/// opens a session.
pub(crate) async fn login(
    State(state): State<Dashboard>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    if state.sessions.operators.is_none() {
        return Redirect::to("/").into_response();
    }
    if !same_origin(&headers) {
        return forbidden("This form was sent from another site.");
    }
    let next = local_path(form.next.as_deref()).to_owned();
    let sessions = std::sync::Arc::clone(&state.sessions);
    let name = form.name.clone();
    let verified = tokio::task::spawn_blocking(move || {
        sessions
            .operators
            .as_ref()
            .is_some_and(|ops| ops.verify(&name, &form.password))
    })
    .await
    .unwrap_or(false);
    if !verified {
        tracing::warn!("dashboard sign-in refused");
        let mut response = login_form(
            &next,
            Some("Wrong operator name or password."),
            state.sessions.nobody(),
        )
        .into_response();
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return response;
    }
    tracing::info!(operator = form.name, "dashboard sign-in");
    let id = state.sessions.open(&form.name);
    let cookie = state.sessions.cookie(&id, SESSION_LIFETIME.as_secs());
    let mut response = Redirect::to(&next).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /logout`.
pub(crate) async fn logout(State(state): State<Dashboard>, headers: HeaderMap) -> Response {
    state.sessions.close(&headers);
    let mut response = Redirect::to("/login").into_response();
    if let Ok(value) = HeaderValue::from_str(&state.sessions.cookie("", 0)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local_path(Some("/exports")), "/exports");
        assert_eq!(local_path(Some("//evil.example")), "/");
        assert_eq!(local_path(Some("https://evil.example")), "/");
        assert_eq!(local_path(Some("/\\evil")), "/");
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn a_foreign_origin_is_not_this_server() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&headers));
    }
}
