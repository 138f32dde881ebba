//! Where the lake lives: a local folder or an object-store prefix, behind one [`Destination`].

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use url::Url;

use crate::error::{Error, Result};

/// The size of each part of a streamed upload to a cloud store (S3 and GCS need at least
/// 5 MiB per part but the last).
const CLOUD_PART_BYTES: usize = 5 * 1024 * 1024;

/// The size of each part of a streamed write to a folder (no minimum; less memory per open
/// file).
const LOCAL_PART_BYTES: usize = 1024 * 1024;

/// How many parts of one streamed upload may be in flight at once.
const PARTS_IN_FLIGHT: usize = 2;

/// The process-wide runtime that drives object-store I/O for the blocking API.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lake-io")
            .enable_all()
            .build()
            .expect("the lake's I/O runtime starts")
    })
}

/// Runs a future on the lake's runtime and waits for it.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

/// The kind of storage behind a [`Destination`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// A local folder (a path or a `file://` URL).
    Local,
    /// Azure Blob Storage (`az://container/prefix`); feature `azure`.
    Azure,
    /// Amazon S3 or an S3-compatible store (`s3://bucket/prefix`); feature `aws`.
    S3,
    /// Google Cloud Storage (`gs://bucket/prefix`); feature `gcp`.
    Gcs,
}

/// An object listed under a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The key relative to the destination (`ndjson/Patient/run=1/part-00000.ndjson.gz`).
    pub key: String,
    /// The size in bytes.
    pub size: u64,
}

/// A lake destination: a local folder or a prefix in Azure Blob Storage, S3 or GCS, with
/// blocking put, streamed put, get, list and delete of objects addressed by keys relative to
/// it (`parquet/Patient/run=1/part-00000.parquet`).
///
/// Writes are atomic: a [`put`](Destination::put) is one request (a temporary file renamed
/// into place on a folder), and a [`writer`](Destination::writer) is a multipart upload that
/// becomes visible only when [`finish`](ObjectWriter::finish) completes it; dropped or failed,
/// it is aborted and nothing appears.
///
/// The blocking methods drive I/O on a small runtime owned by this crate; call them from
/// ordinary threads (from async code, inside `tokio::task::spawn_blocking`).
#[derive(Clone)]
pub struct Destination {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    url: Url,
    scheme: Scheme,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl Destination {
    /// Opens a destination from a folder path, a `file://` URL, `az://container/prefix`,
    /// `s3://bucket/prefix` or `gs://bucket/prefix`. Cloud credentials and endpoints come from
    /// the environment (`AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`,
    /// `AZURE_STORAGE_USE_EMULATOR`, `AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`,
    /// `GOOGLE_SERVICE_ACCOUNT`, …, as read by `object_store`). A folder is created if missing.
    pub fn open(location: &str) -> Result<Destination> {
        Destination::open_with(location, &BTreeMap::new())
    }

    /// As [`Destination::open`], with store options that override the environment, named as
    /// `object_store` names them (`azure_storage_account_name`, `azure_storage_endpoint`,
    /// `use_emulator`, `aws_endpoint`, `aws_allow_http`, `aws_region`, `google_service_account`,
    /// …). Options are refused for a folder.
    pub fn open_with(location: &str, options: &BTreeMap<String, String>) -> Result<Destination> {
        let invalid = |reason: &str| Error::Destination {
            url: location.to_string(),
            reason: reason.to_string(),
        };
        let url = match Url::parse(location) {
            Ok(url) if url.scheme().len() > 1 => url,
            _ => return Destination::folder(location, options),
        };
        let (scheme, store): (Scheme, Arc<dyn ObjectStore>) = match url.scheme() {
            "file" => {
                let path = url
                    .to_file_path()
                    .map_err(|()| invalid("not a local file URL"))?;
                return Destination::folder(&path.to_string_lossy(), options);
            }
            "az" | "azure" | "abfs" | "abfss" => (Scheme::Azure, cloud::azure(&url, options)?),
            "s3" | "s3a" => (Scheme::S3, cloud::s3(&url, options)?),
            "gs" => (Scheme::Gcs, cloud::gcs(&url, options)?),
            _ => {
                return Err(invalid(
                    "unsupported scheme (use a folder, az://, s3:// or gs://)",
                ));
            }
        };
        let prefix = Path::from(url.path().trim_matches('/'));
        let mut root = url.clone();
        root.set_path("/");
        Ok(Destination {
            store,
            prefix,
            url: cloud_url(&root, url.path()),
            scheme,
        })
    }

    fn folder(path: &str, options: &BTreeMap<String, String>) -> Result<Destination> {
        let invalid = |reason: String| Error::Destination {
            url: path.to_string(),
            reason,
        };
        if !options.is_empty() {
            return Err(invalid("a folder takes no store options".into()));
        }
        std::fs::create_dir_all(path).map_err(|e| invalid(format!("cannot create: {e}")))?;
        let absolute =
            std::fs::canonicalize(path).map_err(|e| invalid(format!("cannot resolve: {e}")))?;
        let url = Url::from_directory_path(&absolute)
            .map_err(|()| invalid("not an absolute path".into()))?;
        let prefix = Path::from_filesystem_path(&absolute)
            .map_err(|e| invalid(format!("not usable as a store path: {e}")))?;
        Ok(Destination {
            store: Arc::new(object_store::local::LocalFileSystem::new()),
            prefix,
            url,
            scheme: Scheme::Local,
        })
    }

    /// The kind of storage.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The destination's URL, ending with `/` (`file:///data/lake/`, `az://lake/haven/`).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The URL of a key or sub-prefix under the destination.
    pub fn url_of(&self, key: &str) -> Url {
        let mut url = self.url.clone();
        let path = format!("{}{}", url.path(), key.trim_matches('/'));
        url.set_path(&path);
        url
    }

    /// The destination one level down (`dest.child("views")` for `…/views/`).
    pub fn child(&self, sub: &str) -> Destination {
        let mut child = self.clone();
        child.prefix = self.path(sub);
        child.url = self.url_of(sub);
        child.url.set_path(&format!("{}/", child.url.path()));
        child
    }

    /// The underlying store, rooted at the container, bucket or file-system root.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// The store path of a key.
    pub(crate) fn path(&self, key: &str) -> Path {
        key.split('/')
            .filter(|part| !part.is_empty())
            .fold(self.prefix.clone(), |path, part| path.join(part))
    }

    /// The key of a store path under this destination, if it is under it.
    fn key_of(&self, path: &Path) -> Option<String> {
        path.prefix_match(&self.prefix).map(|parts| {
            parts
                .map(|p| p.as_ref().to_string())
                .collect::<Vec<_>>()
                .join("/")
        })
    }

    /// Writes `bytes` to `key` in one atomic request, replacing what was there.
    pub fn put(&self, key: &str, bytes: impl Into<Bytes>) -> Result<()> {
        let payload = PutPayload::from_bytes(bytes.into());
        block_on(self.store.put(&self.path(key), payload))
            .map(drop)
            .map_err(|e| Error::store("put", key, e))
    }

    /// Starts a streamed, atomic write of `key`: bytes written go out in parts as they fill,
    /// and the object appears only when [`ObjectWriter::finish`] succeeds.
    pub fn writer(&self, key: &str) -> Result<ObjectWriter> {
        let upload = block_on(self.store.put_multipart(&self.path(key)))
            .map_err(|e| Error::store("put", key, e))?;
        Ok(ObjectWriter {
            key: key.to_string(),
            upload: Some(WriteMultipart::new_with_chunk_size(
                upload,
                match self.scheme {
                    Scheme::Local => LOCAL_PART_BYTES,
                    _ => CLOUD_PART_BYTES,
                },
            )),
            written: 0,
        })
    }

    /// Reads `key`; `None` when there is no such object.
    pub fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let path = self.path(key);
        block_on(async {
            match self.store.get(&path).await {
                Ok(result) => result.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .map_err(|e| Error::store("get", key, e))
    }

    /// Lists the objects under `prefix` (a key prefix ending at a `/` boundary; `""` for all),
    /// sorted by key.
    pub fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let path = self.path(prefix);
        let metas: Vec<_> = block_on(self.store.list(Some(&path)).try_collect())
            .map_err(|e| Error::store("list", prefix, e))?;
        let mut objects: Vec<ObjectInfo> = metas
            .into_iter()
            .filter_map(|meta| {
                Some(ObjectInfo {
                    key: self.key_of(&meta.location)?,
                    size: meta.size,
                })
            })
            .collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// Deletes `key`; deleting a missing object is not an error.
    pub fn delete(&self, key: &str) -> Result<()> {
        match block_on(self.store.delete(&self.path(key))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::store("delete", key, e)),
        }
    }

    /// Removes what uploads cut short by a crash or `kill -9` left behind: in a folder, the
    /// staging files (`<name>#<n>`) of uploads that never completed. In cloud stores an
    /// uncompleted upload is invisible (the service expires its parts), so there is nothing to
    /// remove. Call it only while no writer is open on the destination. Returns the number of
    /// files removed.
    pub fn remove_abandoned_uploads(&self) -> Result<u64> {
        if self.scheme != Scheme::Local {
            return Ok(0);
        }
        let root = self.url.to_file_path().map_err(|()| Error::Destination {
            url: self.url.to_string(),
            reason: "not a local folder".into(),
        })?;
        let mut removed = 0;
        let mut folders = vec![root];
        while let Some(folder) = folders.pop() {
            let entries = std::fs::read_dir(&folder).map_err(|e| Error::Destination {
                url: self.url.to_string(),
                reason: format!("cannot list {}: {e}", folder.display()),
            })?;
            for entry in entries.flatten() {
                let path = entry.path();
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    folders.push(path);
                } else if is_staging_file(&entry.file_name().to_string_lossy()) {
                    std::fs::remove_file(&path).map_err(|e| Error::Destination {
                        url: self.url.to_string(),
                        reason: format!("cannot remove {}: {e}", path.display()),
                    })?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// Whether a file name is an upload's staging file in a folder store: `<name>#<digits>`.
fn is_staging_file(name: &str) -> bool {
    name.rsplit_once('#').is_some_and(|(stem, n)| {
        !stem.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
    })
}

/// A `cloud://bucket/` root URL extended with the prefix path, ending with `/`.
fn cloud_url(root: &Url, path: &str) -> Url {
    let mut url = root.clone();
    let trimmed = path.trim_matches('/');
    url.set_path(&if trimmed.is_empty() {
        "/".to_string()
    } else {
        format!("/{trimmed}/")
    });
    url
}

/// A streamed, atomic upload of one object, started by [`Destination::writer`].
///
/// Implements [`Write`]; the object exists only after [`finish`](ObjectWriter::finish).
/// Dropping an unfinished writer aborts the upload.
pub struct ObjectWriter {
    key: String,
    upload: Option<WriteMultipart>,
    written: u64,
}

impl ObjectWriter {
    /// The key being written.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Completes the upload, making the object visible; returns its size.
    pub fn finish(mut self) -> Result<u64> {
        let upload = self
            .upload
            .take()
            .expect("an unfinished writer holds its upload");
        block_on(upload.finish()).map_err(|e| Error::store("put", &self.key, e))?;
        Ok(self.written)
    }
}

impl Write for ObjectWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let upload = self
            .upload
            .as_mut()
            .expect("an unfinished writer holds its upload");
        block_on(upload.wait_for_capacity(PARTS_IN_FLIGHT)).map_err(std::io::Error::other)?;
        // A full part is uploaded by a task spawned on the lake's runtime.
        let _runtime = runtime().enter();
        upload.write(buf);
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take() {
            // Best effort: an abandoned multipart upload is also expired by the store.
            let _ = block_on(upload.abort());
        }
    }
}

mod cloud {
    //! Builders for the cloud back ends, each behind its feature.

    use super::*;

    #[cfg(not(all(feature = "azure", feature = "aws", feature = "gcp")))]
    fn not_built(url: &Url, feature: &str) -> Error {
        Error::Destination {
            url: url.to_string(),
            reason: format!("this build of Haven lacks the `{feature}` feature"),
        }
    }

    #[cfg(any(feature = "azure", feature = "aws", feature = "gcp"))]
    fn configure<B, K: std::str::FromStr>(
        url: &Url,
        mut builder: B,
        options: &BTreeMap<String, String>,
        with: impl Fn(B, K, &str) -> B,
    ) -> Result<B>
    where
        K::Err: std::fmt::Display,
    {
        for (key, value) in options {
            let parsed = key.parse::<K>().map_err(|e| Error::Destination {
                url: url.to_string(),
                reason: format!("unknown store option `{key}`: {e}"),
            })?;
            builder = with(builder, parsed, value);
        }
        Ok(builder)
    }

    #[cfg(any(feature = "azure", feature = "aws", feature = "gcp"))]
    fn bucket_url(url: &Url) -> String {
        let mut root = url.clone();
        root.set_path("");
        root.to_string()
    }

    #[cfg(any(feature = "azure", feature = "aws", feature = "gcp"))]
    fn build_error(url: &Url, e: object_store::Error) -> Error {
        Error::Destination {
            url: url.to_string(),
            reason: e.to_string(),
        }
    }

    #[cfg(feature = "azure")]
    pub(super) fn azure(
        url: &Url,
        options: &BTreeMap<String, String>,
    ) -> Result<Arc<dyn ObjectStore>> {
        use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
        let builder = MicrosoftAzureBuilder::from_env().with_url(bucket_url(url));
        let builder = configure(url, builder, options, |b, k: AzureConfigKey, v| {
            b.with_config(k, v)
        })?;
        Ok(Arc::new(builder.build().map_err(|e| build_error(url, e))?))
    }

    #[cfg(not(feature = "azure"))]
    pub(super) fn azure(url: &Url, _: &BTreeMap<String, String>) -> Result<Arc<dyn ObjectStore>> {
        Err(not_built(url, "azure"))
    }

    #[cfg(feature = "aws")]
    pub(super) fn s3(
        url: &Url,
        options: &BTreeMap<String, String>,
    ) -> Result<Arc<dyn ObjectStore>> {
        use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
        let builder = AmazonS3Builder::from_env().with_url(bucket_url(url));
        let builder = configure(url, builder, options, |b, k: AmazonS3ConfigKey, v| {
            b.with_config(k, v)
        })?;
        Ok(Arc::new(builder.build().map_err(|e| build_error(url, e))?))
    }

    #[cfg(not(feature = "aws"))]
    pub(super) fn s3(url: &Url, _: &BTreeMap<String, String>) -> Result<Arc<dyn ObjectStore>> {
        Err(not_built(url, "aws"))
    }

    #[cfg(feature = "gcp")]
    pub(super) fn gcs(
        url: &Url,
        options: &BTreeMap<String, String>,
    ) -> Result<Arc<dyn ObjectStore>> {
        use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
        let builder = GoogleCloudStorageBuilder::from_env().with_url(bucket_url(url));
        let builder = configure(url, builder, options, |b, k: GoogleConfigKey, v| {
            b.with_config(k, v)
        })?;
        Ok(Arc::new(builder.build().map_err(|e| build_error(url, e))?))
    }

    #[cfg(not(feature = "gcp"))]
    pub(super) fn gcs(url: &Url, _: &BTreeMap<String, String>) -> Result<Arc<dyn ObjectStore>> {
        Err(not_built(url, "gcp"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let dest = Destination::open(dir.path().join("lake").to_str().unwrap()).unwrap();
        assert_eq!(dest.scheme(), Scheme::Local);
        dest.put("a/run=1/x.txt", &b"hello"[..]).unwrap();
        let mut w = dest.writer("a/run=1/y.txt").unwrap();
        w.write_all(b"streamed").unwrap();
        assert!(
            dest.get("a/run=1/y.txt").unwrap().is_none(),
            "invisible before finish"
        );
        assert_eq!(w.finish().unwrap(), 8);
        assert_eq!(&dest.get("a/run=1/x.txt").unwrap().unwrap()[..], b"hello");
        let keys: Vec<_> = dest.list("a").unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(keys, ["a/run=1/x.txt", "a/run=1/y.txt"]);
        dest.delete("a/run=1/x.txt").unwrap();
        dest.delete("a/run=1/missing").unwrap();
        assert!(dest.get("a/run=1/x.txt").unwrap().is_none());
        assert!(dir.path().join("lake/a/run=1/y.txt").is_file());
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = Destination::open(dir.path().to_str().unwrap()).unwrap();
        let mut w = dest.writer("t/part.bin").unwrap();
        w.write_all(&[7; 1000]).unwrap();
        drop(w);
        assert!(dest.list("").unwrap().is_empty());
    }

    #[test]
    fn child_and_urls() {
        let dir = tempfile::tempdir().unwrap();
        let dest = Destination::open(dir.path().to_str().unwrap()).unwrap();
        let views = dest.child("views");
        views.put("patient/x", &b"1"[..]).unwrap();
        assert_eq!(dest.list("views").unwrap()[0].key, "views/patient/x");
        assert!(views.url().as_str().ends_with("/views/"));
        assert!(
            dest.url_of("delta/Patient")
                .as_str()
                .ends_with("/delta/Patient")
        );
    }

    #[test]
    fn unknown_scheme_and_missing_feature_are_clear() {
        let err = Destination::open("ftp://host/x").unwrap_err().to_string();
        assert!(err.contains("unsupported scheme"), "{err}");
        #[cfg(not(feature = "gcp"))]
        {
            let err = Destination::open("gs://bucket/x").unwrap_err().to_string();
            assert!(err.contains("`gcp` feature"), "{err}");
        }
    }
}
