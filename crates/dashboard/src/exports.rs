//! The exports page: every `$export` job (state, progress, parameters, client, transaction
//! time, files per type, folder), a kick-off form, cancel and delete, and downloads.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use server::export::admin::{self, JobFile, JobInfo};
use server::export::request::Level;
use store::JobStatus;

use crate::Dashboard;
use crate::html::{self, Viewer, esc};

fn running(job: &JobInfo) -> bool {
    matches!(job.status, JobStatus::Accepted | JobStatus::InProgress)
}

fn status_badge(status: JobStatus) -> String {
    let (text, class) = match status {
        JobStatus::Accepted => ("accepted", "running"),
        JobStatus::InProgress => ("in progress", "running"),
        JobStatus::Completed => ("completed", "ok"),
        JobStatus::Failed => ("failed", "error"),
        JobStatus::Cancelled => ("cancelled", "muted"),
    };
    html::badge(text, class)
}

/// The kick-off parameters of a job as label/value rows.
fn parameters(job: &JobInfo) -> Vec<(&'static str, String)> {
    let Some(request) = &job.request else {
        return vec![("request", "unreadable record".to_owned())];
    };
    let level = match &request.level {
        Level::System => "system ($export)".to_owned(),
        Level::Patient => "Patient/$export".to_owned(),
        Level::Group { id } => format!("Group/{id}/$export"),
    };
    let mut rows = vec![("operation", level), ("types", request.types.join(", "))];
    if let Some(since) = &request.since {
        rows.push(("_since", since.clone()));
    }
    if let Some(until) = &request.until {
        rows.push(("_until", until.clone()));
    }
    if !request.type_filters.is_empty() {
        rows.push(("_typeFilter", request.type_filters.join(" ; ")));
    }
    if !request.elements.is_empty() {
        let elements: Vec<String> = request
            .elements
            .iter()
            .map(|(t, e)| match t {
                Some(t) => format!("{t}.{e}"),
                None => e.clone(),
            })
            .collect();
        rows.push(("_elements", elements.join(", ")));
    }
    rows.push((
        "_anonymizationConfig",
        request
            .anonymization
            .clone()
            .unwrap_or_else(|| "none (identified data)".to_owned()),
    ));
    if let Some(patients) = &request.patients {
        rows.push(("patients", format!("{} listed", patients.len())));
    }
    rows
}

/// The files of one part of a job, grouped by type: type, files, resources, bytes, links.
fn file_table(id: &str, title: &str, files: &[JobFile]) -> String {
    if files.is_empty() {
        return String::new();
    }
    let mut by_type: BTreeMap<&str, Vec<&JobFile>> = BTreeMap::new();
    for file in files {
        by_type.entry(&file.resource_type).or_default().push(file);
    }
    let mut rows = String::new();
    for (resource_type, files) in &by_type {
        let count: u64 = files.iter().map(|f| f.count).sum();
        let size: u64 = files.iter().map(|f| f.bytes).sum();
        let links: Vec<String> = files
            .iter()
            .map(|f| {
                format!(
                    r#"<a class="download" href="/exports/{}/files/{}" download>{}</a>"#,
                    esc(id),
                    esc(&f.file),
                    esc(&f.file)
                )
            })
            .collect();
        let size = if size > 0 {
            html::bytes(size)
        } else {
            "—".to_owned()
        };
        let _ = write!(
            rows,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(resource_type),
            files.len(),
            html::count(count),
            size,
            links.join(" ")
        );
    }
    let total: u64 = files.iter().map(|f| f.count).sum();
    format!(
        r#"<h4>{title} ({} resources)</h4>
<table class="files"><thead><tr><th>Type</th><th>Files</th><th>Resources</th><th>Size</th><th>Download</th></tr></thead><tbody>{rows}</tbody></table>"#,
        html::count(total)
    )
}

fn job_card(job: &JobInfo, viewer: &Viewer) -> String {
    let id = esc(&job.id);
    let mut out = String::new();
    let live = if running(job) { " data-running" } else { "" };
    let _ = write!(
        out,
        r#"<section class="job" id="job-{id}" data-job="{id}" data-status="{status:?}"{live}>
<div class="job-head"><h3>Export <code>{id}</code></h3>{badge}</div>"#,
        status = job.status,
        badge = status_badge(job.status),
    );
    if running(job) {
        let _ = write!(
            out,
            r#"<div class="progress"><progress max="1000" value="{value}"></progress> <span class="progress-text">{text}</span></div>"#,
            value = (job.fraction * 1000.0).round() as u64,
            text = esc(&job.progress)
        );
    }
    let mut facts = vec![
        ("created", job.created.clone()),
        (
            "transaction time",
            job.transaction_time
                .clone()
                .unwrap_or_else(|| "not yet".to_owned()),
        ),
        (
            "client",
            job.owner
                .clone()
                .unwrap_or_else(|| "anonymous (authorization off)".to_owned()),
        ),
    ];
    facts.extend(parameters(job));
    if let Some(folder) = &job.folder {
        facts.push(("folder", folder.clone()));
    }
    if job.problems > 0 {
        facts.push((
            "left out",
            format!("{} resources (see the error file)", job.problems),
        ));
    }
    out.push_str("<dl class=\"facts\">");
    for (label, value) in facts {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", esc(label), esc(&value));
    }
    out.push_str("</dl>");
    if let Some(error) = &job.error {
        out.push_str(&html::notice("error", error));
    }
    out.push_str(&file_table(&job.id, "Files", &job.output));
    out.push_str(&file_table(&job.id, "Deletions", &job.deleted));
    out.push_str(&file_table(&job.id, "Errors", &job.errors));
    let (action, label, question) = if running(job) {
        (
            "Cancel",
            "cancel",
            "Cancel this export? Its files are removed.",
        )
    } else {
        ("Delete", "delete", "Delete this export and its files?")
    };
    let _ = write!(
        out,
        r#"<form method="post" action="/exports/{id}/delete" class="inline" data-confirm="{question}">{csrf}<button type="submit" class="danger" name="action" value="{label}">{action}</button></form>
</section>"#,
        csrf = viewer.csrf_field(),
    );
    out
}

fn kickoff_form(state: &Dashboard, viewer: &Viewer, values: &KickOff) -> String {
    let mut configs = String::from(r#"<option value="">none (identified data)</option>"#);
    let mut names: Vec<String> = deid::presets::presets()
        .into_iter()
        .map(|(name, _)| name.to_owned())
        .collect();
    names.extend(admin::anonymization_configs(&state.app));
    for name in names {
        let selected = if values.anonymization.as_deref() == Some(name.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            configs,
            r#"<option value="{0}"{selected}>{0}</option>"#,
            esc(&name)
        );
    }
    let level = values.level.as_deref().unwrap_or("system");
    let option = |value: &str, label: &str| {
        let selected = if level == value { " selected" } else { "" };
        format!(r#"<option value="{value}"{selected}>{label}</option>"#)
    };
    let text = |v: &Option<String>| esc(v.as_deref().unwrap_or(""));
    format!(
        r#"<details class="kickoff" open><summary>Kick off an export</summary>
<form method="post" action="/exports" id="kickoff">{csrf}
<label>Operation <select name="level">{system}{patient}{group}</select></label>
<label>Group id <input name="group" value="{group_id}" placeholder="for Group/[id]/$export"></label>
<label>Types (<code>_type</code>) <input name="types" value="{types}" placeholder="all types, or Patient,Observation"></label>
<label>Since (<code>_since</code>) <input name="since" value="{since}" placeholder="2024-01-01T00:00:00Z"></label>
<label>Type filters (<code>_typeFilter</code>) <input name="type_filter" value="{filter}" placeholder="Observation?status=final"></label>
<label>Elements (<code>_elements</code>) <input name="elements" value="{elements}" placeholder="id,name"></label>
<label>De-identification (<code>_anonymizationConfig</code>) <select name="anonymization">{configs}</select></label>
<button type="submit">Start export</button>
</form></details>"#,
        csrf = viewer.csrf_field(),
        system = option("system", "system ($export)"),
        patient = option("patient", "Patient/$export"),
        group = option("group", "Group/[id]/$export"),
        group_id = text(&values.group),
        types = text(&values.types),
        since = text(&values.since),
        filter = text(&values.type_filter),
        elements = text(&values.elements),
    )
}

async fn render(
    state: &Dashboard,
    viewer: &Viewer,
    form: &KickOff,
    error: Option<&str>,
) -> Html<String> {
    let mut body = String::new();
    if let Some(error) = error {
        body.push_str(&html::notice("error", error));
    }
    body.push_str(&kickoff_form(state, viewer, form));
    match admin::jobs(&state.app).await {
        Ok(jobs) if jobs.is_empty() => {
            body.push_str(&html::notice("info", "No export jobs yet."));
        }
        Ok(jobs) => {
            for job in &jobs {
                body.push_str(&job_card(job, viewer));
            }
        }
        Err(error) => body.push_str(&html::notice(
            "error",
            &format!(
                "Cannot list export jobs: {}",
                crate::html::fhir_message(&error)
            ),
        )),
    }
    html::page("Exports", "/exports", Some(viewer), &body)
}

/// `GET /exports`.
pub(crate) async fn page(
    State(state): State<Dashboard>,
    Extension(viewer): Extension<Viewer>,
) -> Html<String> {
    render(&state, &viewer, &KickOff::default(), None).await
}

/// The kick-off form.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct KickOff {
    level: Option<String>,
    group: Option<String>,
    types: Option<String>,
    since: Option<String>,
    type_filter: Option<String>,
    elements: Option<String>,
    anonymization: Option<String>,
}

impl KickOff {
    /// The operation and the query string the form stands for.
    fn query(&self) -> Result<(Level, String), String> {
        let level = match self.level.as_deref().unwrap_or("system") {
            "system" => Level::System,
            "patient" => Level::Patient,
            "group" => match self.group.as_deref().map(str::trim) {
                Some(id) if !id.is_empty() => Level::Group { id: id.to_owned() },
                _ => return Err("a Group export needs the Group's id".to_owned()),
            },
            _ => return Err("unknown operation".to_owned()),
        };
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        let mut add = |name: &str, value: &Option<String>| {
            if let Some(value) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                query.append_pair(name, value);
            }
        };
        add("_type", &self.types);
        add("_since", &self.since);
        add("_typeFilter", &self.type_filter);
        add("_elements", &self.elements);
        add("_anonymizationConfig", &self.anonymization);
        Ok((level, query.finish()))
    }
}

/// `POST /exports`: starts an export owned by `dashboard:OPERATOR` and shows the list.
pub(crate) async fn kick_off(
    State(state): State<Dashboard>,
    Extension(viewer): Extension<Viewer>,
    axum::Form(form): axum::Form<KickOff>,
) -> Response {
    let (level, query) = match form.query() {
        Ok(q) => q,
        Err(error) => {
            let page = render(&state, &viewer, &form, Some(&error)).await;
            return (StatusCode::BAD_REQUEST, page).into_response();
        }
    };
    let owner = Some(match &viewer.operator {
        Some(name) => format!("dashboard:{name}"),
        None => "dashboard".to_owned(),
    });
    match admin::kick_off(&state.app, level, &query, owner).await {
        Ok(id) => Redirect::to(&format!("/exports#job-{id}")).into_response(),
        Err(error) => {
            let message = format!(
                "The export was refused: {}",
                crate::html::fhir_message(&error)
            );
            let page = render(&state, &viewer, &form, Some(&message)).await;
            (error.status, page).into_response()
        }
    }
}

/// `POST /exports/{id}/delete`: cancels a running job or deletes a finished one.
pub(crate) async fn delete(State(state): State<Dashboard>, Path(id): Path<String>) -> Response {
    match admin::cancel(&state.app, &id).await {
        Ok(_) => Redirect::to("/exports").into_response(),
        Err(error) => (error.status, crate::html::fhir_message(&error)).into_response(),
    }
}

/// `GET /exports/{id}/files/{file}`: a completed job's file.
pub(crate) async fn download(
    State(state): State<Dashboard>,
    Path((id, file)): Path<(String, String)>,
) -> Response {
    match admin::download(&state.app, &id, &file).await {
        Ok(mut response) => {
            if let Ok(value) = axum::http::HeaderValue::from_str(&format!(
                "attachment; filename=\"{}\"",
                file.replace(['"', '\\'], "")
            )) {
                response
                    .headers_mut()
                    .insert(axum::http::header::CONTENT_DISPOSITION, value);
            }
            response
        }
        Err(error) => (error.status, crate::html::fhir_message(&error)).into_response(),
    }
}

/// `GET /exports/status`: each job's id, status and progress, for the page's script.
pub(crate) async fn status(State(state): State<Dashboard>) -> Response {
    match admin::jobs(&state.app).await {
        Ok(jobs) => Json(
            jobs.iter()
                .map(|job| {
                    serde_json::json!({
                        "id": job.id,
                        "status": format!("{:?}", job.status),
                        "fraction": job.fraction,
                        "progress": job.progress,
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(error) => (error.status, crate::html::fhir_message(&error)).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_becomes_a_kick_off_query() {
        let form = KickOff {
            level: Some("patient".into()),
            types: Some(" Patient,Observation ".into()),
            anonymization: Some("safe-harbor".into()),
            since: Some(String::new()),
            ..KickOff::default()
        };
        let (level, query) = form.query().unwrap();
        assert_eq!(level, Level::Patient);
        assert_eq!(
            query,
            "_type=Patient%2CObservation&_anonymizationConfig=safe-harbor"
        );
        let group = KickOff {
            level: Some("group".into()),
            ..KickOff::default()
        };
        assert!(group.query().is_err());
    }
}
