//! A `haven serve` (the `server` crate) for the pipeline's tests: on a free loopback port, over
//! the given store, stopped when dropped.

use std::path::Path;
use std::sync::Arc;

/// A running server.
pub struct Running {
    /// Its FHIR base URL.
    pub base_url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    runtime: tokio::runtime::Runtime,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.runtime.block_on(tokio::task::yield_now());
    }
}

/// Starts a server over `store` that writes its exports under `exports`, with `auth`.
pub fn start(
    store: Arc<dyn store::Store>,
    exports: &Path,
    auth: server::auth::AuthConfig,
) -> Running {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = server::ServerConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        export_to: exports.display().to_string(),
        auth,
        ..server::ServerConfig::default()
    };
    let bound = runtime
        .block_on(server::Server::bind(config, store))
        .unwrap();
    let base_url = format!("http://{}/fhir", bound.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    runtime.spawn(bound.run_until(async {
        let _ = stopped.await;
    }));
    Running {
        base_url,
        stop: Some(stop),
        runtime,
    }
}
