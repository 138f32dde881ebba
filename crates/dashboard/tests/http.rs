//! The dashboard over plain HTTP against a running server: pages, sign-in, CSRF, escaping,
//! and an export from kick-off to download and deletion.

mod common;

use std::time::{Duration, Instant};

use common::{OPERATOR, PASSWORD, Running, SCRIPT_NAME};
use reqwest::StatusCode;
use reqwest::redirect::Policy;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

fn block<F: std::future::Future>(running: &Running, future: F) -> F::Output {
    running.runtime.as_ref().unwrap().block_on(future)
}

/// The CSRF token in a page's forms.
fn csrf(page: &str) -> String {
    let start = page
        .find(r#"name="csrf" value=""#)
        .expect("a form with a token")
        + 19;
    page[start..start + 64].to_owned()
}

async fn get(client: &reqwest::Client, url: &str, cookie: Option<&str>) -> (StatusCode, String) {
    let mut request = client.get(url);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
    cookie: Option<&str>,
    origin: Option<&str>,
) -> reqwest::Response {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut request = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request.send().await.unwrap()
}

#[test]
fn open_pages_show_exports_runs_previews_and_validation() {
    let running = common::start(false);
    let client = client();
    block(&running, async {
        for (path, title) in [
            ("/", "Overview"),
            ("/exports", "Kick off an export"),
            ("/pipeline", "watermark"),
            ("/preview", "De-identification preview"),
            ("/validation", "counts"),
        ] {
            let (status, body) = get(&client, &running.url(path), None).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert!(body.contains(title), "{path} shows {title}");
        }
        let (_, pipeline) = get(&client, &running.url("/pipeline"), None).await;
        assert!(pipeline.contains(r#"<svg class="chart""#));
        assert_eq!(pipeline.matches("<rect").count(), 1, "one run, one bar");
        let (_, validation) = get(&client, &running.url("/validation"), None).await;
        assert!(validation.contains(r#"<div class="verdict"#));
    });
}

#[test]
fn markup_in_a_resource_is_shown_escaped() {
    let running = common::start(false);
    let client = client();
    let patients = running
        .store
        .export_page(
            &store::ExportQuery {
                resource_type: "Patient".into(),
                at: running.store.transaction_time().unwrap(),
                since: None,
                patients: store::PatientScope::All,
            },
            0,
            1000,
        )
        .unwrap()
        .items;
    let position = patients.iter().position(|p| p.id == "markup").unwrap() + 1;
    block(&running, async {
        let (_, page) = get(&client, &running.url("/preview"), None).await;
        let token = csrf(&page);
        let position = position.to_string();
        let response = post(
            &client,
            &running.url("/preview"),
            &[
                ("csrf", &token),
                ("source", "server"),
                ("resource_type", "Patient"),
                ("position", &position),
                ("preset", "safe-harbor"),
            ],
            None,
            None,
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.text().await.unwrap();
        assert!(body.contains("Mallory"), "the original is shown");
        assert!(!body.contains(SCRIPT_NAME), "markup is never sent raw");
        assert!(body.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(body.contains("rule "), "changes are named after their rule");
    });
}

#[test]
fn forms_need_the_page_token_and_this_origin() {
    let running = common::start(false);
    let client = client();
    block(&running, async {
        let (_, page) = get(&client, &running.url("/exports"), None).await;
        let token = csrf(&page);
        let url = running.url("/exports");
        let form = |t: &'static str| vec![("level", "system"), ("types", "Patient"), ("csrf", t)];
        let missing = post(&client, &url, &form("")[..2], None, None).await;
        assert_eq!(missing.status(), StatusCode::FORBIDDEN);
        let wrong = post(&client, &url, &form("0000"), None, None).await;
        assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
        let token: &'static str = Box::leak(token.into_boxed_str());
        let foreign = post(
            &client,
            &url,
            &form(token),
            None,
            Some("http://evil.example"),
        )
        .await;
        assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
        let own = running.url("");
        let accepted = post(&client, &url, &form(token), None, Some(&own)).await;
        assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
        let headers = accepted.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'self'")
        );
    });
}

#[test]
fn an_export_runs_from_kick_off_to_download_and_deletion() {
    let running = common::start(false);
    let client = client();
    block(&running, async {
        let (_, page) = get(&client, &running.url("/exports"), None).await;
        let token = csrf(&page);
        let response = post(
            &client,
            &running.url("/exports"),
            &[
                ("csrf", &token),
                ("level", "patient"),
                ("types", "Patient,Condition"),
                ("anonymization", "safe-harbor"),
            ],
            None,
            None,
        )
        .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let id = location.strip_prefix("/exports#job-").unwrap().to_owned();
        let started = Instant::now();
        loop {
            let status: serde_json::Value = client
                .get(running.url("/exports/status"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let job = status
                .as_array()
                .unwrap()
                .iter()
                .find(|j| j["id"] == id.as_str())
                .unwrap()
                .clone();
            if job["status"] == "Completed" {
                break;
            }
            assert_ne!(job["status"], "Failed");
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the export ends"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (_, page) = get(&client, &running.url("/exports"), None).await;
        assert!(page.contains("safe-harbor"));
        assert!(page.contains("dashboard"), "the requesting client is named");
        let link = format!("/exports/{id}/files/Patient-1.ndjson");
        assert!(page.contains(&link));
        let (status, ndjson) = get(&client, &running.url(&link), None).await;
        assert_eq!(status, StatusCode::OK);
        let lines: Vec<serde_json::Value> = ndjson
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(lines.len() >= 2);
        assert!(lines.iter().all(|p| p["resourceType"] == "Patient"));
        assert!(
            !ndjson.contains("Mallory"),
            "names are redacted by safe-harbor"
        );
        let delete = post(
            &client,
            &running.url(&format!("/exports/{id}/delete")),
            &[("csrf", &token)],
            None,
            None,
        )
        .await;
        assert_eq!(delete.status(), StatusCode::SEE_OTHER);
        let (status, _) = get(&client, &running.url(&link), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    });
}

#[test]
fn under_smart_auth_pages_need_a_signed_in_operator() {
    let running = common::start(true);
    let client = client();
    block(&running, async {
        let response = client.get(running.url("/exports")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()["location"], "/login?next=%2Fexports");
        let (status, _) = get(&client, &running.url("/exports/status"), None).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let login = running.url("/login");
        let wrong = post(
            &client,
            &login,
            &[
                ("name", OPERATOR),
                ("password", "not the password"),
                ("next", "/exports"),
            ],
            None,
            None,
        )
        .await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        assert!(wrong.headers().get("set-cookie").is_none());
        let right = post(
            &client,
            &login,
            &[
                ("name", OPERATOR),
                ("password", PASSWORD),
                ("next", "/exports"),
            ],
            None,
            None,
        )
        .await;
        assert_eq!(right.status(), StatusCode::SEE_OTHER);
        assert_eq!(right.headers()["location"], "/exports");
        let set_cookie = right.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(set_cookie.contains("HttpOnly"));
        assert!(set_cookie.contains("SameSite=Strict"));
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        let (status, page) = get(&client, &running.url("/exports"), Some(&cookie)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains(OPERATOR));
        let (status, _) = get(&client, &running.url("/fhir/Patient"), Some(&cookie)).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "the FHIR API still wants a token"
        );
        let token = csrf(&page);
        let out = post(
            &client,
            &running.url("/logout"),
            &[("csrf", &token)],
            Some(&cookie),
            None,
        )
        .await;
        assert_eq!(out.status(), StatusCode::SEE_OTHER);
        let (status, _) = get(&client, &running.url("/exports"), Some(&cookie)).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "the session is closed");
    });
}
