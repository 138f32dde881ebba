//! A running `haven serve` equivalent for the dashboard's tests: a SQLite store loaded with a
//! few Synthea COVID-19 patients (and one patient whose name is markup), a lake written by a
//! real pipeline run and validated, and the server with the dashboard mounted on 127.0.0.1.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;

/// The Synthea patient bundles loaded (plus the hospital and practitioner bundles).
const PATIENT_BUNDLES: usize = 3;
/// The operator of the signed-in tests and their password.
pub const OPERATOR: &str = "alice";
/// The operator's password.
pub const PASSWORD: &str = "correct horse battery staple";
/// The family name of the patient whose name is markup.
pub const SCRIPT_NAME: &str = "<script>alert('x')</script>";

/// The test data folder.
pub fn synthea() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/synthea-covid-120")
}

/// A server with the dashboard, its data and lake, stopped when dropped.
pub struct Running {
    pub address: SocketAddr,
    pub lake: PathBuf,
    pub store: Arc<dyn store::Store>,
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub runtime: Option<tokio::runtime::Runtime>,
}

impl Running {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(std::time::Duration::from_secs(5));
        }
    }
}

/// The store: Synthea bundles and the markup patient.
fn load_store(dir: &Path) -> Arc<dyn store::Store> {
    let store: Arc<dyn store::Store> =
        Arc::from(store::open(dir.join("haven.db").to_str().unwrap()).expect("store"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(synthea())
        .expect("the Synthea data set")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".json.bz2"))
        .collect();
    files.sort();
    let (info, patients): (Vec<PathBuf>, Vec<PathBuf>) = files.into_iter().partition(|p| {
        let name = p.file_name().unwrap().to_string_lossy();
        name.contains("Information")
    });
    let mut chosen = info;
    chosen.extend(patients.into_iter().take(PATIENT_BUNDLES));
    server::load::load(
        store.as_ref(),
        &chosen,
        &server::load::LoadOptions::default(),
        &mut |_| {},
    )
    .expect("the Synthea bundles load");
    store
        .update(
            json!({"resourceType": "Patient", "id": "markup", "gender": "other",
                   "name": [{"family": SCRIPT_NAME, "given": ["Mallory"]}]}),
            None,
        )
        .expect("the markup patient is stored");
    store
}

/// A lake written by one pipeline run over 4 synthetic patients, then validated.
fn build_lake(dir: &Path) -> PathBuf {
    let source = dir.join("source");
    synth::generate(&synth::SynthOptions::new(4, 7, &source), &|_| {}).expect("synth");
    let lake = dir.join("lake");
    let config = format!(
        r#"work_dir = "{work}"
[source]
folder = "{source}"
[deid]
preset = "safe-harbor"
key_file = "{keys}"
generate_keys = true
[lake]
location = "{lake}"
formats = ["ndjson"]
views = []
"#,
        work = dir.join("work").display(),
        source = source.display(),
        keys = dir.join("keys.json").display(),
        lake = lake.display(),
    );
    let config = pipeline::PipelineConfig::from_toml(&config).expect("pipeline config");
    pipeline::Pipeline::new(config)
        .expect("pipeline")
        .run(&pipeline::Silent)
        .expect("the pipeline run");
    let dest = lake::Destination::open(lake.to_str().unwrap()).unwrap();
    let report = validate::validate(&dest, &validate::Options::default()).expect("validate");
    report.save(&dest).expect("the report is saved");
    lake
}

/// Starts the server with the dashboard; `login` turns SMART authorization on (and with it
/// the operator sign-in).
pub fn start(login: bool) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let store = load_store(dir.path());
    let lake = build_lake(dir.path());
    let operators_file = dir.path().join("operators.toml");
    let mut operators = dashboard::Operators::default();
    operators.set(OPERATOR, PASSWORD, 1000).unwrap();
    operators.save(&operators_file).unwrap();
    let config = server::ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        export_to: dir.path().join("exports").display().to_string(),
        auth: server::auth::AuthConfig {
            mode: if login {
                server::auth::AuthMode::Smart
            } else {
                server::auth::AuthMode::None
            },
            ..server::auth::AuthConfig::default()
        },
        ..server::ServerConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let settings = dashboard::DashboardSettings {
        lakes: vec![lake.display().to_string()],
        operators_file: Some(operators_file),
        ..dashboard::DashboardSettings::default()
    };
    let address = runtime.block_on(async {
        let mut server = server::Server::bind(config, Arc::clone(&store))
            .await
            .unwrap();
        let routes = dashboard::router(server.state().clone(), settings).unwrap();
        server.mount(routes);
        let address = server.local_addr();
        tokio::spawn(server.run_until(async {
            let _ = rx.await;
        }));
        address
    });
    Running {
        address,
        lake,
        store,
        dir,
        shutdown: Some(tx),
        runtime: Some(runtime),
    }
}
