//! The dashboard in a real browser: headless Chromium driven through chromedriver's W3C
//! WebDriver API against a running server under SMART authorization. Signs in, kicks off an
//! export and follows it to its download, opens each page, and checks that the preview shows a
//! patient's name on the left and not on the right. Screenshots go to `$HAVEN_TEST_ARTIFACTS`
//! (default: `$CARGO_TARGET_DIR/dashboard-screenshots`), and also to `docs/screenshots/` with
//! `HAVEN_UPDATE_SCREENSHOTS=1`. chromedriver is found at `HAVEN_CHROMEDRIVER` or in Debian's
//! places (CI installs it); without it the test fails, unless `HAVEN_SKIP_EMULATORS=1` skips it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// The W3C element key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    process: Child,
    client: reqwest::Client,
    session: String,
    base: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn chromedriver() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("HAVEN_CHROMEDRIVER") {
        return Some(PathBuf::from(path));
    }
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn artifacts() -> PathBuf {
    if let Some(dir) = std::env::var_os("HAVEN_TEST_ARTIFACTS") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("dashboard-screenshots")
}

impl Driver {
    async fn start(binary: &Path, profile: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if let Ok(response) = client.get(format!("{base}/status")).send().await
                && let Ok(status) = response.json::<Value>().await
                && status["value"]["ready"] == true
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver is ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut chrome = json!({"args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--window-size=1400,1000",
            format!("--user-data-dir={}", profile.display())
        ]});
        if let Some(binary) = std::env::var_os("HAVEN_CHROMIUM") {
            chrome["binary"] = json!(binary.to_string_lossy());
        }
        let created: Value = client
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome", "goog:chromeOptions": chrome}}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("a WebDriver session: {created}"))
            .to_owned();
        Driver {
            process,
            client,
            session,
            base,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.client.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let value: Value = request.send().await.unwrap().json().await.unwrap();
        value["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn find(&self, css: &str) -> Option<String> {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found[ELEMENT].as_str().map(str::to_owned)
    }

    async fn wait_for(&self, css: &str, within: Duration) -> String {
        let started = Instant::now();
        loop {
            if let Some(element) = self.find(css).await {
                return element;
            }
            assert!(started.elapsed() < within, "{css} appears");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn click(&self, element: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn type_into(&self, element: &str, text: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn text(&self, element: &str) -> String {
        self.call(
            reqwest::Method::GET,
            &format!("/element/{element}/text"),
            None,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    async fn script(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    async fn async_script(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    async fn screenshot(&self, name: &str) {
        let data = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .expect("a PNG screenshot");
        assert!(png.starts_with(b"\x89PNG"));
        let dir = artifacts();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
        if std::env::var_os("HAVEN_UPDATE_SCREENSHOTS").is_some() {
            let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
            std::fs::create_dir_all(&docs).unwrap();
            std::fs::write(docs.join(format!("{name}.png")), &png).unwrap();
        }
    }

    async fn quit(&self) {
        let _ = self
            .client
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
    }
}

/// The family name of the first Patient the preview picks (position 1).
fn first_family_name(store: &dyn store::Store) -> String {
    let page = store
        .export_page(
            &store::ExportQuery {
                resource_type: "Patient".into(),
                at: store.transaction_time().unwrap(),
                since: None,
                patients: store::PatientScope::All,
            },
            0,
            1,
        )
        .unwrap();
    let patient: Value = serde_json::from_str(&page.items[0].json).unwrap();
    patient["name"][0]["family"].as_str().unwrap().to_owned()
}

#[test]
fn the_dashboard_works_in_a_real_browser() {
    let Some(binary) = chromedriver().filter(|p| p.exists()) else {
        // Like the emulators: a missing browser fails the run unless skipping is asked for.
        assert!(
            std::env::var("HAVEN_SKIP_EMULATORS").is_ok_and(|v| v == "1"),
            "chromedriver not found: apt-get install chromium chromium-driver, or set \
             HAVEN_CHROMEDRIVER (HAVEN_SKIP_EMULATORS=1 skips this test)"
        );
        eprintln!("skipped: chromedriver not found and HAVEN_SKIP_EMULATORS=1");
        return;
    };
    let running = common::start(true);
    let family = first_family_name(running.store.as_ref());
    let profile = tempfile::tempdir().unwrap();
    let runtime = running.runtime.as_ref().unwrap();
    runtime.block_on(async {
        let driver = Driver::start(&binary, profile.path()).await;

        // Pages are guarded: the browser lands on the sign-in form.
        driver.go(&running.url("/exports")).await;
        assert!(driver.url().await.contains("/login?next=%2Fexports"));
        driver.screenshot("login").await;
        let name = driver
            .wait_for("input[name=name]", Duration::from_secs(10))
            .await;
        driver.type_into(&name, common::OPERATOR).await;
        let password = driver.find("input[name=password]").await.unwrap();
        driver.type_into(&password, common::PASSWORD).await;
        driver
            .click(&driver.find("form.login button").await.unwrap())
            .await;
        driver
            .wait_for("form#kickoff", Duration::from_secs(20))
            .await;
        assert!(driver.url().await.ends_with("/exports"));

        // Kick off a de-identified Patient export and follow it to its files.
        let types = driver.find("input[name=types]").await.unwrap();
        driver
            .type_into(&types, "Patient,Condition,Observation")
            .await;
        driver
            .script(
                "document.querySelector('select[name=anonymization]').value = 'safe-harbor';",
                json!([]),
            )
            .await;
        driver
            .click(&driver.find("form#kickoff button").await.unwrap())
            .await;
        let link = driver
            .wait_for(
                "a.download[href$='Patient-1.ndjson']",
                Duration::from_secs(60),
            )
            .await;
        driver.screenshot("exports").await;
        let href = driver
            .script(
                "return arguments[0].getAttribute('href');",
                json!([{ELEMENT: link}]),
            )
            .await;
        let downloaded = driver
            .async_script(
                "const done = arguments[arguments.length - 1];
                 fetch(arguments[0]).then(r => r.text()).then(done, e => done('error ' + e));",
                json!([href]),
            )
            .await;
        let ndjson = downloaded.as_str().unwrap();
        let first: Value = serde_json::from_str(ndjson.lines().next().unwrap()).unwrap();
        assert_eq!(first["resourceType"], "Patient");
        assert!(!ndjson.contains(&family), "the download is de-identified");

        // Pipeline runs and validation.
        driver.go(&running.url("/pipeline")).await;
        driver
            .wait_for("svg.chart rect", Duration::from_secs(10))
            .await;
        let watermark = driver.find("dd.watermark").await.unwrap();
        assert_ne!(driver.text(&watermark).await, "none");
        driver.screenshot("pipeline").await;
        driver.go(&running.url("/validation")).await;
        let verdict = driver.wait_for(".verdict", Duration::from_secs(10)).await;
        let verdict = driver.text(&verdict).await;
        assert!(verdict == "PASSED" || verdict == "FAILED");
        driver.screenshot("validation").await;

        // The preview: the name on the left, not on the right.
        driver.go(&running.url("/preview")).await;
        let submit = driver
            .wait_for("form#preview-form button", Duration::from_secs(10))
            .await;
        driver.click(&submit).await;
        let original = driver.wait_for("#original", Duration::from_secs(30)).await;
        let deidentified = driver.find("#deidentified").await.unwrap();
        assert!(driver.text(&original).await.contains(&family));
        assert!(!driver.text(&deidentified).await.contains(&family));
        assert!(driver.find(".json .line.removed .rule").await.is_some());
        driver
            .script(
                "document.querySelector('.sides').scrollIntoView();",
                json!([]),
            )
            .await;
        driver.screenshot("preview").await;

        driver.go(&running.url("/")).await;
        driver.wait_for(".cards", Duration::from_secs(10)).await;
        driver.screenshot("overview").await;
        driver.quit().await;
    });
}
