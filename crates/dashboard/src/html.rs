//! HTML building blocks: escaping (every value that reaches a page goes through [`esc`]), the
//! page layout, and small formatting helpers.

use std::fmt::Write as _;

use axum::response::Html;

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Who is looking at a page: the signed-in operator (none when login is off) and the CSRF
/// token that the page's forms carry.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The operator's name, when login is on.
    pub operator: Option<String>,
    /// The token every POST form must send back as `csrf`.
    pub csrf: String,
}

impl Viewer {
    /// The hidden CSRF field of a form.
    pub fn csrf_field(&self) -> String {
        format!(
            r#"<input type="hidden" name="csrf" value="{}">"#,
            esc(&self.csrf)
        )
    }
}

/// The pages of the navigation bar: path and label.
const NAV: [(&str, &str); 5] = [
    ("/", "Overview"),
    ("/exports", "Exports"),
    ("/pipeline", "Pipeline runs"),
    ("/preview", "De-identification preview"),
    ("/validation", "Validation"),
];

/// A whole page: head (the embedded stylesheet and script, no external resources), the
/// navigation bar with `active` highlighted, and `body` (already HTML).
pub fn page(title: &str, active: &str, viewer: Option<&Viewer>, body: &str) -> Html<String> {
    let mut nav = String::new();
    if viewer.is_some() {
        for (path, label) in NAV {
            let class = if path == active {
                " class=\"active\""
            } else {
                ""
            };
            let _ = write!(nav, r#"<a href="{path}"{class}>{label}</a>"#);
        }
    }
    let account = match viewer {
        Some(Viewer {
            operator: Some(name),
            ..
        }) => format!(
            r#"<form method="post" action="/logout" class="account"><span>{}</span>{}<button type="submit">Sign out</button></form>"#,
            esc(name),
            viewer.map(Viewer::csrf_field).unwrap_or_default()
        ),
        _ => String::new(),
    };
    Html(format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Haven</title>
<link rel="stylesheet" href="/assets/dashboard.css">
<script src="/assets/dashboard.js" defer></script>
</head>
<body>
<header><span class="brand">Haven</span><nav>{nav}</nav>{account}</header>
<main>
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"#,
        title = esc(title),
    ))
}

/// A byte count in readable units (`1.5 MiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64;
    let mut unit = "B";
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    format!("{value:.1} {unit}")
}

/// A count with thousands separators (`12,345`).
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A status badge.
pub fn badge(text: &str, class: &str) -> String {
    format!(r#"<span class="badge {}">{}</span>"#, esc(class), esc(text))
}

/// A message box (`class` is `error`, `info` or `ok`).
pub fn notice(class: &str, text: &str) -> String {
    format!(r#"<p class="notice {}">{}</p>"#, esc(class), esc(text))
}

/// The diagnostics of a server error, joined (they name parameters and ids, never values).
pub fn fhir_message(error: &server::FhirError) -> String {
    let texts: Vec<&str> = error
        .issues
        .iter()
        .map(|issue| issue.diagnostics.as_str())
        .collect();
    texts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_neutralises_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn sizes_and_counts_are_readable() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(12), "12");
    }
}
