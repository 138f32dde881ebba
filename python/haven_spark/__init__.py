"""Haven's FHIR de-identification on Apache Spark, Spark Connect and Sail.

``deidentify(spark, input, output, keys=..., preset=... | config=..., format=...)`` reads
FHIR NDJSON (``.ndjson`` and ``.ndjson.gz``), de-identifies every line with the engine and
rules of ``haven deid`` (a Microsoft anonymizer configuration, read unchanged, or a built-in
preset) through ``DataFrame.mapInArrow``, and writes NDJSON, Parquet or Delta partitioned by
resource type. It runs on classic Spark and on Spark Connect (Databricks serverless and
standard access mode, Sail), where there is no RDD API. Sorted, its output lines are byte for
byte those of ``haven deid`` on the same input, configuration and keys.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, Union
from urllib.parse import unquote, urlparse

from haven_spark._deid import Engine, __version__, preset, presets

__all__ = [
    "Engine",
    "InvalidRecord",
    "Report",
    "__version__",
    "deidentify",
    "preset",
    "presets",
]

#: The output formats of :func:`deidentify`.
FORMATS = ("ndjson", "parquet", "delta")

#: The save modes :func:`deidentify` accepts (Spark's names).
MODES = ("errorifexists", "overwrite", "append")

#: The Spark schema of the de-identified DataFrame (one row per input line).
OUTPUT_SCHEMA = "resource string, resourceType string, id string, error string"

#: How many error messages a report lists (all are counted).
ERRORS_LISTED = 20

#: Input files that hold no resources: a Bulk Data export's error log.
NOT_RESOURCES = ("log.ndjson",)

#: The engines of this worker process, by configuration and keys (compiled once per process).
_ENGINES: Dict[Any, Engine] = {}


class InvalidRecord(ValueError):
    """A record that is not valid FHIR R4 JSON; the message names its file and element path,
    never a value."""


@dataclass
class Report:
    """What a run wrote."""

    output: str
    format: str
    #: Resources in the output, by type (with ``mode="append"``, earlier runs' too).
    resources: Dict[str, int]
    #: Invalid records left out (``skip_invalid=True``).
    invalid: int
    #: The first :data:`ERRORS_LISTED` invalid records' errors.
    errors: List[str] = field(default_factory=list)
    #: A fingerprint of the keys, as ``haven deid`` reports it; never a key.
    key_id: Optional[str] = None
    #: The SHA-256 of the configuration's text.
    config_sha256: str = ""

    def to_json(self) -> str:
        """The report as a JSON object."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def deidentify(
    spark,
    input: str,
    output: str,
    *,
    keys: Mapping[str, str],
    preset: Optional[str] = None,
    config: Union[str, Mapping[str, Any], None] = None,
    format: str = "ndjson",
    mode: str = "errorifexists",
    skip_invalid: bool = False,
    compression: Optional[str] = None,
) -> Report:
    """De-identifies the FHIR NDJSON under ``input`` into ``output`` with ``spark``.

    ``input`` is a ``.ndjson`` or ``.ndjson.gz`` file or a folder searched recursively for
    them (hidden files, ``_``-prefixed files and a Bulk Data ``log.ndjson`` are skipped), as
    a path or URL the session can read. ``preset`` names a built-in configuration (default
    ``safe-harbor``); ``config`` is a Microsoft anonymizer configuration as a dict, JSON text
    or a path readable here. ``keys`` maps ``cryptoHashKey``, ``dateShiftKey`` and
    ``encryptKey`` to keys from a secret store: they travel inside the job's function, never
    in Spark configuration or SQL text, and a run whose rules need a key that is not given
    stops before reading anything. Date-shift scope ``file`` uses each line's file name and
    ``folder`` the last component of ``input`` (of its parent, for a file), as ``haven deid``.

    ``format`` is ``ndjson`` (``output/resourceType=T/part-*``, one resource per line,
    ``compression`` optional), ``parquet`` or ``delta`` (columns ``resourceType`` (the
    partition), ``id`` and ``resource``, the JSON text; Delta needs a platform that provides
    it). A record that is not valid FHIR R4 fails the job, naming its file and element path,
    and Spark's committer leaves no output; with ``skip_invalid=True`` it is left out and
    counted in the report.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if keys is None or not isinstance(keys, Mapping):
        raise ValueError(
            "keys must be a mapping of cryptoHashKey, dateShiftKey and encryptKey to keys "
            "from a secret store; a distributed run never generates keys"
        )
    config_text = _config_text(preset, config)
    keys = {str(name): str(key) for name, key in keys.items()}
    try:
        engine = Engine(config_text, keys)
    except ValueError as error:
        raise ValueError(
            f"{error} (pass the keys explicitly: every executor must use the same ones)"
        ) from None
    folder = _root_folder(input)
    lines = _read_lines(spark, input)
    mapped = lines.mapInArrow(
        _Deidentify(config_text, keys, folder, skip_invalid), OUTPUT_SCHEMA
    )
    if skip_invalid:
        mapped = _persisted(mapped)
    _write(mapped, output, format, mode, compression)
    invalid, errors = 0, []
    if skip_invalid:
        from pyspark.sql import functions as F

        failed = mapped.where(F.col("error").isNotNull())
        invalid = failed.count()
        errors = [row[0] for row in failed.select("error").limit(ERRORS_LISTED).collect()]
        _unpersist(mapped)
    return Report(
        output=output,
        format=format,
        resources=_counts(spark, output, format),
        invalid=invalid,
        errors=errors,
        key_id=engine.key_id,
        config_sha256=hashlib.sha256(config_text.encode("utf-8")).hexdigest(),
    )


def _config_text(preset_name: Optional[str], config: Union[str, Mapping, None]) -> str:
    """The configuration's JSON text from a preset name or a dict, JSON text or file."""
    if preset_name is not None and config is not None:
        raise ValueError("give preset or config, not both")
    if config is None:
        try:
            return preset(preset_name or "safe-harbor")
        except KeyError:
            names = ", ".join(name for name, _ in presets())
            raise ValueError(f"unknown preset {preset_name!r} (the presets are {names})") from None
    if isinstance(config, Mapping):
        return json.dumps(config)
    if config.lstrip().startswith("{"):
        return config
    with open(config, encoding="utf-8-sig") as file:
        return file.read()


def _is_file(input: str) -> bool:
    """Whether ``input`` names one NDJSON file rather than a folder."""
    name = posixpath.basename(input.rstrip("/"))
    return name.endswith(".ndjson") or name.endswith(".ndjson.gz")


def _root_folder(input: str) -> str:
    """The folder whose last component date-shift scope ``folder`` uses."""
    path = _local_path(input.rstrip("/"))
    return posixpath.dirname(path) if _is_file(input) else path


def _local_path(location: str) -> str:
    """A path from a location that may be a URL (``file:``, ``s3://``…), percent-decoded."""
    parsed = urlparse(location)
    if parsed.scheme and len(parsed.scheme) > 1:
        return unquote(parsed.path)
    return location


def _read_lines(spark, input: str):
    """A DataFrame of ``line`` and ``file`` (the source file of each line).

    The file comes from ``input_file_name()`` where the engine has it (Spark, Spark Connect);
    otherwise (Sail) the files are listed here with PyArrow and read one by one.
    """
    from pyspark.sql import functions as F

    def read(path: str, pattern: Optional[str]):
        reader = spark.read
        if pattern is not None:
            reader = reader.option("recursiveFileLookup", "true").option("pathGlobFilter", pattern)
        return reader.text(path)

    def with_file_names(frame):
        return frame.select(F.col("value").alias("line"), F.input_file_name().alias("file"))

    if _is_file(input):
        frames = [read(input, None)]
    else:
        # One read per compression: some engines refuse to mix them in one scan.
        frames = [read(input, "*.ndjson"), read(input, "*.ndjson.gz")]
    try:
        named = [with_file_names(frame) for frame in frames]
        for frame in named:
            frame.schema  # noqa: B018 (analyses the plan: raises where input_file_name is missing)
    except Exception as error:  # the engine's own exception types differ
        if "input_file_name" not in str(error):
            raise
        named = [
            read(path, None).select(F.col("value").alias("line"), F.lit(path).alias("file"))
            for path in _list_files(input)
        ]
        if not named:
            raise FileNotFoundError(f"no .ndjson or .ndjson.gz file under {input}") from None
    lines = named[0]
    for frame in named[1:]:
        lines = lines.unionByName(frame)
    skipped = F.lit(False)
    for name in NOT_RESOURCES:
        skipped = skipped | F.col("file").endswith("/" + name)
    return lines.where(~skipped)


def _list_files(input: str) -> List[str]:
    """The NDJSON files of ``input``, listed with PyArrow's file systems, in name order."""
    import pyarrow.fs as pafs

    if _is_file(input):
        return [input]
    is_url = "://" in input
    filesystem, root = pafs.FileSystem.from_uri(input if is_url else os.path.abspath(input))
    found = []
    for info in filesystem.get_file_info(pafs.FileSelector(root, recursive=True)):
        relative = posixpath.relpath(info.path, root)
        hidden = any(part.startswith((".", "_")) for part in relative.split("/"))
        if info.type != pafs.FileType.File or hidden or info.base_name in NOT_RESOURCES:
            continue
        if info.base_name.endswith((".ndjson", ".ndjson.gz")):
            found.append(input.rstrip("/") + "/" + relative if is_url else info.path)
    return sorted(found)


class _Deidentify:
    """The function ``mapInArrow`` runs on executors: batches of (line, file) in, batches of
    :data:`OUTPUT_SCHEMA` out. Picklable; it compiles its engine once per worker process."""

    def __init__(self, config: str, keys: Mapping[str, str], folder: str, skip_invalid: bool):
        self.config = config
        self.keys = dict(keys)
        self.folder = folder
        self.skip_invalid = skip_invalid

    def __repr__(self) -> str:
        return "haven_spark.deidentify"

    def engine(self) -> Engine:
        """This process's engine for the configuration and keys."""
        cache_key = (hashlib.sha256(self.config.encode()).digest(), tuple(sorted(self.keys.items())))
        engine = _ENGINES.get(cache_key)
        if engine is None:
            engine = _ENGINES[cache_key] = Engine(self.config, self.keys)
        return engine

    def __call__(self, batches: Iterator) -> Iterator:
        import pyarrow as pa

        engine = self.engine()
        for batch in batches:
            files = _decoded(batch.column(1))
            result = engine.deidentify(batch.column(0), files, self.folder)
            errors = result.column(3)
            if not self.skip_invalid and errors.null_count < len(errors):
                first = next(e for e in errors.to_pylist() if e is not None)
                raise InvalidRecord(
                    f"{first} (skip_invalid=True leaves invalid records out and counts them)"
                )
            yield pa.RecordBatch.from_arrays(result.columns, schema=result.schema)


def _decoded(files):
    """The file column with each distinct value turned from a URL into a decoded path."""
    import pyarrow as pa

    encoded = files.dictionary_encode()
    names = pa.array([_local_path(name) for name in encoded.dictionary.to_pylist()], pa.string())
    return pa.DictionaryArray.from_arrays(encoded.indices, names).dictionary_decode()


def _write(mapped, output: str, format: str, mode: str, compression: Optional[str]) -> None:
    """Writes the de-identified resources, partitioned by type."""
    from pyspark.sql import functions as F

    written = mapped.where(F.col("resource").isNotNull())
    if format == "ndjson":
        writer = (
            written.select(F.col("resource").alias("value"), "resourceType")
            .write.mode(mode)
            .partitionBy("resourceType")
        )
        if compression:
            writer = writer.option("compression", compression)
        writer.text(output)
        return
    writer = (
        written.select("resourceType", "id", "resource").write.mode(mode).partitionBy("resourceType")
    )
    if format == "parquet":
        writer.parquet(output)
    else:
        writer.format("delta").save(output)


def _counts(spark, output: str, format: str) -> Dict[str, int]:
    """The resources in the output by type, read back from its partitions."""
    reader = {
        "ndjson": lambda: spark.read.text(output),
        "parquet": lambda: spark.read.parquet(output),
        "delta": lambda: spark.read.format("delta").load(output),
    }[format]
    rows = reader().groupBy("resourceType").count().collect()
    return {row["resourceType"]: row["count"] for row in sorted(rows, key=lambda r: r[0])}


def _persisted(frame):
    """``frame`` cached for a second pass where the engine can (the de-identified output and
    errors, never the input)."""
    try:
        return frame.persist()
    except Exception:  # engines without caching recompute instead
        return frame


def _unpersist(frame) -> None:
    """Drops ``frame``'s cache, if any."""
    try:
        frame.unpersist()
    except Exception:  # engines without caching have nothing to drop
        pass
