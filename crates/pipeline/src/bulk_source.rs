//! The Bulk Data source: exports a server into the run's work folder with the `bulk` client,
//! which resumes an export already under way there.

use std::path::Path;
use std::sync::{Arc, mpsc};

use bulk::{
    Event, ExportOptions, ExportRequest, Exporter, Level, SigningKey, SmartAuth, SmartCredentials,
    StaticToken,
};

use crate::config::{ExportLevel, SourceConfig};
use crate::error::{Error, Result};
use crate::run::Observer;
use crate::source::{self, Staged};

/// Exports `source.server` into `work`, asking only for changes `since` that instant.
pub fn export(
    source: &SourceConfig,
    since: Option<&str>,
    work: &Path,
    observer: &dyn Observer,
) -> Result<Staged> {
    let server = source
        .server
        .as_deref()
        .ok_or_else(|| Error::Source("no server".to_owned()))?;
    let level = match source.level {
        ExportLevel::System => Level::System,
        ExportLevel::Patient => Level::Patient,
        ExportLevel::Group => Level::Group(source.group.clone().unwrap_or_default()),
    };
    let mut request = ExportRequest::new(server, level);
    request.types = source.types.clone();
    request.type_filters = source.type_filters.clone();
    request.since = since.map(str::to_owned);
    let mut exporter = Exporter::new(ExportOptions::new(request, work));
    if let Some(auth) = &source.auth {
        let key = SigningKey::load(&auth.key_file, auth.kid.as_deref())
            .map_err(|error| Error::Source(error.to_string()))?;
        let mut credentials = SmartCredentials::new(&auth.client_id, key);
        if let Some(scope) = &auth.scope {
            credentials.scope.clone_from(scope);
        }
        credentials.token_url.clone_from(&auth.token_url);
        exporter = exporter.with_tokens(Arc::new(SmartAuth::new(server, credentials)));
    } else if let Some(variable) = &source.token_env {
        let token = std::env::var(variable)
            .map_err(|_| Error::Source(format!("the token variable {variable} is not set")))?;
        exporter = exporter.with_tokens(Arc::new(StaticToken::new(token)));
    }
    let (sender, events) = mpsc::channel();
    let exporter = exporter.with_observer(move |event| {
        let _ = sender.send(event.clone());
    });
    let outcome = std::thread::scope(|scope| {
        let export = scope.spawn(move || exporter.run());
        for event in events {
            show(&event, observer);
        }
        export.join()
    });
    let summary = match outcome {
        Ok(result) => result.map_err(|error| Error::Source(error.to_string()))?,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    let mut staged = source::scan_folder(work)?;
    staged.transaction_time = Some(summary.transaction_time);
    Ok(staged)
}

/// Passes the client's events on to the run's observer.
fn show(event: &Event, observer: &dyn Observer) {
    match event {
        Event::KickedOff { .. } => observer.note("export: kicked off"),
        Event::Resumed { files_done, .. } => observer.note(&format!(
            "export: resuming the export under way ({files_done} files already downloaded)"
        )),
        Event::Expired { .. } => {
            observer.note("export: the recorded export expired on the server; starting again")
        }
        Event::Retrying { what, reason, wait } => observer.note(&format!(
            "export: {what} failed ({reason}); retrying in {:.1} s",
            wait.as_secs_f64()
        )),
        Event::ManifestReady { resources, .. } => observer.stage("export", *resources),
        Event::FileDone { resources, .. } => observer.advance(*resources),
        Event::Waiting { .. } | Event::Bytes(_) => {}
    }
}
