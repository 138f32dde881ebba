//! `haven serve`: runs the FHIR R4 server (REST API and Bulk Data `$export`) over an embedded
//! SQLite file or a PostgreSQL database.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};

/// The long help of `haven serve`.
const LONG_ABOUT: &str = "\
Run a FHIR R4 server: the REST API under /fhir (CRUD, history, search, batch and transaction
Bundles) and Bulk Data $export (system, Patient and Group) into a folder or object storage.

With no --db, the data lives in a SQLite file in the data directory ($HAVEN_HOME, or
~/.local/share/haven), created on first start. Exports go to a folder in the same directory
unless --export-to says otherwise. Logs (RUST_LOG, default info) name requests by method and
path, never by their query or content.

The web dashboard is at / on the same address: export jobs (kick off, follow, download, cancel),
the pipeline runs and latest validation report of each --lake, and a de-identification preview.
Under --auth smart it needs an operator signed in (`haven operators add NAME`); under --auth none
it is open.";

/// Run the FHIR server.
#[derive(Debug, clap::Args)]
#[command(long_about = LONG_ABOUT)]
pub struct Args {
    /// The store: a SQLite file path, or a postgres://… URL (default: haven.db in the data
    /// directory).
    #[arg(long, value_name = "PATH|URL")]
    pub db: Option<String>,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// The public base URL of the FHIR API as clients reach it (default:
    /// http://ADDR:PORT/fhir).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Where exports go: a folder, or az://container/prefix, s3://bucket/prefix,
    /// gs://bucket/prefix (default: the exports folder in the data directory).
    #[arg(long, value_name = "DEST")]
    pub export_to: Option<String>,
    /// Authorization: `smart` (SMART Backend Services: bearer tokens for the clients
    /// registered with `haven clients add`) or `none` (an open server, loopback addresses
    /// only). Default: `smart`, or `none` on a loopback address.
    #[arg(long, value_parser = ["smart", "none"])]
    pub auth: Option<String>,
    /// The registered clients (default: clients.json in the data directory).
    #[arg(long, value_name = "FILE")]
    pub clients: Option<PathBuf>,
    /// The largest request body accepted, in MiB.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub max_body_mib: usize,
    /// A lake whose pipeline runs and validation report the dashboard shows (a folder,
    /// az://, s3:// or gs://); repeatable.
    #[arg(long = "lake", value_name = "DEST")]
    pub lakes: Vec<String>,
    /// The dashboard's operators (default: operators.toml in the data directory).
    #[arg(long, value_name = "FILE")]
    pub operators: Option<PathBuf>,
}

/// Haven's data directory: `$HAVEN_HOME`, or `~/.local/share/haven`.
pub fn data_dir() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("HAVEN_HOME") {
        return Ok(PathBuf::from(home));
    }
    let home = std::env::var_os("HOME")
        .context("neither HAVEN_HOME nor HOME is set: give --db and --export-to")?;
    Ok(PathBuf::from(home).join(".local/share/haven"))
}

/// The store location: `--db`, or `haven.db` in the data directory.
pub fn db_location(db: Option<&str>) -> Result<String> {
    match db {
        Some(db) => Ok(db.to_owned()),
        None => Ok(data_dir()?.join("haven.db").display().to_string()),
    }
}

/// A store location for messages: a PostgreSQL URL without its user information.
pub fn shown(location: &str) -> String {
    match location.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host)) => format!("{scheme}://…@{host}"),
            None => location.to_owned(),
        },
        None => location.to_owned(),
    }
}

/// Opens the store and serves until Ctrl-C or SIGTERM.
pub fn run(args: &Args) -> Result<ExitCode> {
    init_logging();
    let location = db_location(args.db.as_deref())?;
    let export_to = match &args.export_to {
        Some(dest) => dest.clone(),
        None => data_dir()?.join("exports").display().to_string(),
    };
    let store = store::open(&location)
        .with_context(|| format!("cannot open the store {}", shown(&location)))?;
    let config = server::ServerConfig {
        listen: args.listen,
        base_url: args.base_url.clone(),
        export_to,
        max_body_bytes: args.max_body_mib.saturating_mul(1 << 20),
        auth: server::auth::AuthConfig {
            mode: match args.auth.as_deref() {
                Some("smart") => server::auth::AuthMode::Smart,
                Some(_) => server::auth::AuthMode::None,
                None => server::auth::AuthMode::default_for(&args.listen),
            },
            clients_file: Some(super::clients::registry_path(args.clients.as_ref())?),
            ..server::auth::AuthConfig::default()
        },
        ..server::ServerConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // The last handle on the store is dropped after the runtime: the PostgreSQL client blocks
    // on a runtime of its own when it closes, which is not allowed inside an async context.
    let store: Arc<dyn store::Store> = Arc::from(store);
    let dashboard_settings = dashboard::DashboardSettings {
        lakes: args.lakes.clone(),
        operators_file: Some(super::operators::operators_path(args.operators.as_ref())?),
        ..dashboard::DashboardSettings::default()
    };
    let served = runtime.block_on(async {
        let mut server = server::Server::bind(config, Arc::clone(&store))
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        // The address first: scripts and tests read it from the first line.
        eprintln!(
            "haven serve: FHIR API at {} (store {}), dashboard at http://{}/",
            server.state().base_url,
            shown(&location),
            server.local_addr()
        );
        let routes = dashboard::router(server.state().clone(), dashboard_settings)
            .context("cannot start the dashboard")?;
        server.mount(routes);
        server
            .run_until(server::shutdown_signal())
            .await
            .context("the server stopped")
    });
    drop(runtime);
    drop(store);
    served?;
    Ok(ExitCode::SUCCESS)
}

/// Logs to standard error, filtered by `RUST_LOG` (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
