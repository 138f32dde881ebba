//! A scripted, fault-injecting HTTP peer for Bulk Data client tests: a real axum server on an
//! ephemeral 127.0.0.1 port that answers each `METHOD /path` with the next reply of its script
//! (the last reply repeats) and records every request it received.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    delay: Option<Duration>,
}

impl Reply {
    /// An empty answer with `status`.
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// A JSON body.
    pub fn json(mut self, value: &Value) -> Self {
        self.body = serde_json::to_vec(value).unwrap();
        self.header("content-type", "application/json")
    }

    /// A raw body.
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = bytes.into();
        self
    }

    /// Waits before answering.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// An NDJSON file of `lines`.
    pub fn ndjson(lines: &[Value]) -> Self {
        let mut body = Vec::new();
        for line in lines {
            body.extend(serde_json::to_vec(line).unwrap());
            body.push(b'\n');
        }
        Reply::status(200)
            .header("content-type", "application/fhir+ndjson")
            .body(body)
    }

    /// A 5xx (or other) OperationOutcome with `code`.
    pub fn outcome(status: u16, code: &str) -> Self {
        Reply::status(status).json(&json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": "scripted failure"}]
        }))
    }
}

/// A request the peer received.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Path and query.
    pub uri: String,
    /// Headers (lower-case names).
    pub headers: HashMap<String, String>,
    /// Body.
    pub body: Vec<u8>,
}

#[derive(Default)]
struct Inner {
    scripts: HashMap<String, VecDeque<Reply>>,
    seen: HashMap<String, Vec<Seen>>,
    in_flight: usize,
    max_in_flight: usize,
}

/// The peer.
#[derive(Clone)]
pub struct Peer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl Peer {
    /// Starts a peer on the current tokio runtime.
    pub async fn start() -> Peer {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new().fallback(answer).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Peer { url, inner }
    }

    /// Scripts `key` (`"GET /fhir/$export"`): each request takes the next reply, the last repeats.
    pub fn on(&self, key: &str, replies: Vec<Reply>) {
        self.inner
            .lock()
            .unwrap()
            .scripts
            .insert(key.to_owned(), replies.into());
    }

    /// The requests received for `key`.
    pub fn seen(&self, key: &str) -> Vec<Seen> {
        self.inner
            .lock()
            .unwrap()
            .seen
            .get(key)
            .cloned()
            .unwrap_or_default()
    }

    /// The most requests that were being answered at once.
    pub fn max_in_flight(&self) -> usize {
        self.inner.lock().unwrap().max_in_flight
    }

    /// `self.url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

async fn answer(State(inner): State<Arc<Mutex<Inner>>>, request: Request) -> Response {
    let key = format!("{} {}", request.method(), request.uri().path());
    let uri = request.uri().to_string();
    let headers = request
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let body = to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    let reply = {
        let mut inner = inner.lock().unwrap();
        inner
            .seen
            .entry(key.clone())
            .or_default()
            .push(Seen { uri, headers, body });
        match inner.scripts.get_mut(&key) {
            Some(queue) if queue.len() > 1 => queue.pop_front(),
            Some(queue) => queue.front().cloned(),
            None => None,
        }
    };
    let reply = reply.unwrap_or_else(|| Reply::outcome(404, "not-found"));
    if let Some(delay) = reply.delay {
        {
            let mut inner = inner.lock().unwrap();
            inner.in_flight += 1;
            inner.max_in_flight = inner.max_in_flight.max(inner.in_flight);
        }
        tokio::time::sleep(delay).await;
        inner.lock().unwrap().in_flight -= 1;
    }
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap();
    for (name, value) in reply.headers {
        response.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    response
}

/// A manifest (STU2 shape) listing `files` as (type, path on the peer, count).
pub fn manifest(peer: &Peer, requires_token: bool, files: &[(&str, &str, Option<u64>)]) -> Value {
    let output: Vec<Value> = files
        .iter()
        .map(|(t, path, count)| {
            let mut entry = json!({"type": t, "url": peer.at(path)});
            if let Some(count) = count {
                entry["count"] = json!(count);
            }
            entry
        })
        .collect();
    json!({
        "transactionTime": "2026-11-28T10:00:00Z",
        "request": peer.at("/fhir/$export"),
        "requiresAccessToken": requires_token,
        "output": output,
        "error": []
    })
}

/// `n` Patient resources with ids `p0…`.
pub fn patients(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"resourceType": "Patient", "id": format!("p{i}")}))
        .collect()
}

/// Scripts a quick happy export at system level: kick-off → one 202 → `manifest` → DELETE.
pub fn script_export(peer: &Peer, manifest: &Value) {
    peer.on(
        "GET /fhir/$export",
        vec![Reply::status(202).header("content-location", peer.at("/status/1"))],
    );
    peer.on(
        "POST /fhir/$export",
        vec![Reply::status(202).header("content-location", "/status/1")],
    );
    peer.on(
        "GET /status/1",
        vec![
            Reply::status(202)
                .header("x-progress", "50% complete")
                .header("retry-after", "0"),
            Reply::status(200).json(manifest),
        ],
    );
    peer.on("DELETE /status/1", vec![Reply::status(202)]);
}
