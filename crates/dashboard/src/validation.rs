//! The validation page: each lake's latest `haven validate` report (saved in the lake under
//! [`validate::LATEST_KEY`]), pass or fail at the top, then each check with its findings; and
//! a button that validates a lake now.

use std::fmt::Write as _;

use axum::Extension;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::Value;

use crate::Dashboard;
use crate::html::{self, Viewer, esc};
use crate::pipeline_page::open_lake;

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// One report, rendered: the verdict, the facts, then each check.
fn report_html(report: &Value) -> String {
    let passed = report["passed"].as_bool() == Some(true);
    let mut out = format!(
        r#"<div class="verdict {}">{}</div>"#,
        if passed { "ok" } else { "error" },
        if passed { "PASSED" } else { "FAILED" }
    );
    let runs: Vec<String> = report["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    let _ = write!(
        out,
        r#"<dl class="facts"><dt>lake</dt><dd>{}</dd><dt>de-identification</dt><dd>{}{}</dd><dt>runs</dt><dd>{}</dd><dt>resources scanned</dt><dd>{}</dd><dt>bytes scanned</dt><dd>{}</dd></dl>"#,
        esc(&text(&report["lake"])),
        esc(report["deid"].as_str().unwrap_or("not recorded")),
        if report["safe_harbor"].as_bool() == Some(true) {
            " (safe-harbor rules)"
        } else {
            ""
        },
        esc(&runs.join(", ")),
        html::count(report["resources"].as_u64().unwrap_or(0)),
        html::bytes(report["bytes"].as_u64().unwrap_or(0)),
    );
    for check in report["checks"].as_array().into_iter().flatten() {
        let status = check["status"].as_str().unwrap_or("unknown");
        let class = match status {
            "passed" => "ok",
            "failed" => "error",
            _ => "muted",
        };
        let _ = write!(
            out,
            r#"<section class="check {class}"><h3>{} {}</h3><p>{}</p>"#,
            esc(&text(&check["name"])),
            html::badge(status, class),
            esc(&text(&check["summary"]))
        );
        if let Some(groups) = check["groups"].as_object().filter(|g| !g.is_empty()) {
            out.push_str("<table class=\"findings\"><thead><tr><th>Group</th><th>Count</th><th>File</th><th>Line</th><th>Element</th><th>Kind</th><th>Detail</th></tr></thead><tbody>");
            for (name, group) in groups {
                let examples = group["examples"].as_array().cloned().unwrap_or_default();
                let count = group["count"].as_u64().unwrap_or(0);
                if examples.is_empty() {
                    let _ = write!(
                        out,
                        "<tr><td>{}</td><td class=\"num\">{}</td><td colspan=\"5\"></td></tr>",
                        esc(name),
                        html::count(count)
                    );
                }
                for (i, finding) in examples.iter().enumerate() {
                    let (group_cell, count_cell) = if i == 0 {
                        (esc(name), html::count(count))
                    } else {
                        (String::new(), String::new())
                    };
                    let _ = write!(
                        out,
                        "<tr><td>{group_cell}</td><td class=\"num\">{count_cell}</td><td><code>{}</code></td><td class=\"num\">{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                        esc(&text(&finding["file"])),
                        esc(&text(&finding["line"])),
                        esc(&text(&finding["path"])),
                        esc(&text(&finding["kind"])),
                        esc(&text(&finding["detail"]))
                    );
                }
            }
            out.push_str("</tbody></table>");
        }
        out.push_str("</section>");
    }
    out
}

/// The latest saved report of a lake: `Ok(None)` when none was saved.
fn latest(state: &Dashboard, location: &str) -> Result<Option<Value>, String> {
    let dest = open_lake(location, &state.settings.lake_options)?;
    pipeline::state::read::<Value>(&dest, validate::LATEST_KEY).map_err(|e| e.to_string())
}

/// `GET /validation`.
pub(crate) async fn page(
    State(state): State<Dashboard>,
    Extension(viewer): Extension<Viewer>,
) -> Html<String> {
    let reports = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || {
            state
                .settings
                .lakes
                .iter()
                .map(|lake| latest(&state, lake))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default()
    };
    let mut body = String::new();
    if state.settings.lakes.is_empty() {
        body.push_str(&html::notice(
            "info",
            "No lake is configured: start the server with --lake DEST (repeatable).",
        ));
    }
    for (i, (lake, report)) in state.settings.lakes.iter().zip(reports).enumerate() {
        let _ = write!(
            body,
            r#"<section class="lake" id="lake-{i}"><div class="job-head"><h2>Lake <code>{}</code></h2>
<form method="post" action="/validation/run" class="inline">{}<input type="hidden" name="lake" value="{i}"><button type="submit">Validate now</button></form></div>"#,
            esc(lake),
            viewer.csrf_field()
        );
        match report {
            Ok(Some(report)) => body.push_str(&report_html(&report)),
            Ok(None) => body.push_str(&html::notice(
                "info",
                "No validation report yet: run haven validate on this lake, or Validate now.",
            )),
            Err(error) => body.push_str(&html::notice(
                "error",
                &format!("Cannot read this lake: {error}"),
            )),
        }
        body.push_str("</section>");
    }
    html::page("Validation", "/validation", Some(&viewer), &body)
}

/// The "validate now" form.
#[derive(Deserialize)]
pub(crate) struct RunForm {
    lake: usize,
}

/// `POST /validation/run`: validates one lake (on the blocking pool), saves the report in it
/// and shows the page again.
pub(crate) async fn run(
    State(state): State<Dashboard>,
    axum::Form(form): axum::Form<RunForm>,
) -> Response {
    let Some(location) = state.settings.lakes.get(form.lake).cloned() else {
        return (axum::http::StatusCode::NOT_FOUND, "no such lake").into_response();
    };
    let options = state.settings.lake_options.clone();
    let outcome = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let dest = open_lake(&location, &options)?;
        let report =
            validate::validate(&dest, &validate::Options::default()).map_err(|e| e.to_string())?;
        report.save(&dest).map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|_| Err("the validation stopped unexpectedly".to_owned()));
    if let Err(error) = outcome {
        tracing::warn!(lake = form.lake, %error, "dashboard validation failed to run");
    }
    Redirect::to(&format!("/validation#lake-{}", form.lake)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_failed_report_shows_its_verdict_checks_and_located_findings() {
        let report = json!({"lake": "file:///lake", "deid": "preset safe-harbor", "safe_harbor": true,
        "runs": ["r1"], "resources": 10, "bytes": 2048, "passed": false,
        "checks": [
            {"name": "counts", "status": "passed", "summary": "all counts match", "groups": {}},
            {"name": "identifiers", "status": "failed", "summary": "1 finding",
             "groups": {"ssn": {"count": 1, "examples": [{"kind": "ssn", "file": "ndjson/Patient.ndjson",
               "line": 3, "path": "/identifier/0/value", "detail": "looks like an <SSN>"}]}}}
        ]});
        let out = report_html(&report);
        assert!(out.contains(r#"<div class="verdict error">FAILED</div>"#));
        assert!(out.contains("/identifier/0/value"));
        assert!(out.contains("looks like an &lt;SSN&gt;"));
        assert!(out.find("counts").unwrap() < out.find("identifiers").unwrap());
    }
}
