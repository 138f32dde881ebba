//! The Python module `haven_spark._deid`: [`Deidentifier`] over PyArrow arrays.

use std::collections::BTreeMap;

use arrow_array::{RecordBatch, make_array};
use arrow_data::ArrayData;
use arrow_pyarrow::{FromPyArrow, PyArrowType};
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::batch::{Deidentifier, Files};

/// A compiled configuration with its keys. `Engine(config, keys)`: `config` is the JSON text of
/// a Microsoft anonymizer configuration or a preset, `keys` a dict with any of
/// `cryptoHashKey`, `dateShiftKey` and `encryptKey`. Raises `ValueError` for a bad
/// configuration or a key the rules need and that is missing.
#[pyclass(frozen, name = "Engine", module = "haven_spark._deid")]
struct PyEngine {
    inner: Deidentifier,
}

#[pymethods]
impl PyEngine {
    #[new]
    #[pyo3(signature = (config, keys = None))]
    fn new(config: &str, keys: Option<BTreeMap<String, String>>) -> PyResult<PyEngine> {
        let keys = keys.unwrap_or_default();
        let pairs = keys.iter().map(|(name, key)| (name.as_str(), key.as_str()));
        Deidentifier::new(config, pairs)
            .map(|inner| PyEngine { inner })
            .map_err(PyValueError::new_err)
    }

    /// A fingerprint of the keys (16 hexadecimal characters), or None without keys.
    #[getter]
    fn key_id(&self) -> Option<String> {
        self.inner.key_id().map(str::to_owned)
    }

    /// De-identifies a PyArrow string array of NDJSON lines. `files` is the source file of
    /// every line (a str) or of each line (a string array); `folder` the root input folder.
    /// Returns a RecordBatch with the columns resource, resourceType, id and error; a bad
    /// record fills `error` (file and element path, never a value) and never raises.
    #[pyo3(signature = (lines, files = None, folder = None))]
    fn deidentify(
        &self,
        py: Python<'_>,
        lines: PyArrowType<ArrayData>,
        files: Option<&Bound<'_, PyAny>>,
        folder: Option<String>,
    ) -> PyResult<PyArrowType<RecordBatch>> {
        let lines = make_array(lines.0);
        let (file, per_line) = match files {
            None => (None, None),
            Some(files) if files.is_instance_of::<PyString>() => {
                (Some(files.extract::<String>()?), None)
            }
            Some(files) => (
                None,
                Some(make_array(ArrayData::from_pyarrow_bound(files)?)),
            ),
        };
        let files = match &per_line {
            Some(array) => Files::PerLine(array.as_ref()),
            None => Files::Same(file.as_deref()),
        };
        py.detach(|| {
            self.inner
                .deidentify(lines.as_ref(), files, folder.as_deref())
        })
        .map(PyArrowType)
        .map_err(PyValueError::new_err)
    }
}

/// The text of a built-in preset (a Microsoft anonymizer configuration); KeyError if unknown.
#[pyfunction]
fn preset(name: &str) -> PyResult<&'static str> {
    deid::presets::preset(name).ok_or_else(|| PyKeyError::new_err(name.to_owned()))
}

/// The built-in presets as (name, description) pairs.
#[pyfunction]
fn presets() -> Vec<(&'static str, &'static str)> {
    deid::presets::presets()
}

/// The native part of `haven_spark`.
#[pymodule]
fn _deid(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<PyEngine>()?;
    module.add_function(wrap_pyfunction!(preset, module)?)?;
    module.add_function(wrap_pyfunction!(presets, module)?)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
