"""Fixtures of the haven-spark tests: the engine under test, the input folder, and the
single-machine ``haven deid`` output to compare with.

Environment: ``HAVEN_BIN`` (the ``haven`` binary; required), ``HAVEN_SPARK_ENGINE`` (``spark``
for classic PySpark ``local[2]``, ``connect`` for Spark Connect ``local[2]``, ``sail`` for an
in-process Sail server, ``sail-cluster`` for Sail's local cluster mode, with driver and worker
actors apart; required for the engine tests).
"""

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HASH_KEY = "spark-hash-key-4Rv"
DATE_KEY = "spark-date-key-8Kp"
KEYS = {"cryptoHashKey": HASH_KEY, "dateShiftKey": DATE_KEY}
SCOPES = ("resource", "file", "folder")


def haven(*args: str, status: int = 0) -> str:
    """Runs the built ``haven`` with the test keys, expecting exit ``status``; returns
    standard error."""
    binary = os.environ.get("HAVEN_BIN")
    if not binary:
        pytest.fail("HAVEN_BIN must name the haven binary")
    env = dict(os.environ, HAVEN_CRYPTO_HASH_KEY=HASH_KEY, HAVEN_DATE_SHIFT_KEY=DATE_KEY)
    env.pop("HAVEN_ENCRYPT_KEY", None)
    done = subprocess.run([binary, *args], env=env, capture_output=True, text=True)
    assert done.returncode == status, f"haven {args[0]} exited {done.returncode}: {done.stderr}"
    return done.stderr


def config(scope: str) -> dict:
    """A Microsoft configuration that shifts dates in ``scope``, hashes ids and references
    and removes names."""
    return {
        "fhirVersion": "R4",
        "fhirPathRules": [
            {"path": "nodesByType('HumanName')", "method": "redact"},
            {"path": "nodesByType('date')", "method": "dateShift"},
            {"path": "nodesByType('dateTime')", "method": "dateShift"},
            {"path": "Resource.id", "method": "cryptoHash"},
            {"path": "nodesByType('Reference').reference", "method": "cryptoHash"},
        ],
        "parameters": {"dateShiftScope": scope},
    }


def observation(n: int) -> dict:
    """An Observation with a contained Patient."""
    return {
        "resourceType": "Observation",
        "id": f"obs-{n}",
        "status": "final",
        "code": {"text": "pulse"},
        "effectiveDateTime": f"2020-03-{n % 28 + 1:02}T10:00:00Z",
        "contained": [
            {
                "resourceType": "Patient",
                "id": "p",
                "birthDate": "1961-05-17",
                "name": [{"family": "Contained", "given": ["Only"]}],
            }
        ],
        "subject": {"reference": "#p"},
    }


def output_lines(root: Path) -> list:
    """Every line of every data file under ``root`` (gzip read through), sorted; Spark's
    ``_SUCCESS``, ``.crc`` and ``_delta_log`` files are left out."""
    lines = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).parts
        if not path.is_file() or any(p.startswith((".", "_")) for p in relative):
            continue
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        lines.extend(line for line in data.decode("utf-8").split("\n") if line.strip())
    return sorted(lines)


@pytest.fixture(scope="session")
def input_folder(tmp_path_factory) -> Path:
    """Synthetic NDJSON of 12 patients (one file gzipped), Observations with contained
    Patients (no final newline), a Bundle per line, a Bulk Data manifest and error log."""
    root = tmp_path_factory.mktemp("haven-spark")
    folder = root / "export"
    haven("synth", "--patients", "12", "--seed", "4", "--out", str(folder))
    shutil.rmtree(folder / "_truth")
    condition = next(folder.glob("Condition*.ndjson"))
    (folder / "Condition.ndjson.gz").write_bytes(gzip.compress(condition.read_bytes()))
    condition.unlink()
    extra = folder / "extra"
    extra.mkdir()
    lines = [json.dumps(observation(n)) for n in range(40)]
    (extra / "Observation.ndjson").write_text("\n".join(lines))
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:1", "resource": observation(99)},
            {
                "fullUrl": "urn:uuid:2",
                "resource": {
                    "resourceType": "Patient",
                    "id": "b1",
                    "birthDate": "1970-01-02",
                    "name": [{"family": "Bundled"}],
                },
            },
        ],
    }
    (extra / "Bundle.ndjson").write_text(json.dumps(bundle) + "\n\n" + json.dumps(bundle) + "\n")
    (folder / "log.ndjson").write_text('{"resourceType":"OperationOutcome","issue":[]}\n')
    return folder


@pytest.fixture(scope="session")
def reference(input_folder, tmp_path_factory):
    """``scope -> sorted lines`` of the single-machine ``haven deid`` run."""
    root = tmp_path_factory.mktemp("reference")
    lines = {}
    for scope in SCOPES:
        config_path = root / f"config-{scope}.json"
        config_path.write_text(json.dumps(config(scope)))
        out = root / scope
        haven("deid", "--config", str(config_path), str(input_folder), str(out))
        lines[scope] = output_lines(out)
    return lines


@pytest.fixture(scope="session")
def engine_name() -> str:
    name = os.environ.get("HAVEN_SPARK_ENGINE")
    if name not in ("spark", "connect", "sail", "sail-cluster"):
        pytest.fail("HAVEN_SPARK_ENGINE must be spark, connect, sail or sail-cluster")
    return name


@pytest.fixture(scope="session")
def spark(engine_name):
    """A session of the engine under test, on loopback with the UI off."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Python workers must import haven_spark: run them with this interpreter.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    settings = {
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "2",
        "spark.driver.memory": "1g",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
    }
    server = None
    if engine_name.startswith("sail"):
        from pysail.spark import SparkConnectServer

        os.environ["SAIL_MODE"] = "local-cluster" if engine_name == "sail-cluster" else "local"
        server = SparkConnectServer("127.0.0.1", 0)
        server.start()
        _, port = server.listening_address
        builder = SparkSession.builder.remote(f"sc://127.0.0.1:{port}")
    else:
        builder = SparkSession.builder
        builder = builder.master("local[2]") if engine_name == "spark" else builder.remote("local[2]")
        for name, value in settings.items():
            builder = builder.config(name, value)
    session = builder.getOrCreate()
    yield session
    session.stop()
    if server is not None:
        server.stop()
