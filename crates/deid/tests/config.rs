//! Configuration loading: Microsoft's format, and errors as precise as the original's.

use deid::config::{DateShiftScope, KeyKind, Method, OtherValues, ProcessingErrors, RangeType};
use deid::{Config, Engine, Error};

fn with_rules(rules: &str) -> String {
    format!(r#"{{"fhirVersion": "R4", "fhirPathRules": [{rules}]}}"#)
}

fn error(text: &str) -> String {
    match Config::from_json(text) {
        Ok(_) => panic!("accepted: {text}"),
        Err(Error::Config(message)) => message,
        Err(other) => panic!("unexpected error kind: {other}"),
    }
}

#[test]
fn reads_the_shipped_sample() {
    let text = deid::presets::preset("ms-sample").unwrap();
    let config = Config::from_json(text).unwrap();
    assert_eq!(config.rules.len(), 193);
    assert_eq!(config.processing_errors, ProcessingErrors::Raise);
    let count = |name: &str| {
        config
            .rules
            .iter()
            .filter(|r| r.method.name() == name)
            .count()
    };
    assert_eq!(
        (
            count("redact"),
            count("keep"),
            count("dateShift"),
            count("cryptoHash"),
            count("perturb")
        ),
        (179, 8, 3, 2, 1)
    );
    let p = &config.parameters;
    assert_eq!(p.date_shift_key, None);
    assert_eq!(p.date_shift_scope, DateShiftScope::Resource);
    assert!(p.enable_partial_ages_for_redact && p.enable_partial_dates_for_redact);
    assert_eq!(p.restricted_zip_code_tabulation_areas.len(), 14);
    let Method::Perturb(perturb) = &config.rules[59].method else {
        panic!("rule 59 is {:?}", config.rules[59]);
    };
    assert_eq!(perturb.range_type, RangeType::Proportional);
    assert_eq!(
        (perturb.span.to_string().as_str(), perturb.round_to),
        ("0.1", 0)
    );
    // Its keys are empty: Haven refuses to invent them silently.
    let missing = config.missing_keys();
    assert_eq!(
        missing,
        [(KeyKind::CryptoHash, 9), (KeyKind::DateShift, 185)]
    );
    assert_eq!(
        Engine::new(config).unwrap_err(),
        Error::MissingKey("cryptoHashKey", 9)
    );
}

#[test]
fn reads_the_fixed_offset_sample() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/ms-anonymizer/cli-samples/configuration-sample-with-dateshiftfixedoffset.json"
    );
    let config = Config::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(config.parameters.date_shift_fixed_offset_in_days, Some(7));
    // A fixed offset needs no date-shift key.
    assert_eq!(config.missing_keys(), [(KeyKind::CryptoHash, 9)]);
}

#[test]
fn accepts_what_the_original_accepts() {
    // A byte-order mark, unknown keys (the docs' misspelt `processingError`), no parameters,
    // case-insensitive methods and enums, numbers given as strings.
    let text = "\u{feff}{\"abc\": \"123\", \"processingError\": \"skip\", \"processingErrors\": \"SKIP\",
        \"fhirPathRules\": [
          {\"path\": \"Patient.name\", \"method\": \"REDACT\"},
          {\"path\": \"nodesByType('date')\", \"method\": \"dateshift\"},
          {\"path\": \"Observation.value\", \"method\": \"perturb\", \"span\": \"-0\", \"rangeType\": \"Fixed\", \"roundTo\": \"3\"},
          {\"path\": \"Patient.gender\", \"method\": \"substitute\", \"replaceWith\": null},
          {\"path\": \"Patient.birthDate\", \"method\": \"generalize\", \"cases\": {\"$this > @2000\": \"@2000\"}, \"otherValues\": \"KEEP\"},
          {\"path\": \"HealthcareService.notAvaliable.description\", \"method\": \"redact\"}
        ]}";
    let config = Config::from_json(text).unwrap();
    assert_eq!(config.fhir_version, None);
    assert_eq!(config.processing_errors, ProcessingErrors::Skip);
    assert_eq!(config.rules[0].method, Method::Redact);
    assert_eq!(config.rules[1].method, Method::DateShift);
    let Method::Perturb(p) = &config.rules[2].method else {
        panic!()
    };
    assert_eq!((p.range_type, p.round_to), (RangeType::Fixed, 3));
    let Method::Generalize(g) = &config.rules[4].method else {
        panic!()
    };
    assert_eq!(g.other_values, OtherValues::Keep);
    assert_eq!(g.cases.len(), 1);
    for version in [r#""""#, "null", r#""R4""#, r#""r4""#] {
        Config::from_json(&format!(r#"{{"fhirVersion": {version}}}"#)).unwrap();
    }
    let scopes = ["resource", "file", "folder", "patient"].map(|s| {
        Config::from_json(&format!(r#"{{"parameters": {{"dateShiftScope": "{s}"}}}}"#))
            .unwrap()
            .parameters
            .date_shift_scope
    });
    assert_eq!(
        scopes,
        [
            DateShiftScope::Resource,
            DateShiftScope::File,
            DateShiftScope::Folder,
            DateShiftScope::Patient
        ]
    );
}

#[test]
fn rejects_other_fhir_versions() {
    for version in ["Stu3", "STU3", "r3", "R5"] {
        let message = error(&format!(
            r#"{{"fhirVersion": "{version}", "fhirPathRules": []}}"#
        ));
        assert!(
            message.contains("fhirVersion") && message.contains("R4 only"),
            "{message}"
        );
    }
}

#[test]
fn rejects_duplicate_keys_with_their_location() {
    let message = error(&with_rules(
        r#"{"path": "Patient.name", "method": "redact"}, {"path": "Patient.id", "method": "keep", "method": "redact"}"#,
    ));
    assert_eq!(message, "duplicate key at /fhirPathRules/1/method");
    assert_eq!(
        error(r#"{"parameters": {"dateShiftKey": "a", "dateShiftKey": "b"}}"#),
        "duplicate key at /parameters/dateShiftKey"
    );
}

#[test]
fn names_the_rule_in_every_rule_error() {
    let cases = [
        (
            r#"{"path": "Patient.name.where(", "method": "redact"}"#,
            "rule 0 (`Patient.name.where(`): invalid FHIRPath",
        ),
        (
            r#"{"path": "Patient.name", "method": "substitute"}"#,
            "rule 0 (`Patient.name`): substitute needs `replaceWith`",
        ),
        (
            r#"{"path": "Patient.name", "method": "mask"}"#,
            "rule 0 (`Patient.name`): unknown method `mask`",
        ),
        (
            r#"{"path": "Patient.name"}"#,
            "rule 0 (`Patient.name`): has no `method`",
        ),
        (r#"{"method": "redact"}"#, "rule 0 has no `path`"),
        (
            r#"{"path": "Observation.value", "method": "perturb"}"#,
            "perturb needs `span`",
        ),
        (
            r#"{"path": "Observation.value", "method": "perturb", "span": -1}"#,
            "`span` must not be negative",
        ),
        (
            r#"{"path": "Observation.value", "method": "perturb", "span": "-1"}"#,
            "`span` must not be negative",
        ),
        (
            r#"{"path": "Observation.value", "method": "perturb", "span": "abc"}"#,
            "`span` must be a number",
        ),
        (
            r#"{"path": "Observation.value", "method": "perturb", "span": 1, "roundTo": 29}"#,
            "`roundTo` must be an integer from 0 to 28",
        ),
        (
            r#"{"path": "Observation.value", "method": "perturb", "span": 1, "roundTo": 2.5}"#,
            "`roundTo` must be an integer from 0 to 28",
        ),
        (
            r#"{"path": "Observation.value", "method": "perturb", "span": 1, "roundTo": -1}"#,
            "`roundTo` must be an integer from 0 to 28",
        ),
        (
            r#"{"path": "Observation.value", "method": "perturb", "span": 1, "rangeType": "relative"}"#,
            "`rangeType` must be",
        ),
        (
            r#"{"path": "Patient.birthDate", "method": "generalize"}"#,
            "generalize needs `cases`",
        ),
        (
            r#"{"path": "Patient.birthDate", "method": "generalize", "cases": {"$this > 1 && $this < 3": "2"}}"#,
            "is not valid FHIRPath",
        ),
        (
            r#"{"path": "Patient.birthDate", "method": "generalize", "cases": {"true": "1 +"}}"#,
            "is not valid FHIRPath",
        ),
        (
            r#"{"path": "Patient.birthDate", "method": "generalize", "cases": {"true": "1"}, "otherValues": "drop"}"#,
            "`otherValues` must be",
        ),
    ];
    for (rule, expected) in cases {
        let text = with_rules(&format!(
            r#"{{"path": "Patient.id", "method": "keep"}}, {rule}"#
        ));
        let message = error(&text);
        let expected = expected.replace("rule 0", "rule 1");
        assert!(
            message.contains(&expected),
            "{rule}\n  got: {message}\n  want: {expected}"
        );
        assert!(message.starts_with("rule 1"), "{message}");
    }
}

#[test]
fn checks_the_encryption_key_size() {
    let message = error(r#"{"parameters": {"encryptKey": "01234567890123456789"}}"#);
    assert!(message.contains("160 bits"), "{message}");
    for key in [
        "0123456789abcdef",
        "0123456789abcdef01234567",
        "0123456789abcdef0123456789abcdef",
    ] {
        Config::from_json(&format!(r#"{{"parameters": {{"encryptKey": "{key}"}}}}"#)).unwrap();
    }
    let mut config = Config::from_json("{}").unwrap();
    assert!(config.set_key(KeyKind::Encrypt, "short").is_err());
    config
        .set_key(KeyKind::Encrypt, "0123456789abcdef")
        .unwrap();
}

#[test]
fn generates_missing_keys_on_request() {
    let mut config = Config::from_json(&with_rules(
        r#"{"path": "Resource.id", "method": "cryptoHash"},
           {"path": "nodesByType('date')", "method": "dateShift"},
           {"path": "Patient.name.family", "method": "encrypt"}"#,
    ))
    .unwrap();
    assert_eq!(
        config.generate_missing_keys(),
        [KeyKind::CryptoHash, KeyKind::DateShift, KeyKind::Encrypt]
    );
    assert!(config.missing_keys().is_empty());
    assert_eq!(
        config.parameters.encrypt_key.as_ref().map(String::len),
        Some(32)
    );
    Engine::new(config).unwrap();
}

#[test]
fn rejects_wrong_shapes() {
    assert!(error("[]").contains("JSON object"));
    assert!(error("{").contains("not valid JSON"));
    assert!(error(r#"{"fhirPathRules": {}}"#).contains("must be an array"));
    assert!(error(r#"{"processingErrors": "ignore"}"#).contains("processingErrors"));
    assert!(error(r#"{"parameters": {"dateShiftScope": "bundle"}}"#).contains("dateShiftScope"));
    assert!(
        error(r#"{"parameters": {"enablePartialAgesForRedact": 1}}"#)
            .contains("enablePartialAgesForRedact")
    );
    assert!(
        error(r#"{"parameters": {"dateShiftFixedOffsetInDays": 1.5}}"#)
            .contains("dateShiftFixedOffsetInDays")
    );
}
