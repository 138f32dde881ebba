"""The native module alone (no Spark): one batch call, errors in a column, keys checked."""

import pyarrow as pa
import pytest
from conftest import KEYS

import haven_spark
from haven_spark import Engine

PATIENT = '{"resourceType":"Patient","id":"p1","name":[{"family":"Doe"}],"birthDate":"1950-02-03"}'


def test_a_batch_gives_a_row_per_line():
    engine = Engine(haven_spark.preset("safe-harbor"), KEYS)
    lines = pa.array([PATIENT, None, "", '{"resourceType":"Patient","x":"Secret-1"}', "{"])
    batch = engine.deidentify(lines, "Patient.ndjson", "/export")
    assert batch.schema.names == ["resource", "resourceType", "id", "error"]
    rows = batch.to_pylist()
    assert rows[0]["resourceType"] == "Patient" and rows[0]["error"] is None
    assert "Doe" not in rows[0]["resource"] and rows[0]["id"] != "p1"
    assert rows[1] == rows[2] == {"resource": None, "resourceType": None, "id": None, "error": None}
    assert rows[3]["resource"] is None and rows[3]["error"].startswith("Patient.ndjson: ")
    assert "Secret-1" not in rows[3]["error"]
    assert "JSON" in rows[4]["error"]


def test_large_strings_and_per_line_files():
    engine = Engine(haven_spark.preset("safe-harbor"), KEYS)
    lines = pa.array([PATIENT, PATIENT], pa.large_string())
    files = pa.array(["a/Patient.ndjson", "b/Patient.ndjson"], pa.large_string())
    rows = engine.deidentify(lines, files).to_pylist()
    assert rows[0]["resource"] is not None and rows[0]["error"] is None
    with pytest.raises(ValueError, match="files has 1 rows and lines has 2"):
        engine.deidentify(lines, pa.array(["a"]))
    with pytest.raises(ValueError, match="lines must be a string array"):
        engine.deidentify(pa.array([1, 2]))


def test_keys_and_presets():
    with pytest.raises(ValueError, match="missing key"):
        Engine(haven_spark.preset("safe-harbor"), {})
    with pytest.raises(ValueError, match="unknown key"):
        Engine(haven_spark.preset("safe-harbor"), dict(KEYS, pepper="x"))
    with pytest.raises(KeyError):
        haven_spark.preset("nope")
    assert "safe-harbor" in dict(haven_spark.presets())
    key_id = Engine(haven_spark.preset("safe-harbor"), KEYS).key_id
    assert len(key_id) == 16 and KEYS["cryptoHashKey"] not in key_id
