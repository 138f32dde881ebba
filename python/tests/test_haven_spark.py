"""haven-spark on a real engine (``HAVEN_SPARK_ENGINE``): the sorted output equals the
single-machine ``haven deid`` output byte for byte, for every date-shift scope and format;
invalid records fail the job or are counted; keys are required."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import KEYS, SCOPES, config, haven, output_lines

import haven_spark

SECRET = "Jane-Secret-Value"
HASH_KEY_FRAGMENT = KEYS["cryptoHashKey"][:10]


@pytest.mark.parametrize("scope", SCOPES)
def test_ndjson_equals_haven_deid(spark, input_folder, reference, tmp_path, scope):
    out = tmp_path / "out"
    report = haven_spark.deidentify(
        spark, str(input_folder), str(out), keys=KEYS, config=config(scope), mode="overwrite"
    )
    assert output_lines(out) == reference[scope]
    partitions = {path.name for path in out.iterdir() if path.is_dir()}
    assert {"resourceType=Patient", "resourceType=Bundle", "resourceType=Condition"} <= partitions
    assert report.resources["Bundle"] == 2
    assert report.resources["Observation"] > 40
    assert sum(report.resources.values()) == len(reference[scope])
    assert report.invalid == 0 and report.errors == []
    assert report.format == "ndjson"
    assert len(report.key_id) == 16 and HASH_KEY_FRAGMENT not in report.to_json()


def test_single_file_input_uses_its_folder(spark, input_folder, tmp_path):
    source = input_folder / "extra" / "Observation.ndjson"
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config("folder")))
    haven("deid", "--config", str(config_path), str(source), str(tmp_path / "cli.ndjson"))
    out = tmp_path / "out"
    haven_spark.deidentify(
        spark, str(source), str(out), keys=KEYS, config=str(config_path), mode="overwrite"
    )
    expected = sorted((tmp_path / "cli.ndjson").read_text().splitlines())
    assert len(expected) == 40
    assert output_lines(out) == expected


def test_parquet_holds_the_same_resources(spark, input_folder, reference, tmp_path):
    out = tmp_path / "parquet"
    report = haven_spark.deidentify(
        spark,
        str(input_folder),
        str(out),
        keys=KEYS,
        config=json.dumps(config("folder")),
        format="parquet",
        mode="overwrite",
    )
    table = pq.read_table(out)
    assert sorted(table.column("resource").to_pylist()) == reference["folder"]
    for row in table.select(["resourceType", "id", "resource"]).to_pylist():
        resource = json.loads(row["resource"])
        assert (row["resourceType"], row["id"]) == (resource["resourceType"], resource.get("id"))
    assert sum(report.resources.values()) == table.num_rows


def test_delta(spark, engine_name, input_folder, reference, tmp_path):
    out = tmp_path / "delta"

    def run():
        return haven_spark.deidentify(
            spark,
            str(input_folder),
            str(out),
            keys=KEYS,
            config=config("file"),
            format="delta",
            mode="overwrite",
        )

    if not engine_name.startswith("sail"):
        # Spark's Delta comes from the platform (io.delta jars from Maven, not offline here).
        with pytest.raises(Exception, match="(?i)delta"):
            run()
        assert output_lines(out) == []
        return
    report = run()
    from deltalake import DeltaTable

    table = DeltaTable(str(out)).to_pyarrow_table()
    assert sorted(table.column("resource").to_pylist()) == reference["file"]
    assert (out / "_delta_log").is_dir()
    assert report.resources["Patient"] == table.filter(
        pa.compute.equal(table.column("resourceType"), "Patient")
    ).num_rows


@pytest.fixture
def bad_input(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    lines = [
        '{"resourceType":"Patient","id":"ok","name":[{"family":"Fine"}]}',
        '{"resourceType":"Patient","name":',
        '{"resourceType":"Patient","id":"x","secretField":"' + SECRET + '"}',
    ]
    (folder / "Patient.ndjson").write_text("\n".join(lines) + "\n")
    return folder


def test_an_invalid_record_fails_the_job_without_values(spark, engine_name, bad_input, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(Exception) as failure:
        haven_spark.deidentify(
            spark, str(bad_input), str(out), keys=KEYS, preset="safe-harbor", mode="overwrite"
        )
    message = str(failure.value)
    assert SECRET not in message
    if engine_name != "sail-cluster":
        # Sail 0.7's cluster mode retries the task and reports its own retry error instead.
        assert "Patient.ndjson" in message and "skip_invalid" in message
    assert not out.exists() or output_lines(out) == []


def test_skip_invalid_counts_and_leaves_out(spark, bad_input, tmp_path):
    out = tmp_path / "out"
    report = haven_spark.deidentify(
        spark,
        str(bad_input),
        str(out),
        keys=KEYS,
        preset="safe-harbor",
        mode="overwrite",
        skip_invalid=True,
    )
    haven("deid", "--skip-invalid", str(bad_input), str(tmp_path / "cli"), status=1)
    assert output_lines(out) == output_lines(tmp_path / "cli")
    assert report.resources == {"Patient": 1}
    assert report.invalid == 2 and len(report.errors) == 2
    assert all("Patient.ndjson" in error for error in report.errors)
    assert any("secretField" in error for error in report.errors)
    assert not any(SECRET in error for error in report.errors)


def test_keys_are_required_before_any_work(spark, input_folder, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="missing key"):
        haven_spark.deidentify(spark, str(input_folder), str(out), keys={}, preset="safe-harbor")
    with pytest.raises(ValueError, match="keys must be a mapping"):
        haven_spark.deidentify(spark, str(input_folder), str(out), keys=None)
    with pytest.raises(ValueError, match="unknown preset"):
        haven_spark.deidentify(spark, str(input_folder), str(out), keys=KEYS, preset="nope")
    assert not out.exists()
