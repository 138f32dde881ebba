//! `haven fhirpath EXPRESSION FILE`: evaluates a FHIRPath expression on a resource, a Bundle or
//! every line of an NDJSON file, and prints each selected item with its location and type.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use fhirpath::{Environment, Expression, Item};
use flate2::bufread::MultiGzDecoder;

/// The long help of `haven fhirpath`.
const LONG_ABOUT: &str = "\
Evaluate a FHIRPath expression on FHIR resources and print what it selects, with where.

FILE is a resource or a Bundle in JSON (`.json`), an NDJSON file with one resource per line
(`.ndjson`, `.ndjson.gz`), or `-` for standard input. Gzip is recognised by its content. Input
whose name says neither is read as NDJSON when its first line is a whole JSON value, else as
one JSON document.

Each result prints on one line as LOCATION<TAB>TYPE<TAB>VALUE, for example

    /name/0/given/1\tFHIR.string\tPeter

LOCATION is a JSON Pointer into the resource (`-` for a value the expression computed, such as
a count), TYPE is the FHIRPath type (`FHIR.HumanName`, `System.Boolean`, `-` when unknown), and VALUE is the
FHIRPath string form of a primitive or the compact JSON of a complex element (tabs and line
breaks written as \\t, \\n, \\r). For NDJSON input each line starts with the input's line
number and a tab. With --json, each result is one JSON object instead:
{\"line\": 3, \"location\": \"/name/0\", \"type\": \"FHIR.HumanName\", \"value\": {…}} (`line` only for
NDJSON, `location` null for computed values, `value` exactly as in the input).";

/// The exit status table shown after the help, as `grep` documents its own.
const EXIT_STATUS: &str = "\
Exit status:
  0  the expression selected at least one item
  1  the expression selected nothing
  2  an error: invalid expression, unreadable file, invalid JSON, failed evaluation";

/// Evaluate a FHIRPath expression on FHIR resources and print what it selects, with where.
#[derive(Debug, clap::Args)]
#[command(long_about = LONG_ABOUT, after_help = EXIT_STATUS)]
pub struct Args {
    /// The FHIRPath expression, for example `Patient.name.given`.
    pub expression: String,
    /// The input: a `.json` resource or Bundle, an `.ndjson` / `.ndjson.gz` file, or `-` for
    /// standard input.
    pub file: PathBuf,
    /// Print one JSON object per result instead of tab-separated text.
    #[arg(long)]
    pub json: bool,
    /// Read the input as NDJSON (one resource per line), whatever its name.
    #[arg(long)]
    pub ndjson: bool,
    /// For a Bundle, evaluate on each entry's resource (with the Bundle as %rootResource)
    /// instead of on the Bundle itself; locations still point into the Bundle.
    #[arg(long)]
    pub entries: bool,
}

/// Evaluates `args.expression` on `args.file` and prints the results. Exits 0 when something
/// was selected and 1 when nothing was.
pub fn run(args: &Args) -> Result<ExitCode> {
    let expression = compile(&args.expression)?;
    let name = if args.file.as_os_str() == "-" {
        "<stdin>".to_string()
    } else {
        args.file.display().to_string()
    };
    let raw: Box<dyn Read> = if args.file.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(&args.file).with_context(|| format!("cannot read {name}"))?)
    };
    let reader = decompress(BufReader::new(raw)).with_context(|| format!("cannot read {name}"))?;
    let (ndjson, mut reader) = match format_from_name(&name) {
        _ if args.ndjson => (true, reader),
        Some(ndjson) => (ndjson, reader),
        None => sniff_ndjson(reader).with_context(|| format!("cannot read {name}"))?,
    };

    let mut printer = Printer {
        out: BufWriter::new(io::stdout().lock()),
        json: args.json,
        found: 0,
    };
    let context = Evaluation {
        expression: &expression,
        entries: args.entries,
        name: &name,
    };
    if ndjson {
        let mut buf = Vec::new();
        let mut line = 0usize;
        loop {
            buf.clear();
            line += 1;
            let read = reader
                .read_until(b'\n', &mut buf)
                .with_context(|| format!("cannot read {name} at line {line}"))?;
            if read == 0 {
                break;
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let resource = parse_json(&buf, &name, Some(line))?;
            context.evaluate(&resource, Some(line), &mut printer)?;
        }
    } else {
        let mut buf = Vec::new();
        reader
            .read_to_end(&mut buf)
            .with_context(|| format!("cannot read {name}"))?;
        let resource = parse_json(&buf, &name, None)?;
        context.evaluate(&resource, None, &mut printer)?;
    }
    printer.out.flush()?;
    Ok(if printer.found > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Compiles the expression; a syntax error shows the expression with a caret under the fault.
fn compile(source: &str) -> Result<Expression> {
    Expression::parse(source).map_err(|error| {
        let mut message = format!("invalid FHIRPath expression: {error}");
        if let fhirpath::Error::Syntax { position, .. } = &error
            && !source.contains('\n')
        {
            message.push_str(&format!("\n  {source}\n  {}^", " ".repeat(*position)));
        }
        anyhow!(message)
    })
}

/// Wraps the input in a gzip decoder when it starts with the gzip magic bytes.
fn decompress(mut reader: BufReader<Box<dyn Read>>) -> io::Result<Box<dyn BufRead>> {
    let gzip = reader.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gzip {
        Box::new(BufReader::new(MultiGzDecoder::new(reader)))
    } else {
        Box::new(reader)
    })
}

/// Whether a file's name says NDJSON (`Some(true)`), JSON (`Some(false)`) or neither.
fn format_from_name(name: &str) -> Option<bool> {
    let name = name.strip_suffix(".gz").unwrap_or(name);
    if name.ends_with(".ndjson") || name.ends_with(".jsonl") {
        Some(true)
    } else if name.ends_with(".json") {
        Some(false)
    } else {
        None
    }
}

/// Guesses the format of unnamed input: NDJSON when its first non-blank line is a whole JSON
/// value. Returns the reader with the bytes it looked at put back in front.
fn sniff_ndjson(mut reader: Box<dyn BufRead>) -> io::Result<(bool, Box<dyn BufRead>)> {
    let mut head = Vec::new();
    let ndjson = loop {
        let start = head.len();
        if reader.read_until(b'\n', &mut head)? == 0 {
            break false;
        }
        let line = &head[start..];
        if !line.iter().all(u8::is_ascii_whitespace) {
            break serde_json::from_slice::<serde_json::Value>(line).is_ok();
        }
    };
    Ok((ndjson, Box::new(io::Cursor::new(head).chain(reader))))
}

/// Parses one JSON document; the error names the file, line and column, never the content.
fn parse_json(bytes: &[u8], name: &str, line: Option<usize>) -> Result<serde_json::Value> {
    serde_json::from_slice(bytes).map_err(|error| {
        let what = match error.classify() {
            serde_json::error::Category::Eof => "unexpected end of input",
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax | serde_json::error::Category::Data => {
                "syntax error"
            }
        };
        let line = line.unwrap_or(error.line());
        anyhow!(
            "{name}:{line}: invalid JSON ({what} at column {})",
            error.column()
        )
    })
}

/// What to evaluate, and where the input came from (for error messages).
struct Evaluation<'e> {
    expression: &'e Expression,
    entries: bool,
    name: &'e str,
}

impl Evaluation<'_> {
    /// Evaluates on one document (or each of its Bundle entries) and prints the results.
    fn evaluate(
        &self,
        resource: &serde_json::Value,
        line: Option<usize>,
        printer: &mut Printer<impl Write>,
    ) -> Result<()> {
        let at = match line {
            Some(line) => format!("{}:{line}", self.name),
            None => self.name.to_string(),
        };
        let failed = |error| anyhow!("{at}: cannot evaluate the expression: {error}");
        let is_bundle = resource.get("resourceType").and_then(|t| t.as_str()) == Some("Bundle");
        if !(self.entries && is_bundle) {
            let items = self.expression.evaluate(resource).map_err(failed)?;
            return printer.print(&items, line, "");
        }
        let entries = resource.get("entry").and_then(|e| e.as_array());
        for (index, entry) in entries.into_iter().flatten().enumerate() {
            let Some(inner) = entry.get("resource") else {
                continue;
            };
            let env = Environment::new()
                .with_resource(inner)
                .with_root_resource(resource);
            let items = self
                .expression
                .evaluate_with(inner, &env)
                .map_err(|error| {
                    anyhow!("{at}: entry {index}: cannot evaluate the expression: {error}")
                })?;
            printer.print(&items, line, &format!("/entry/{index}/resource"))?;
        }
        Ok(())
    }
}

/// Writes results as text or JSON lines and counts them.
struct Printer<W: Write> {
    out: W,
    json: bool,
    found: usize,
}

impl<W: Write> Printer<W> {
    /// Prints items; `prefix` is the location of the evaluated resource within the document.
    fn print(&mut self, items: &[Item<'_>], line: Option<usize>, prefix: &str) -> Result<()> {
        for item in items {
            self.found += 1;
            let location = item.location().map(|l| format!("{prefix}{l}"));
            let type_name = match item.type_name() {
                (_, "") => None,
                (namespace, name) => Some(format!("{namespace}.{name}")),
            };
            if self.json {
                let mut object = serde_json::Map::new();
                if let Some(line) = line {
                    object.insert("line".into(), line.into());
                }
                object.insert("location".into(), location.into());
                object.insert("type".into(), type_name.into());
                object.insert("value".into(), json_value(item));
                writeln!(self.out, "{}", serde_json::Value::Object(object))?;
            } else {
                if let Some(line) = line {
                    write!(self.out, "{line}\t")?;
                }
                writeln!(
                    self.out,
                    "{}\t{}\t{}",
                    location.as_deref().unwrap_or("-"),
                    type_name.as_deref().unwrap_or("-"),
                    escape(&item.to_string())
                )?;
            }
        }
        Ok(())
    }
}

/// The JSON of an item: a node exactly as in the input; a computed value as a JSON boolean,
/// number or (for dates, times and quantities) its string form.
fn json_value(item: &Item<'_>) -> serde_json::Value {
    if let Some(json) = item.json() {
        return json.clone();
    }
    match item.to_value() {
        Some(fhirpath::Value::Boolean(b)) => b.into(),
        Some(fhirpath::Value::Integer(i)) => i.into(),
        Some(fhirpath::Value::Decimal(d)) => {
            serde_json::from_str(&d.to_string()).unwrap_or_else(|_| d.to_string().into())
        }
        Some(other) => other.to_string().into(),
        None if item.location().is_some() => serde_json::Value::Null,
        None => item.to_string().into(),
    }
}

/// Keeps one result on one line: tabs and line breaks are written as `\t`, `\n`, `\r`.
fn escape(text: &str) -> String {
    text.replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}
