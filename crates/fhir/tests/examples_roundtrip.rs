//! JSON fidelity: every official R4 example parses to a `serde_json::Value` and serializes back
//! to exactly its compact form (key order, number text and string escapes as written).
//!
//! One canonicalisation is accepted, found on the examples and pinned below: serde_json (with
//! `arbitrary_precision`) writes a number's exponent marker as `e` followed by an explicit sign,
//! so `1E-22` becomes `1e-22` and `1E3` becomes `1e+3`. The digits, hence the value and the
//! precision FHIR cares about, are unchanged, and JSON and FHIR's decimal grammar treat both
//! spellings alike. Only `Observation-decimal.json` uses exponents; it is the one example that is
//! not byte-identical, and the test names it so that any other difference fails.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use flate2::read::GzDecoder;
use serde_json::Value;

/// The examples that differ from serde_json's output only by the exponent canonicalisation.
const EXPONENT_CANONICALISED: &[&str] = &["package/Observation-decimal.json"];

fn examples_archive() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/hl7-r4-examples/hl7.fhir.r4.examples-4.0.1.tgz")
}

/// One lexical token of JSON text; strings and numbers keep their exact bytes.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    Punct(u8),
    String(&'a [u8]),
    Number(&'a [u8]),
    Literal(&'a [u8]),
}

/// Splits JSON text into tokens, dropping the whitespace between them. Panics on bytes that
/// cannot start a token; the grammar itself is checked by serde_json.
fn tokens(text: &[u8]) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let start = at;
        match text[at] {
            b' ' | b'\t' | b'\n' | b'\r' => at += 1,
            byte @ (b'{' | b'}' | b'[' | b']' | b':' | b',') => {
                tokens.push(Token::Punct(byte));
                at += 1;
            }
            b'"' => {
                at += 1;
                while text[at] != b'"' {
                    at += if text[at] == b'\\' { 2 } else { 1 };
                }
                at += 1;
                tokens.push(Token::String(&text[start..at]));
            }
            b'-' | b'0'..=b'9' => {
                while at < text.len()
                    && matches!(text[at], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    at += 1;
                }
                tokens.push(Token::Number(&text[start..at]));
            }
            b't' | b'f' | b'n' => {
                while at < text.len() && text[at].is_ascii_lowercase() {
                    at += 1;
                }
                tokens.push(Token::Literal(&text[start..at]));
            }
            other => panic!("unexpected byte {other:#04x} at offset {at}"),
        }
    }
    tokens
}

/// The compact form of JSON text: the tokens, byte for byte, with nothing between them.
fn minify(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for token in tokens(text) {
        match token {
            Token::Punct(byte) => out.push(byte),
            Token::String(bytes) | Token::Number(bytes) | Token::Literal(bytes) => {
                out.extend_from_slice(bytes)
            }
        }
    }
    out
}

/// `number` with its exponent marker written as serde_json writes it: `e` and an explicit sign.
fn canonical_exponent(number: &[u8]) -> Vec<u8> {
    let Some(marker) = number.iter().position(|byte| matches!(byte, b'e' | b'E')) else {
        return number.to_vec();
    };
    let (mantissa, exponent) = (&number[..marker], &number[marker + 1..]);
    let mut out = mantissa.to_vec();
    out.push(b'e');
    if !matches!(exponent.first(), Some(b'+' | b'-')) {
        out.push(b'+');
    }
    out.extend_from_slice(exponent);
    out
}

/// [`minify`], then [`canonical_exponent`] on every number token, and nothing else.
fn minify_with_canonical_exponents(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for token in tokens(text) {
        match token {
            Token::Punct(byte) => out.push(byte),
            Token::Number(bytes) => out.extend(canonical_exponent(bytes)),
            Token::String(bytes) | Token::Literal(bytes) => out.extend_from_slice(bytes),
        }
    }
    out
}

fn round_trip(text: &[u8]) -> Vec<u8> {
    let value: Value = serde_json::from_slice(text).expect("the text is valid JSON");
    serde_json::to_vec(&value).expect("a Value serializes")
}

#[test]
fn every_r4_example_round_trips_to_its_compact_form() {
    let archive = File::open(examples_archive()).expect("the examples archive is present");
    let mut archive = tar::Archive::new(GzDecoder::new(archive));
    let mut examples = 0;
    let mut resources = 0;
    let mut identical = 0;
    let mut canonicalised = Vec::new();
    let mut different = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".json") {
            continue;
        }
        let mut text = Vec::new();
        entry.read_to_end(&mut text).unwrap();
        examples += 1;
        let value: Value =
            serde_json::from_slice(&text).unwrap_or_else(|error| panic!("{name}: {error}"));
        if value.get("resourceType").is_some_and(Value::is_string) {
            resources += 1;
        }
        let output = serde_json::to_vec(&value).expect("a Value serializes");
        if output == minify(&text) {
            identical += 1;
        } else if output == minify_with_canonical_exponents(&text) {
            canonicalised.push(name);
        } else {
            different.push(name);
        }
    }
    println!(
        "round-trip: {examples} examples, {identical} byte-identical, {} identical after exponent \
         canonicalisation {canonicalised:?}, {} different {different:?}",
        canonicalised.len(),
        different.len(),
    );
    // 5,307 JSON files: 5,306 resources and the npm manifest `package/package.json`.
    assert_eq!(examples, 5_307);
    assert_eq!(resources, 5_306);
    assert!(different.is_empty(), "not round-tripped: {different:?}");
    assert_eq!(canonicalised, EXPONENT_CANONICALISED);
    assert_eq!(identical, examples - EXPONENT_CANONICALISED.len());
}

#[test]
fn decimals_keep_their_text() {
    let text = br#"{"a":0.010,"b":100.00,"c":-0.50,"d":1.000000000000000000,"e":0,"f":-0,"g":0.0,"h":123456789012345678901234567890,"i":-9223372036854775809,"j":18446744073709551615}"#;
    assert_eq!(round_trip(text), text);
    let value: Value = serde_json::from_slice(text).unwrap();
    assert_eq!(value["a"].to_string(), "0.010");
    assert_eq!(value["b"].to_string(), "100.00");
}

#[test]
fn key_order_is_kept() {
    let text =
        br#"{"resourceType":"Patient","zeta":1,"alpha":{"y":true,"b":null,"a":[]},"id":"x"}"#;
    assert_eq!(round_trip(text), text);
}

/// What serde_json changes when it re-serializes, pinned so that a dependency update that
/// changes it is noticed. None of it occurs in the R4 examples except the exponent spelling.
#[test]
fn serde_json_canonicalisations_are_known() {
    let cases: [(&str, &str); 7] = [
        // Exponents: `e` and an explicit sign (accepted above).
        (r#"[1E3,1e3,2.5E-7,1e+3]"#, r#"[1e+3,1e+3,2.5e-7,1e+3]"#),
        // Optional escapes are decoded and written as plain UTF-8.
        (r#"["\/","\u00e9","\u0041"]"#, r#"["/","é","A"]"#),
        // Control characters keep an escape, with short forms and lowercase hex.
        (r#"["\u001F","\u0008","\u000a"]"#, r#"["\u001f","\b","\n"]"#),
        // Characters outside the BMP written as surrogate pairs come out as UTF-8.
        (r#"["\ud83d\ude00"]"#, r#"["😀"]"#),
        // Escapes that must stay do stay.
        (r#"["\"\\\t\r"]"#, r#"["\"\\\t\r"]"#),
        // Duplicate keys: the last value wins, at the first key's position.
        (r#"{"a":1,"b":2,"a":3}"#, r#"{"a":3,"b":2}"#),
        // Negative zero and big numbers keep their text.
        (r#"[-0,-0.0,1.0e5]"#, r#"[-0,-0.0,1.0e+5]"#),
    ];
    for (input, expected) in cases {
        assert_eq!(
            String::from_utf8(round_trip(input.as_bytes())).unwrap(),
            expected,
            "{input}"
        );
    }
}

#[test]
fn the_minifier_keeps_strings_byte_exact() {
    let text = b"{ \"a b\" : [ \"x \\\" y\\u00e9\\/\" , 1.50 , -2E+3 , true , null ] }\n";
    assert_eq!(
        minify(text),
        b"{\"a b\":[\"x \\\" y\\u00e9\\/\",1.50,-2E+3,true,null]}"
    );
    assert_eq!(
        minify_with_canonical_exponents(b"[1E3,-2E+3,5e-1,7]"),
        b"[1e+3,-2e+3,5e-1,7]"
    );
}
