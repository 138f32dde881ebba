//! Haven's web dashboard, served by `haven serve` at `/` beside the FHIR API (same listener,
//! same process): server-rendered HTML with one small script and one stylesheet embedded in
//! the binary, so it works offline.
//!
//! Pages:
//! - **Exports** (`/exports`): every `$export` job with its state, progress, kick-off
//!   parameters, client, transaction time, files per type (counts, sizes, downloads) and
//!   folder; kick off, cancel and delete.
//! - **Pipeline runs** (`/pipeline`): each lake's runs from `_haven/` (resources per stage and
//!   type, throughput, warnings), the watermark, a chart of resources landed per run.
//! - **De-identification preview** (`/preview`): one resource (from the server by type and
//!   position, or pasted) before and after a preset or a pasted configuration, with each
//!   changed element highlighted and the rule that changed it named. Nothing is stored; the
//!   keys are generated per process and never shown.
//! - **Validation** (`/validation`): each lake's latest `haven validate` report.
//!
//! With SMART authorization on, every page needs a signed-in operator ([`operators`]); the
//! session cookie is `HttpOnly`, `SameSite=Strict`, random and expiring, and every form
//! carries a CSRF token (and a foreign `Origin` is refused). With authorization off (a loopback
//! address only) the pages are open.
//!
//! ```no_run
//! # async fn run(store: std::sync::Arc<dyn store::Store>) -> std::io::Result<()> {
//! let mut server = server::Server::bind(server::ServerConfig::default(), store).await?;
//! let settings = dashboard::DashboardSettings::default();
//! let routes = dashboard::router(server.state().clone(), settings).expect("dashboard");
//! server.mount(routes);
//! server.run_until(std::future::pending()).await
//! # }
//! ```

mod exports;
pub mod html;
pub mod operators;
mod pipeline_page;
mod preview;
mod session;
mod validation;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

pub use operators::Operators;

/// What the dashboard shows and who may see it.
#[derive(Debug, Clone, Default)]
pub struct DashboardSettings {
    /// The lakes whose pipeline runs and validation reports are shown (folders or `az://`,
    /// `s3://`, `gs://` URLs).
    pub lakes: Vec<String>,
    /// Object-store options for the lakes (`aws_endpoint`, …), overriding the environment.
    pub lake_options: BTreeMap<String, String>,
    /// The operators file; needed when the server runs with SMART authorization.
    pub operators_file: Option<PathBuf>,
}

/// Why the dashboard cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operators file cannot be read.
    #[error("operators: {0}")]
    Operators(#[from] operators::Error),
}

/// The dashboard's shared state.
#[derive(Clone)]
pub(crate) struct Dashboard {
    pub app: server::AppState,
    pub settings: Arc<DashboardSettings>,
    pub sessions: Arc<session::Sessions>,
    pub preview: Arc<preview::PreviewKeys>,
}

/// The dashboard's routes, to mount beside the FHIR API ([`server::Server::mount`]). Under
/// SMART authorization with no operator registered, the pages stay locked and the sign-in page
/// says how to add one.
pub fn router(app: server::AppState, settings: DashboardSettings) -> Result<Router, Error> {
    let login = app.auth.mode() == server::auth::AuthMode::Smart;
    let operators = match &settings.operators_file {
        Some(path) => Operators::load(path)?,
        None => Operators::default(),
    };
    if login && operators.operators.is_empty() {
        tracing::warn!(
            "the dashboard is locked: no operator is registered (haven operators add NAME)"
        );
    }
    let secure = app.base_url.starts_with("https://");
    let state = Dashboard {
        app,
        settings: Arc::new(settings),
        sessions: Arc::new(session::Sessions::new(login.then_some(operators), secure)),
        preview: Arc::new(preview::PreviewKeys::generate()),
    };
    let guarded = Router::new()
        .route("/", get(overview))
        .route("/exports", get(exports::page).post(exports::kick_off))
        .route("/exports/status", get(exports::status))
        .route("/exports/{id}/delete", post(exports::delete))
        .route("/exports/{id}/files/{file}", get(exports::download))
        .route("/pipeline", get(pipeline_page::page))
        .route("/preview", get(preview::page).post(preview::run))
        .route("/validation", get(validation::page))
        .route("/validation/run", post(validation::run))
        .route("/logout", post(session::logout))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            session::guard,
        ));
    Ok(Router::new()
        .route("/login", get(session::login_page).post(session::login))
        .route("/assets/dashboard.css", get(css))
        .route("/assets/dashboard.js", get(js))
        .merge(guarded)
        .layer(middleware::from_fn(session::security_headers))
        .with_state(state))
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../assets/dashboard.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../assets/dashboard.js"),
    )
        .into_response()
}

/// The overview: one card per page with its headline figures.
async fn overview(
    State(state): State<Dashboard>,
    axum::Extension(viewer): axum::Extension<html::Viewer>,
) -> Html<String> {
    let jobs = server::export::admin::jobs(&state.app)
        .await
        .unwrap_or_default();
    let running = jobs
        .iter()
        .filter(|j| {
            matches!(
                j.status,
                store::JobStatus::Accepted | store::JobStatus::InProgress
            )
        })
        .count();
    let completed = jobs
        .iter()
        .filter(|j| j.status == store::JobStatus::Completed)
        .count();
    let lakes = pipeline_page::load_lakes(&state).await;
    let mut lake_lines = String::new();
    for lake in &lakes {
        let watermark = lake
            .state
            .as_ref()
            .and_then(|s| s.watermark.clone())
            .unwrap_or_else(|| "none yet".to_owned());
        let runs = lake.state.as_ref().map_or(0, |s| s.runs.len());
        lake_lines.push_str(&format!(
            "<li><code>{}</code>: {} runs, watermark {}</li>",
            html::esc(&lake.location),
            runs,
            html::esc(&watermark)
        ));
    }
    if lakes.is_empty() {
        lake_lines.push_str("<li>No lake configured (<code>haven serve --lake DEST</code>).</li>");
    }
    let body = format!(
        r#"<div class="cards">
<a class="card" href="/exports"><h2>Exports</h2><p><strong>{running}</strong> running, <strong>{completed}</strong> completed, {total} in all</p></a>
<a class="card" href="/pipeline"><h2>Pipeline runs</h2><ul>{lake_lines}</ul></a>
<a class="card" href="/preview"><h2>De-identification preview</h2><p>See a resource before and after a preset or configuration, with the rule behind each change.</p></a>
<a class="card" href="/validation"><h2>Validation</h2><p>The latest <code>haven validate</code> report of each lake.</p></a>
</div>
<p class="muted">FHIR API: <code>{base}</code></p>"#,
        total = jobs.len(),
        base = html::esc(&state.app.base_url),
    );
    html::page("Overview", "/", Some(&viewer), &body)
}
