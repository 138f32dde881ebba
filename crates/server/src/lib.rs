//! Haven's FHIR R4 server: the REST API (base path `/fhir`) over a [`store::Store`], and the
//! Bulk Data `$export` operations ([`export`]).
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use std::sync::Arc;
//! let store: Arc<dyn store::Store> = Arc::from(store::open("haven.db").expect("store"));
//! let server = server::Server::bind(server::ServerConfig::default(), store).await?;
//! println!("listening on {}", server.local_addr());
//! server.run_until(std::future::pending()).await
//! # }
//! ```
//!
//! The store is synchronous: handlers call it through [`AppState::blocking`], which runs the
//! call on Tokio's blocking pool. Every error is an `OperationOutcome` ([`FhirError`]).
//! Requests are logged with their method, path and status only: a query string can carry
//! search values, which may be PHI.

pub mod auth;
pub mod body;
pub mod bundle;
pub mod capability;
pub mod export;
pub mod load;
pub mod outcome;
pub mod respond;
pub mod rest;
pub mod search;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower_http::compression::CompressionLayer;

pub use outcome::FhirError;

/// How a server runs: where it listens, how clients reach it, where exports go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The address to listen on (`127.0.0.1:8080`; port 0 picks a free port).
    pub listen: SocketAddr,
    /// The public base URL of the FHIR API as clients see it, ending in `/fhir`
    /// (`https://hub.example.org/fhir`); `None` derives `http://{bound address}/fhir`.
    /// `Location` headers, paging links and export URLs are built from it.
    pub base_url: Option<String>,
    /// Where export jobs write their files: a folder path, or an `az://`, `s3://` or `gs://`
    /// URL; each job gets a folder named by its id.
    pub export_to: String,
    /// The largest request body accepted, in bytes; larger ones are answered 413.
    pub max_body_bytes: usize,
    /// The search page size when a request gives no `_count`.
    pub default_page_size: usize,
    /// The largest `_count` honoured; larger values are lowered to it.
    pub max_page_size: usize,
    /// Export tuning: destination options, file size, page size, anonymization configurations.
    pub export: export::ExportSettings,
    /// Authorization: SMART Backend Services or none (loopback only), registered clients.
    pub auth: auth::AuthConfig,
}

impl Default for ServerConfig {
    /// `127.0.0.1:8080`, derived base URL, exports to the folder `exports`, 64 MiB bodies,
    /// pages of 20 up to 1000.
    fn default() -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            base_url: None,
            export_to: "exports".to_owned(),
            max_body_bytes: 64 << 20,
            default_page_size: 20,
            max_page_size: 1000,
            export: export::ExportSettings::default(),
            auth: auth::AuthConfig::default(),
        }
    }
}

/// What every handler shares: the store, the configuration, the resolved base URL and the
/// export jobs' state.
#[derive(Clone)]
pub struct AppState {
    /// The resource store.
    pub store: Arc<dyn store::Store>,
    /// The server's configuration.
    pub config: Arc<ServerConfig>,
    /// The public base URL of the FHIR API, without a trailing slash
    /// (`http://127.0.0.1:8080/fhir`).
    pub base_url: Arc<str>,
    /// The export jobs' shared state (destination, running jobs, polls).
    pub exports: Arc<export::Exports>,
    /// Authorization state: registered clients, issued tokens ([`auth`]).
    pub auth: Arc<auth::Auth>,
}

impl AppState {
    /// The state of a server reachable at `base_url` (a trailing `/` is dropped).
    pub fn new(store: Arc<dyn store::Store>, config: ServerConfig, base_url: &str) -> AppState {
        let base_url = base_url.trim_end_matches('/');
        let mut config = config;
        if config.auth.mode == auth::AuthMode::Smart {
            config.export.requires_access_token = true;
        }
        AppState {
            store,
            auth: Arc::new(auth::Auth::new(&config.auth, base_url)),
            exports: Arc::new(export::Exports::new(
                config.export.clone(),
                &config.export_to,
                base_url,
            )),
            config: Arc::new(config),
            base_url: Arc::from(base_url),
        }
    }

    /// Runs a store call on the blocking pool and maps its error to an `OperationOutcome`.
    pub async fn blocking<T, F>(&self, call: F) -> Result<T, FhirError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn store::Store) -> Result<T, FhirError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || call(store.as_ref()))
            .await
            .map_err(|_| FhirError::internal("a store task stopped unexpectedly"))?
    }
}

/// The whole application: the REST API and the export operations under `/fhir`, gzip when
/// the client accepts it, the body size limit, and request logging.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// [`router`] with `extra` routes beside the FHIR API (the web dashboard): they share the
/// listener, the body limit, gzip and request logging, but not the bearer-token check, so
/// they must guard themselves. Their paths must not start with `/fhir`.
pub fn router_with(state: AppState, extra: Router) -> Router {
    let limit = state.config.max_body_bytes;
    rest::routes()
        .merge(export::routes())
        .merge(auth::routes())
        .fallback(rest::no_route)
        .layer(middleware::from_fn_with_state(state.clone(), auth::enforce))
        .method_not_allowed_fallback(rest::method_not_allowed)
        .with_state(state)
        .merge(extra)
        .layer(DefaultBodyLimit::max(limit))
        .layer(CompressionLayer::new())
        .layer(middleware::from_fn(log_request))
}

/// Logs method, path (never the query), status and duration.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::info!(
        %method,
        path,
        status = response.status().as_u16(),
        millis = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

/// A server bound to its address, not yet serving.
pub struct Server {
    listener: tokio::net::TcpListener,
    state: AppState,
    extra: Router,
}

impl Server {
    /// Binds `config.listen` and resolves the base URL (port 0 binds a free port, which the
    /// derived base URL then names).
    pub async fn bind(
        config: ServerConfig,
        store: Arc<dyn store::Store>,
    ) -> std::io::Result<Server> {
        auth::check_mode(&config.auth, &config.listen)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let address = listener.local_addr()?;
        let base_url = config
            .base_url
            .clone()
            .unwrap_or_else(|| format!("http://{address}/fhir"));
        let state = AppState::new(store, config, &base_url);
        Ok(Server {
            listener,
            state,
            extra: Router::new(),
        })
    }

    /// Adds routes served beside the FHIR API on the same listener (see [`router_with`]).
    pub fn mount(&mut self, routes: Router) {
        let extra = std::mem::take(&mut self.extra);
        self.extra = extra.merge(routes);
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The shared state the server will run with.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves requests until `shutdown` completes, then finishes the requests in flight.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        if let Err(error) = export::resume_jobs(&self.state).await {
            tracing::error!(%error, "could not resume unfinished export jobs");
        }
        self.state.auth.warn_if_open();
        let app = router_with(self.state, self.extra);
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// Binds `config.listen` and serves until Ctrl-C (or SIGTERM on Unix).
pub async fn serve(config: ServerConfig, store: Arc<dyn store::Store>) -> std::io::Result<()> {
    let server = Server::bind(config, store).await?;
    tracing::info!(
        address = %server.local_addr(),
        base_url = %server.state().base_url,
        "serving FHIR"
    );
    server.run_until(shutdown_signal()).await
}

/// Completes on Ctrl-C or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
