//! The pipeline's configuration: a TOML file (`pipeline.toml`) or the equivalent flags.
//!
//! ```toml
//! [source]
//! server = "http://127.0.0.1:8080/fhir"   # a Bulk Data server …
//! # folder = "exports/2024-01-01"        # … or a folder of NDJSON files
//! level = "system"                        # system (default) | patient | group
//! # group = "covid-cohort"
//! # types = ["Patient", "Observation"]
//!
//! [deid]
//! preset = "safe-harbor"                  # or config = "my-anonymizer.json"
//! key_file = "haven-keys.json"
//! generate_keys = true
//!
//! [lake]
//! location = "./lake"                     # or az://container/prefix, s3://…, gs://…
//! formats = ["ndjson", "parquet", "delta"]
//! views = ["builtin", "views/my-view.json"]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// A whole pipeline: where data comes from, how it is de-identified, where it lands.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Where the resources come from.
    pub source: SourceConfig,
    /// How they are de-identified.
    #[serde(default)]
    pub deid: DeidConfig,
    /// Where they land.
    pub lake: LakeConfig,
    /// A local folder for the raw (identified) export while a run is under way; deleted when
    /// the run completes. Default: `$HAVEN_HOME/pipeline/<lake>` (or
    /// `~/.local/share/haven/pipeline/<lake>`). Never put it inside the lake.
    #[serde(default)]
    pub work_dir: Option<PathBuf>,
}

/// The source of a run.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// A Bulk Data server's base URL.
    #[serde(default)]
    pub server: Option<String>,
    /// A folder of NDJSON files (`<Type>*.ndjson[.gz]`, with an optional `manifest.json`).
    #[serde(default)]
    pub folder: Option<PathBuf>,
    /// The export level for a server source.
    #[serde(default)]
    pub level: ExportLevel,
    /// The Group id when `level = "group"`.
    #[serde(default)]
    pub group: Option<String>,
    /// The resource types to export (`_type`); all when empty.
    #[serde(default)]
    pub types: Vec<String>,
    /// `_typeFilter` queries (`Observation?category=laboratory`).
    #[serde(default)]
    pub type_filters: Vec<String>,
    /// An environment variable holding a bearer token for the server.
    #[serde(default)]
    pub token_env: Option<String>,
    /// SMART Backend Services credentials (instead of `token_env`).
    #[serde(default)]
    pub auth: Option<SmartConfig>,
}

/// SMART Backend Services credentials for a server source: a registered client id and its
/// private key (`haven keys generate`); tokens are fetched and refreshed as needed.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmartConfig {
    /// The client id the server registered.
    pub client_id: String,
    /// The private key file, PEM or JWK.
    pub key_file: PathBuf,
    /// The key id, when it is not the JWK's `kid` or the key's thumbprint.
    #[serde(default)]
    pub kid: Option<String>,
    /// The scopes to ask for (default: `system/*.read`).
    #[serde(default)]
    pub scope: Option<String>,
    /// The token endpoint (default: discovered from the server).
    #[serde(default)]
    pub token_url: Option<String>,
}

/// The Bulk Data export level.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ExportLevel {
    /// `[base]/$export`: every resource, including the Organizations, Practitioners,
    /// Locations and Medications that patients' resources refer to, so that every reference
    /// of the lake resolves. The default.
    #[default]
    System,
    /// `[base]/Patient/$export`: the Patient compartments only.
    Patient,
    /// `[base]/Group/[id]/$export`: the compartments of the group's patients.
    Group,
}

impl ExportLevel {
    /// The level's name: `system`, `patient` or `group`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportLevel::System => "system",
            ExportLevel::Patient => "patient",
            ExportLevel::Group => "group",
        }
    }
}

/// The de-identification step.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeidConfig {
    /// A built-in preset (`safe-harbor`, `research`, `limited-data-set`, `ms-sample`).
    #[serde(default)]
    pub preset: Option<String>,
    /// A Microsoft anonymizer configuration file (instead of a preset).
    #[serde(default)]
    pub config: Option<PathBuf>,
    /// The key file (read, and written with `generate_keys`).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Generate missing keys and store them in `key_file`.
    #[serde(default)]
    pub generate_keys: bool,
}

impl Default for DeidConfig {
    /// The `safe-harbor` preset, keys from the environment.
    fn default() -> Self {
        DeidConfig {
            preset: Some("safe-harbor".to_owned()),
            config: None,
            key_file: None,
            generate_keys: false,
        }
    }
}

/// The lake.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    /// A folder or `az://`, `s3://`, `gs://` URL.
    pub location: String,
    /// `object_store` options (credentials, endpoints), e.g. `azure_storage_account_name`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// The formats written: `ndjson`, `parquet`, `delta`.
    #[serde(default = "default_formats")]
    pub formats: Vec<String>,
    /// The analyst views: `builtin` for Haven's COVID-19 views, or ViewDefinition JSON files.
    #[serde(default = "default_views")]
    pub views: Vec<String>,
}

fn default_formats() -> Vec<String> {
    let mut formats = vec!["ndjson".to_owned(), "parquet".to_owned()];
    if cfg!(feature = "delta") {
        formats.push("delta".to_owned());
    }
    formats
}

fn default_views() -> Vec<String> {
    vec!["builtin".to_owned()]
}

impl PipelineConfig {
    /// Reads a `pipeline.toml`; relative paths in it are taken from the file's folder.
    pub fn from_file(path: &Path) -> Result<PipelineConfig> {
        let text = std::fs::read_to_string(path).map_err(|error| Error::Config {
            file: path.display().to_string(),
            reason: error.to_string(),
        })?;
        let mut config = PipelineConfig::from_toml(&text).map_err(|error| match error {
            Error::Config { reason, .. } => Error::Config {
                file: path.display().to_string(),
                reason,
            },
            other => other,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_relative(base);
        Ok(config)
    }

    /// Parses TOML text and checks it.
    pub fn from_toml(text: &str) -> Result<PipelineConfig> {
        let config: PipelineConfig = toml::from_str(text).map_err(|error| Error::Config {
            file: "pipeline configuration".to_owned(),
            reason: error.message().to_owned()
                + &error
                    .span()
                    .map(|span| format!(" (at byte {})", span.start))
                    .unwrap_or_default(),
        })?;
        config.check()?;
        Ok(config)
    }

    /// Checks the combinations serde cannot: one source, one de-identification, known formats.
    pub fn check(&self) -> Result<()> {
        let invalid = |reason: &str| {
            Err(Error::Config {
                file: "pipeline configuration".to_owned(),
                reason: reason.to_owned(),
            })
        };
        match (&self.source.server, &self.source.folder) {
            (Some(_), Some(_)) => return invalid("[source] takes `server` or `folder`, not both"),
            (None, None) => return invalid("[source] needs `server` or `folder`"),
            _ => {}
        }
        if self.source.auth.is_some() && self.source.token_env.is_some() {
            return invalid("[source] takes `token_env` or `[source.auth]`, not both");
        }
        if self.source.level == ExportLevel::Group && self.source.group.is_none() {
            return invalid("[source] level = \"group\" needs `group`");
        }
        if self.deid.preset.is_some() && self.deid.config.is_some() {
            return invalid("[deid] takes `preset` or `config`, not both");
        }
        if self.deid.preset.is_none() && self.deid.config.is_none() {
            return invalid("[deid] needs `preset` or `config`");
        }
        for format in &self.lake.formats {
            if !["ndjson", "parquet", "delta"].contains(&format.as_str()) {
                return invalid(&format!(
                    "[lake] unknown format `{format}` (expected ndjson, parquet or delta)"
                ));
            }
        }
        if self.lake.formats.is_empty() {
            return invalid("[lake] formats is empty");
        }
        Ok(())
    }

    fn resolve_relative(&mut self, base: &Path) {
        let join = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        };
        if let Some(folder) = &mut self.source.folder {
            join(folder);
        }
        if let Some(auth) = &mut self.source.auth {
            join(&mut auth.key_file);
        }
        if let Some(config) = &mut self.deid.config {
            join(config);
        }
        if let Some(key_file) = &mut self.deid.key_file {
            join(key_file);
        }
        if let Some(work) = &mut self.work_dir {
            join(work);
        }
        if !self.lake.location.contains("://") && Path::new(&self.lake.location).is_relative() {
            self.lake.location = base.join(&self.lake.location).display().to_string();
        }
        for view in &mut self.lake.views {
            if view != "builtin" && Path::new(view.as_str()).is_relative() {
                *view = base.join(view.as_str()).display().to_string();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_server_pipeline() {
        let config = PipelineConfig::from_toml(
            r#"
            [source]
            server = "http://localhost:8080/fhir"
            level = "group"
            group = "g1"
            types = ["Patient"]
            [deid]
            preset = "safe-harbor"
            [lake]
            location = "az://lake/covid"
            formats = ["parquet"]
            "#,
        )
        .unwrap();
        assert_eq!(config.source.level, ExportLevel::Group);
        assert_eq!(config.source.group.as_deref(), Some("g1"));
        assert_eq!(config.lake.formats, ["parquet"]);
        assert_eq!(config.lake.views, ["builtin"]);
    }

    #[test]
    fn rejects_two_sources_and_unknown_keys() {
        let both = PipelineConfig::from_toml(
            "[source]\nserver = \"http://x\"\nfolder = \"f\"\n[lake]\nlocation = \"l\"\n",
        );
        assert!(both.unwrap_err().to_string().contains("not both"));
        let unknown = PipelineConfig::from_toml(
            "[source]\nfolder = \"f\"\nsevrer = 1\n[lake]\nlocation = \"l\"\n",
        );
        assert!(unknown.unwrap_err().to_string().contains("sevrer"));
        let format = PipelineConfig::from_toml(
            "[source]\nfolder = \"f\"\n[lake]\nlocation = \"l\"\nformats = [\"csv\"]\n",
        );
        assert!(format.unwrap_err().to_string().contains("csv"));
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pipeline.toml");
        std::fs::write(
            &file,
            "[source]\nfolder = \"in\"\n[deid]\npreset = \"safe-harbor\"\nkey_file = \"k.json\"\n[lake]\nlocation = \"lake\"\n",
        )
        .unwrap();
        let config = PipelineConfig::from_file(&file).unwrap();
        assert_eq!(config.source.folder.unwrap(), dir.path().join("in"));
        assert_eq!(config.deid.key_file.unwrap(), dir.path().join("k.json"));
        assert_eq!(
            config.lake.location,
            dir.path().join("lake").display().to_string()
        );
    }
}
