//! The pipeline page: per lake, the watermark, the run under way, a chart of resources landed
//! per run, and each run's report (stages with throughput, types, tables, warnings), read from
//! the lake's `_haven/`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::Extension;
use axum::extract::State;
use axum::response::Html;
use pipeline::RunReport;
use pipeline::state::{CURRENT_KEY, CurrentRun, LakeState, STATE_KEY, report_key};

use crate::Dashboard;
use crate::html::{self, Viewer, esc};

/// The most recent runs whose reports are read and shown.
const RUNS_SHOWN: usize = 30;

/// What one lake holds about its runs.
pub(crate) struct LakeView {
    pub location: String,
    pub state: Option<LakeState>,
    pub current: Option<CurrentRun>,
    pub reports: BTreeMap<String, RunReport>,
    pub error: Option<String>,
}

/// Opens a lake without creating it (a folder must exist).
pub(crate) fn open_lake(
    location: &str,
    options: &BTreeMap<String, String>,
) -> Result<lake::Destination, String> {
    let is_url = location
        .split_once("://")
        .is_some_and(|(scheme, _)| scheme.len() > 1);
    if !is_url && !std::path::Path::new(location).is_dir() {
        return Err("no such folder".to_owned());
    }
    lake::Destination::open_with(location, options).map_err(|e| e.to_string())
}

fn read_lake(location: &str, options: &BTreeMap<String, String>) -> LakeView {
    let mut view = LakeView {
        location: location.to_owned(),
        state: None,
        current: None,
        reports: BTreeMap::new(),
        error: None,
    };
    let dest = match open_lake(location, options) {
        Ok(dest) => dest,
        Err(error) => {
            view.error = Some(error);
            return view;
        }
    };
    let mut read = || -> pipeline::Result<()> {
        view.state = pipeline::state::read(&dest, STATE_KEY)?;
        view.current = pipeline::state::read(&dest, CURRENT_KEY)?;
        if let Some(state) = &view.state {
            for run in state.runs.iter().rev().take(RUNS_SHOWN) {
                if let Some(report) =
                    pipeline::state::read::<RunReport>(&dest, &report_key(&run.run_id, "json"))?
                {
                    view.reports.insert(run.run_id.clone(), report);
                }
            }
        }
        Ok(())
    };
    if let Err(error) = read() {
        view.error = Some(error.to_string());
    }
    view
}

/// Reads every configured lake (on the blocking pool).
pub(crate) async fn load_lakes(state: &Dashboard) -> Vec<LakeView> {
    let settings = std::sync::Arc::clone(&state.settings);
    tokio::task::spawn_blocking(move || {
        settings
            .lakes
            .iter()
            .map(|lake| read_lake(lake, &settings.lake_options))
            .collect()
    })
    .await
    .unwrap_or_default()
}

/// A bar chart (inline SVG) of resources landed per run, oldest first.
fn chart(runs: &[(String, u64)]) -> String {
    if runs.is_empty() {
        return String::new();
    }
    let (width, height, top, bottom, left) = (760.0, 220.0, 20.0, 30.0, 56.0);
    let max = runs.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1) as f64;
    let plot_w = width - left - 10.0;
    let plot_h = height - top - bottom;
    let slot = plot_w / runs.len() as f64;
    let bar = (slot * 0.7).min(60.0);
    let mut svg = format!(
        r#"<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="Resources landed per run"><title>Resources landed per run</title>
<line class="axis" x1="{left}" y1="{base}" x2="{right}" y2="{base}"/>
<text class="tick" x="{tx}" y="{ty}" text-anchor="end">{max_label}</text>
<text class="tick" x="{tx}" y="{base}" text-anchor="end">0</text>"#,
        base = top + plot_h,
        right = width - 10.0,
        tx = left - 6.0,
        ty = top + 4.0,
        max_label = html::count(max as u64),
    );
    for (i, (run, n)) in runs.iter().enumerate() {
        let h = (*n as f64 / max) * plot_h;
        let x = left + slot * i as f64 + (slot - bar) / 2.0;
        let y = top + plot_h - h;
        let _ = write!(
            svg,
            r#"<g class="bar"><title>{run}: {count} resources</title><rect x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{h:.1}"/><text class="value" x="{cx:.1}" y="{vy:.1}" text-anchor="middle">{count}</text><text class="tick" x="{cx:.1}" y="{ly:.1}" text-anchor="middle">{label}</text></g>"#,
            run = esc(run),
            count = html::count(*n),
            cx = x + bar / 2.0,
            vy = (y - 4.0).max(10.0),
            ly = height - 10.0,
            label = i + 1,
        );
    }
    svg.push_str("</svg>");
    svg
}

fn run_details(report: &RunReport) -> String {
    let mut out = String::new();
    out.push_str("<table class=\"stages\"><thead><tr><th>Stage</th><th>Resources</th><th>Bytes</th><th>Seconds</th><th>Resources/s</th></tr></thead><tbody>");
    for stage in &report.stages {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.2}</td><td class=\"num\">{}</td></tr>",
            esc(&stage.name),
            html::count(stage.resources),
            html::bytes(stage.bytes),
            stage.seconds,
            html::count(stage.rate().round() as u64)
        );
    }
    out.push_str("</tbody></table>");
    out.push_str("<table class=\"types\"><thead><tr><th>Type</th><th>Announced</th><th>Read</th><th>Landed</th><th>Dropped</th><th>Deleted</th></tr></thead><tbody>");
    for (resource_type, counts) in &report.types {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(resource_type),
            counts.announced.map_or("—".to_owned(), html::count),
            html::count(counts.read),
            html::count(counts.landed),
            html::count(counts.dropped),
            html::count(counts.deleted)
        );
    }
    out.push_str("</tbody></table>");
    if !report.tables.is_empty() {
        out.push_str("<p class=\"muted\">Tables: ");
        let tables: Vec<String> = report
            .tables
            .iter()
            .map(|(t, n)| format!("<code>{}</code> {}", esc(t), html::count(*n)))
            .collect();
        out.push_str(&tables.join(", "));
        out.push_str("</p>");
    }
    if !report.warnings.is_empty() {
        out.push_str("<ul class=\"warnings\">");
        for warning in &report.warnings {
            let _ = write!(out, "<li>{}</li>", esc(warning));
        }
        out.push_str("</ul>");
    }
    out
}

fn lake_section(index: usize, lake: &LakeView) -> String {
    let mut out = format!(
        r#"<section class="lake" id="lake-{index}"><h2>Lake <code>{}</code></h2>"#,
        esc(&lake.location)
    );
    if let Some(error) = &lake.error {
        out.push_str(&html::notice(
            "error",
            &format!("Cannot read this lake: {error}"),
        ));
    }
    let Some(state) = &lake.state else {
        if lake.error.is_none() {
            out.push_str(&html::notice(
                "info",
                "No pipeline run has completed in this lake yet (haven pipeline run).",
            ));
        }
        out.push_str("</section>");
        return out;
    };
    let total: u64 = state.runs.iter().map(|r| r.resources).sum();
    let _ = write!(
        out,
        r#"<dl class="facts"><dt>watermark</dt><dd class="watermark">{}</dd><dt>de-identification</dt><dd>{}</dd><dt>runs</dt><dd>{}</dd><dt>resources landed</dt><dd>{}</dd></dl>"#,
        esc(state.watermark.as_deref().unwrap_or("none")),
        esc(state.deid.as_deref().unwrap_or("not recorded")),
        state.runs.len(),
        html::count(total)
    );
    if let Some(current) = &lake.current {
        out.push_str(&html::notice(
            "info",
            &format!(
                "Run {} under way since {} (attempt {}).",
                current.run_id, current.started, current.attempts
            ),
        ));
    }
    let shown: Vec<_> = state.runs.iter().rev().take(RUNS_SHOWN).rev().collect();
    let bars: Vec<(String, u64)> = shown
        .iter()
        .map(|r| (r.run_id.clone(), r.resources))
        .collect();
    out.push_str(&chart(&bars));
    out.push_str("<table class=\"runs\"><thead><tr><th>#</th><th>Run</th><th>Finished</th><th>Since</th><th>Transaction time</th><th>Landed</th><th>Deleted</th><th>Throughput</th><th>Warnings</th></tr></thead><tbody>");
    for (i, run) in shown.iter().enumerate().rev() {
        let report = lake.reports.get(&run.run_id);
        let throughput = report
            .and_then(|r| r.stages.iter().find(|s| s.name == "land"))
            .map_or("—".to_owned(), |s| {
                format!("{}/s", html::count(s.rate().round() as u64))
            });
        let warnings = report.map_or(0, |r| r.warnings.len());
        let warn_class = if warnings > 0 { " class=\"warn\"" } else { "" };
        let _ = write!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\"{warn_class}>{}</td></tr>",
            i + 1,
            esc(&run.run_id),
            esc(&run.finished),
            esc(run.since.as_deref().unwrap_or("full")),
            esc(run.transaction_time.as_deref().unwrap_or("—")),
            html::count(run.resources),
            html::count(run.deleted),
            throughput,
            warnings
        );
        if let Some(report) = report {
            let _ = write!(
                out,
                "<tr class=\"detail\"><td></td><td colspan=\"8\"><details><summary>Stages and types of run {}</summary>{}</details></td></tr>",
                esc(&run.run_id),
                run_details(report)
            );
        }
    }
    out.push_str("</tbody></table></section>");
    out
}

/// `GET /pipeline`.
pub(crate) async fn page(
    State(state): State<Dashboard>,
    Extension(viewer): Extension<Viewer>,
) -> Html<String> {
    let lakes = load_lakes(&state).await;
    let mut body = String::new();
    if lakes.is_empty() {
        body.push_str(&html::notice(
            "info",
            "No lake is configured: start the server with --lake DEST (repeatable).",
        ));
    }
    for (i, lake) in lakes.iter().enumerate() {
        body.push_str(&lake_section(i, lake));
    }
    html::page("Pipeline runs", "/pipeline", Some(&viewer), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_has_one_bar_per_run_scaled_to_the_largest() {
        let svg = chart(&[("a".into(), 100), ("b<".into(), 50)]);
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("b&lt;: 50 resources"));
        assert!(svg.contains(r#"height="170.0""#));
        assert!(svg.contains(r#"height="85.0""#));
        assert!(chart(&[]).is_empty());
    }
}
