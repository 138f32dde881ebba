//! The generalize vectors of the original's `GeneralizeProcessorTests` (inputs, cases and
//! expected outputs), run through Haven's FHIRPath engine.

use deid::config::OtherValues;
use deid::methods::generalize::{Cases, Generalized, generalize};
use fhirpath::Expression;
use serde_json::{Value, json};

fn cases(json_cases: &str, other: &str) -> Result<Cases, String> {
    let map: serde_json::Map<String, Value> = serde_json::from_str(json_cases).unwrap();
    let compile = |t: &str| Expression::parse(t).map_err(|e| e.to_string());
    Ok(Cases {
        cases: map
            .iter()
            .map(|(k, v)| Ok((compile(k)?, compile(v.as_str().unwrap())?)))
            .collect::<Result<Vec<_>, String>>()?,
        other_values: if other.eq_ignore_ascii_case("keep") {
            OtherValues::Keep
        } else {
            OtherValues::Redact
        },
    })
}

/// The value after generalization (`None` when removed), or an error.
fn run(
    value: Value,
    ty: &'static str,
    json_cases: &str,
    other: &str,
) -> Result<Option<Value>, String> {
    let cases = cases(json_cases, other)?;
    let resource = json!({"resourceType": "Basic"});
    match generalize(&value, ty, &cases, &resource).map_err(|e| e.to_string())? {
        Generalized::Replace(v) => Ok(Some(v)),
        Generalized::Remove => Ok(None),
        Generalized::Unchanged => Ok(Some(value)),
    }
}

/// Expected output as text (numbers by value), `None` for removed.
fn text(v: &Option<Value>) -> Option<String> {
    v.as_ref().map(|v| match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string().parse::<f64>().unwrap().to_string(),
        other => other.to_string(),
    })
}

struct Table {
    failures: Vec<String>,
    total: usize,
}

impl Table {
    fn check(
        &mut self,
        label: &str,
        value: Value,
        ty: &'static str,
        cases: &str,
        other: &str,
        expected: Option<&str>,
    ) {
        self.total += 1;
        let input = value.to_string();
        match run(value, ty, cases, other) {
            Ok(got) if text(&got).as_deref() == expected => {}
            Ok(got) => self.failures.push(format!(
                "{label} {input} ({other}): got {:?}, expected {expected:?}",
                text(&got)
            )),
            Err(e) => self
                .failures
                .push(format!("{label} {input} ({other}): error {e}")),
        }
    }

    fn check_error(&mut self, label: &str, value: Value, ty: &'static str, cases: &str) {
        self.total += 1;
        if let Ok(got) = run(value.clone(), ty, cases, "redact") {
            self.failures.push(format!(
                "{label} {value}: expected an error, got {:?}",
                text(&got)
            ));
        }
    }
}

#[test]
fn generalize_vectors() {
    let mut t = Table {
        failures: Vec::new(),
        total: 0,
    };
    let range = r#"{"$this>=0 and $this<20":"20", "$this>=20 and $this<40":"40", "$this>=40 and $this<60":"60", "$this>=60 and $this<80":"80"}"#;
    for (v, e, o) in [
        (5, Some("20"), "redact"),
        (20, Some("40"), "redact"),
        (43, Some("60"), "redact"),
        (78, Some("80"), "redact"),
        (110, None, "redact"),
        (110, Some("110"), "keep"),
    ] {
        t.check("integer range", json!(v), "integer", range, o, e);
    }
    let approx = r#"{"$this>=-20 and $this<80":"($this div 10 -1)*10 "}"#;
    for (v, ty, e, o) in [
        (5, "integer", Some("-10"), "redact"),
        (20, "integer", Some("10"), "redact"),
        (43, "integer", Some("30"), "redact"),
        (78, "integer", Some("60"), "redact"),
        (110, "integer", None, "redact"),
        (110, "integer", Some("110"), "keep"),
        (24, "positiveInt", Some("10"), "redact"),
        (24, "unsignedInt", Some("10"), "redact"),
    ] {
        t.check("integer approximate", json!(v), ty, approx, o, e);
    }
    t.check(
        "integer/decimal",
        json!(5),
        "integer",
        r#"{"$this>=0 and $this<20":"$this / 2"}"#,
        "redact",
        Some("2.5"),
    );
    t.check(
        "integer/decimal",
        json!(5),
        "integer",
        r#"{"$this<5.5":"$this"}"#,
        "redact",
        Some("5"),
    );
    let value_set = r#"{"$this in ('en-AU' | 'en-CA' | 'en-GB' | 'en-IN' | 'en-NZ' | 'en-SG' | 'en-US')": "'en'","('es-AR' | 'es-ES' | 'es-UY') contains $this": "'es'" }"#;
    for (v, e) in [
        ("en-AU", Some("en")),
        ("en-CA", Some("en")),
        ("en-CI", None),
        ("es-AR", Some("es")),
        ("es-ES", Some("es")),
    ] {
        t.check(
            "string value set",
            json!(v),
            "string",
            value_set,
            "redact",
            e,
        );
    }
    let mask =
        r#"{"$this.startsWith('123') or $this.endsWith('234')": "$this.substring(0,3)+'****'" }"#;
    for (v, e, o) in [
        ("1230005", Some("123****"), "redact"),
        ("1238765", Some("123****"), "redact"),
        ("2345234", Some("234****"), "redact"),
        ("1111111", None, "redact"),
        ("7654321", Some("7654321"), "keep"),
    ] {
        t.check("string mask", json!(v), "string", mask, o, e);
    }
    let dates = r#"{"$this >= @1990-01-01 and $this < @2000-01-01": "@1990", "$this = @2010" :"@2010-01-01","$this ~ @2020":"@2020-01-01" }"#;
    for (v, e, o) in [
        ("1990-01-01", Some("1990"), "redact"),
        ("2000-01-01", None, "redact"),
        ("1990", Some("1990"), "redact"),
        ("2000", Some("1990"), "redact"),
        ("2010", Some("2010-01-01"), "redact"),
        ("2010-01-01", Some("2010-01-01"), "redact"),
        ("2010-01-02", Some("2010-01-01"), "redact"),
        ("2020", Some("2020-01-01"), "redact"),
        ("2020-01-01", None, "redact"),
        ("2020-05-20", None, "redact"),
        ("2021-05-20", Some("2021-05-20"), "keep"),
    ] {
        t.check("date range", json!(v), "date", dates, o, e);
    }
    let date_times = r#"{"$this >= @1990-01-01T00:00:00Z and $this <= @2000-01-01T00:00:00+08:00": "@1990", "$this = @2010-01-01T00:00:00+08:00" :"@2010-01-01","$this ~ @2020-01-01T00:00:00":"@2020-01-01" }"#;
    for (v, e) in [
        ("1990-01-01T00:00:00Z", Some("1990")),
        ("1990-01-01T00:00:00+08:00", None),
        ("1990-01-01", Some("1990")),
        ("1990-01", Some("1990")),
        ("2000-01-01T00:00:00Z", None),
        ("2000-01-01T00:00:00+08:00", Some("1990")),
        ("2000-01-01T00:00:00+09:00", Some("1990")),
        ("2000-01-01T00:00:00-09:00", None),
        ("2010-01-01", None),
        ("2010-01-01T00:00:00Z", None),
        ("2010-01-01T00:00:00+08:00", Some("2010-01-01")),
        ("2010-01-01T00:00:00+09:00", None),
        ("2009-12-31T16:00:00Z", Some("2010-01-01")),
        ("2020-01-01T00:00:00", Some("2020-01-01")),
        ("2020-01-01T00:00:00+08:00", None),
        ("2020-01-01", None),
    ] {
        t.check(
            "dateTime range",
            json!(v),
            "dateTime",
            date_times,
            "redact",
            e,
        );
    }
    let times = r#"{"$this >= @T13:45:02 and $this < @T23:45:02": "@T12:00:00", "$this = @T00:00:00" :"@T00:00:00","$this ~ @T10:00:00":"@T10:00:00" }"#;
    for (v, e) in [
        ("13:45:02", Some("12:00:00")),
        ("02:00:00", None),
        ("06:00:00", None),
        ("00:00:00", Some("00:00:00")),
        ("10:00:00", Some("10:00:00")),
    ] {
        t.check("time range", json!(v), "time", times, "redact", e);
    }
    let instants = r#"{"$this >= @1990-01-01T00:00:00Z and $this <= @2020-01-01T00:00:00+08:00": "@1990-01-01T00:00:00Z" }"#;
    for (v, e) in [
        ("2001-04-06T04:13:14Z", Some("1990-01-01T00:00:00Z")),
        ("1995-04-06T05:13:14+05:00", Some("1990-01-01T00:00:00Z")),
        ("2020-04-06T05:13:14+05:00", None),
    ] {
        t.check("instant range", json!(v), "instant", instants, "redact", e);
    }
    let omit_day_date = r#"{"true": "$this.toString().replaceMatches('\\\\b(?<year>\\\\d{2,4})-(?<month>\\\\d{1,2})-(?<day>\\\\d{1,2})\\\\b','${year}-${month}')" }"#;
    for (v, e) in [
        ("1990-11-01", "1990-11"),
        ("1990", "1990"),
        ("1990-11", "1990-11"),
    ] {
        t.check(
            "date omit day",
            json!(v),
            "date",
            omit_day_date,
            "redact",
            Some(e),
        );
    }
    let omit_day_date_time = r#"{"true": "$this.toString().replaceMatches('\\\\b(?<year>\\\\d{2,4})-(?<month>\\\\d{1,2})-(?<day>\\\\d{1,2})(T)?(?<hour>\\\\d{1,2})?(:)?(?<minute>\\\\d{1,2})?(:)?(?<second>\\\\d{1,2})?(Z)?\\\\b','${year}-${month}')" }"#;
    for (v, e) in [
        ("1990-01-01T00:00:00Z", "1990-01"),
        ("1990-01-01T00:00:00", "1990-01"),
        ("1990-01-01", "1990-01"),
    ] {
        t.check(
            "dateTime omit day",
            json!(v),
            "dateTime",
            omit_day_date_time,
            "redact",
            Some(e),
        );
    }
    let conflict = r#"{"$this>=0 and $this<20":"20", "$this>=10 and $this<40":"40", "$this>=30 and $this<60":"60", "true":"80"}"#;
    for (v, e) in [(18, "20"), (31, "40"), (45, "60"), (110, "80")] {
        t.check(
            "conflicting cases",
            json!(v),
            "integer",
            conflict,
            "redact",
            Some(e),
        );
    }
    t.check_error(
        "runtime error",
        json!(5),
        "integer",
        r#"{"$this>='0' and $this<'20'":"20"}"#,
    );
    t.check_error(
        "runtime error",
        json!("2015-01-01T00:00:00Z"),
        "dateTime",
        r#"{"$this > @2015-1-1":"@2015-01-01"}"#,
    );
    t.check_error(
        "runtime error",
        json!("2015-01-01"),
        "date",
        r#"{"$this > @2015-1-1":"@2015-01-01"}"#,
    );
    t.check_error(
        "runtime error",
        json!("2015-01-01"),
        "string",
        r#"{"$this > @2015-01-01":"@2015-01-01"}"#,
    );
    println!(
        "generalize vectors: {} passed, {} failed",
        t.total - t.failures.len(),
        t.failures.len()
    );
    assert!(t.failures.is_empty(), "\n{}", t.failures.join("\n"));
}
