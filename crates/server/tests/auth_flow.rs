//! The whole SMART Backend Services flow against a real server on an ephemeral port: generate
//! a key, register the client (as `haven clients add` does), then let Haven's Bulk Data client
//! discover the token endpoint, get a token, export and download, with tokens so short-lived
//! that the client must renew them during the export.

use std::sync::Arc;
use std::time::Duration;

use bulk::smart::{KeyAlgorithm, SigningKey, SmartAuth, SmartCredentials};
use bulk::{ExportOptions, ExportRequest, Exporter, Level};
use serde_json::json;
use server::auth::clients::{Client, KeySource, Registry};
use server::auth::{AuthConfig, AuthMode};
use server::{Server, ServerConfig};
use store::Write;

async fn serve(
    dir: &std::path::Path,
    token_lifetime: Duration,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let path = dir.join("haven.db");
    let store: Arc<dyn store::Store> = tokio::task::spawn_blocking(move || {
        let store: Arc<dyn store::Store> = Arc::from(store::open(path.to_str().unwrap()).unwrap());
        let mut writes = Vec::new();
        for n in 0..25 {
            writes.push(Write::Create(
                json!({"resourceType": "Patient", "id": format!("p{n}")}),
            ));
            writes.push(Write::Create(json!({
                "resourceType": "Observation", "id": format!("o{n}"), "status": "final",
                "code": {"text": "pulse"}, "subject": {"reference": format!("Patient/p{n}")}
            })));
        }
        store.transaction(writes).unwrap();
        store
    })
    .await
    .unwrap();
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        export_to: dir.join("exports").to_str().unwrap().to_owned(),
        auth: AuthConfig {
            mode: AuthMode::Smart,
            clients_file: Some(dir.join("clients.json")),
            token_lifetime,
        },
        ..ServerConfig::default()
    };
    let server = Server::bind(config, store).await.unwrap();
    let base = server.state().base_url.to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run_until(async {
        let _ = rx.await;
    }));
    (base, tx)
}

async fn flow(alg: KeyAlgorithm) {
    let dir = tempfile::tempdir().unwrap();
    let generated = SigningKey::generate(alg).unwrap();
    let key_file = dir.path().join("private-key.pem");
    std::fs::write(&key_file, &generated.private_pem).unwrap();
    let mut registry = Registry::default();
    registry
        .add(Client {
            id: "pipeline".into(),
            keys: KeySource::Jwks(generated.key.public_jwks()),
            scope: "system/Patient.rs system/Observation.rs".into(),
        })
        .unwrap();
    registry.save(&dir.path().join("clients.json")).unwrap();
    let (base, stop) = serve(dir.path(), Duration::from_secs(2)).await;

    // Without a token the server refuses the export.
    let out = dir.path().join("refused");
    let refused = Exporter::new(ExportOptions::new(
        ExportRequest::new(base.clone(), Level::System),
        &out,
    ))
    .run_async()
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("401"), "{refused}");

    let key = SigningKey::load(&key_file, None).unwrap();
    assert_eq!(key.kid(), generated.key.kid());
    let mut credentials = SmartCredentials::new("pipeline", key);
    credentials.scope = "system/*.rs".into();
    let auth = Arc::new(SmartAuth::new(&base, credentials));
    let first = auth.token().await.unwrap();
    assert_eq!(
        auth.token().await.unwrap(),
        first,
        "a fresh token is reused"
    );
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let second = auth.token().await.unwrap();
    assert_ne!(second, first, "a token about to expire is renewed");

    let out = dir.path().join("out");
    let mut request = ExportRequest::new(base.clone(), Level::System);
    request.types = vec!["Patient".into(), "Observation".into()];
    let mut options = ExportOptions::new(request, &out);
    options.poll_initial = Duration::from_millis(1500);
    let summary = Exporter::new(options)
        .with_tokens(auth)
        .run_async()
        .await
        .unwrap();
    assert_eq!(summary.resources, 50);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["requiresAccessToken"], true);
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread")]
async fn register_get_a_token_export_and_download_with_es384() {
    flow(KeyAlgorithm::Es384).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn register_get_a_token_export_and_download_with_rs384() {
    flow(KeyAlgorithm::Rs384).await;
}
