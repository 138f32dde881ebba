//! The store's behaviour, specified once and run against both back ends: every test below runs
//! as `sqlite::NAME` (a temporary database file) and `postgres::NAME` (a fresh database on a
//! throwaway PostgreSQL server, see `store::testing`).

use serde_json::{Value, json};
use store::{
    Criterion, Error, ExportQuery, HistoryQuery, HistoryScope, JobStatus, PatientScope,
    SearchQuery, Sort, SqlStore, Store, StoredResource, Timestamp, Write, WriteKind,
};

/// A back end under test: opens (or reopens) the same database.
trait Backend {
    fn open(&self) -> Box<dyn Store>;
}

struct Sqlite(tempfile::TempDir);

impl Sqlite {
    fn new() -> Sqlite {
        Sqlite(tempfile::tempdir().expect("a temporary folder"))
    }
}

impl Backend for Sqlite {
    fn open(&self) -> Box<dyn Store> {
        let path = self.0.path().join("data").join("haven.db");
        Box::new(SqlStore::open_sqlite(path).expect("the SQLite store opens"))
    }
}

#[cfg(feature = "postgres")]
struct Postgres(store::testing::TestDatabase);

#[cfg(feature = "postgres")]
impl Postgres {
    fn new() -> Option<Postgres> {
        store::testing::database().map(Postgres)
    }
}

#[cfg(feature = "postgres")]
impl Backend for Postgres {
    fn open(&self) -> Box<dyn Store> {
        Box::new(SqlStore::connect_postgres(self.0.url()).expect("the PostgreSQL store connects"))
    }
}

/// Runs each named behaviour against SQLite and PostgreSQL.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(&super::Sqlite::new()); })*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(#[test] fn $name() {
                match super::Postgres::new() {
                    Some(backend) => super::$name(&backend),
                    None => eprintln!("skipped: HAVEN_SKIP_POSTGRES=1"),
                }
            })*
        }
    };
}

suite!(
    create_assigns_id_and_meta_and_keeps_json,
    create_keeps_a_preassigned_id_and_refuses_one_in_use,
    update_writes_versions_that_vread_returns,
    update_as_create_uses_the_client_id,
    upserts_write_only_changed_content,
    if_match_guards_updates_and_deletes,
    delete_writes_a_tombstone_and_read_answers_gone,
    invalid_resources_are_refused,
    history_of_instance_type_and_system,
    instants_are_monotonic_and_shared_within_a_transaction,
    concurrent_writers_and_readers,
    a_failed_transaction_leaves_nothing_behind,
    one_resource_twice_in_a_transaction_gets_two_versions,
    search_token_parameters,
    search_string_parameters,
    search_date_parameters_with_prefixes,
    search_last_updated_and_id,
    search_reference_parameters,
    search_paging_sort_and_total,
    search_missing_and_unsupported_parameters,
    search_sees_only_current_live_versions,
    export_reads_a_consistent_snapshot,
    export_by_patient_compartment,
    export_reports_deletions,
    export_streams_in_pages,
    counts_per_type,
    jobs_survive_reopening,
    resources_survive_reopening,
);

fn parse(resource: &StoredResource) -> Value {
    serde_json::from_str(&resource.json).expect("stored JSON parses")
}

fn patient(id: &str, family: &str, given: &str, gender: &str, birth_date: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "id": id,
        "identifier": [{"system": "http://hospital/mrn", "value": format!("MRN-{id}")}],
        "name": [{"family": family, "given": [given]}],
        "gender": gender,
        "birthDate": birth_date,
        "address": [{"city": "Springfield", "postalCode": format!("0{}", id.len() * 1111)}]
    })
}

fn observation(id: &str, patient: &str, code: &str, effective: Value) -> Value {
    let mut resource = json!({
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "valueQuantity": {"value": 1.50, "unit": "mmol/L"}
    });
    let object = resource.as_object_mut().unwrap();
    match effective {
        Value::String(_) => object.insert("effectiveDateTime".into(), effective),
        _ => object.insert("effectivePeriod".into(), effective),
    };
    resource
}

fn put(store: &dyn Store, resource: Value) -> store::WriteOutcome {
    store.update(resource, None).expect("the update succeeds")
}

/// The ids a search returns, in order.
fn ids(store: &dyn Store, resource_type: &str, criteria: &[(&str, &str)]) -> Vec<String> {
    let mut query = SearchQuery::new(resource_type);
    query.count = 100;
    query.criteria = criteria
        .iter()
        .map(|(name, value)| Criterion::parse(name, value))
        .collect();
    store
        .search(&query)
        .expect("the search succeeds")
        .resources
        .into_iter()
        .map(|r| r.id)
        .collect()
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

fn create_assigns_id_and_meta_and_keeps_json(backend: &dyn Backend) {
    let store = backend.open();
    let text = r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50,"unit":"mg"},"note":[{"text":"Zoë"}],"extension":[{"url":"u","valueDecimal":3.000}]}"#;
    let resource: Value = serde_json::from_str(text).unwrap();
    let outcome = store.create(resource).unwrap();
    assert_eq!(outcome.kind, WriteKind::Created);
    assert_eq!(outcome.version, 1);
    assert_eq!(outcome.id.len(), 36, "a UUID");
    let read = store.read("Observation", &outcome.id).unwrap();
    assert_eq!(Some(&read.json), outcome.json.as_ref());
    let expected = format!(
        r#"{{"resourceType":"Observation","id":"{}","meta":{{"versionId":"1","lastUpdated":"{}"}},"status":"final","code":{{"text":"x"}},"valueQuantity":{{"value":1.50,"unit":"mg"}},"note":[{{"text":"Zoë"}}],"extension":[{{"url":"u","valueDecimal":3.000}}]}}"#,
        outcome.id, outcome.last_updated
    );
    assert_eq!(read.json, expected, "key order and decimals are kept");
    let last_updated = outcome.last_updated.to_string();
    assert_eq!(last_updated.len(), 24);
    assert!(last_updated.ends_with('Z'));
    assert_eq!((read.version, read.last_updated), (1, outcome.last_updated));

    // An existing meta keeps its place and its other members.
    let with_meta = json!({"resourceType": "Patient", "meta": {"profile": ["p"], "versionId": "9"}, "active": true});
    let outcome = store.create(with_meta).unwrap();
    let stored = parse(&store.read("Patient", &outcome.id).unwrap());
    let keys: Vec<_> = stored.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["resourceType", "id", "meta", "active"]);
    assert_eq!(stored["meta"]["profile"], json!(["p"]));
    assert_eq!(stored["meta"]["versionId"], "1");
}

fn create_keeps_a_preassigned_id_and_refuses_one_in_use(backend: &dyn Backend) {
    let store = backend.open();
    let id = store::new_id();
    let outcome = store
        .create(json!({"resourceType": "Patient", "id": id}))
        .unwrap();
    assert_eq!(outcome.id, id);
    let again = store.create(json!({"resourceType": "Patient", "id": id}));
    assert!(matches!(again, Err(Error::Conflict { .. })), "{again:?}");
    store.delete("Patient", &id, None).unwrap();
    let after_delete = store.create(json!({"resourceType": "Patient", "id": id}));
    assert!(matches!(after_delete, Err(Error::Conflict { .. })));
}

fn update_writes_versions_that_vread_returns(backend: &dyn Backend) {
    let store = backend.open();
    let first = store
        .create(patient("", "Smith", "Ann", "female", "1970"))
        .map(|o| o.id);
    // An empty id is not a valid FHIR id.
    assert!(matches!(first, Err(Error::Invalid(_))));
    let created = store
        .create(json!({"resourceType": "Patient", "active": true}))
        .unwrap();
    let id = created.id.clone();
    let updated = put(
        &*store,
        json!({"resourceType": "Patient", "id": id, "active": false}),
    );
    assert_eq!((updated.kind, updated.version), (WriteKind::Updated, 2));
    assert!(updated.last_updated > created.last_updated);
    let current = store.read("Patient", &id).unwrap();
    assert_eq!(current.version, 2);
    assert_eq!(parse(&current)["active"], false);
    assert_eq!(parse(&current)["meta"]["versionId"], "2");
    let old = store.vread("Patient", &id, 1).unwrap();
    assert_eq!(parse(&old)["active"], true);
    assert_eq!(old.last_updated, created.last_updated);
    assert!(matches!(
        store.vread("Patient", &id, 3),
        Err(Error::VersionNotFound { version: 3, .. })
    ));
    assert!(matches!(
        store.vread("Patient", "nobody", 1),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.read("Patient", "nobody"),
        Err(Error::NotFound { .. })
    ));
}

fn update_as_create_uses_the_client_id(backend: &dyn Backend) {
    let store = backend.open();
    let created = put(
        &*store,
        patient("client-1", "Lee", "Kim", "male", "1980-05"),
    );
    assert_eq!(
        (created.kind, created.version, created.id.as_str()),
        (WriteKind::Created, 1, "client-1")
    );
    let updated = put(
        &*store,
        patient("client-1", "Lee", "Kim", "male", "1980-06"),
    );
    assert_eq!((updated.kind, updated.version), (WriteKind::Updated, 2));
    assert_eq!(
        parse(&store.read("Patient", "client-1").unwrap())["birthDate"],
        "1980-06"
    );
}

fn upserts_write_only_changed_content(backend: &dyn Backend) {
    let store = backend.open();
    let upsert = |resources: Vec<Value>| {
        store
            .transaction(resources.into_iter().map(Write::Upsert).collect())
            .unwrap()
            .into_iter()
            .map(|outcome| (outcome.kind, outcome.version))
            .collect::<Vec<_>>()
    };
    let first = patient("u1", "Lee", "Kim", "male", "1980-05");
    let changed = patient("u1", "Lee", "Kim", "male", "1980-06");
    let other = patient("u2", "Ito", "Aya", "female", "1975");
    assert_eq!(
        upsert(vec![first.clone(), other.clone()]),
        [(WriteKind::Created, 1), (WriteKind::Created, 1)]
    );
    let stored = store.read("Patient", "u1").unwrap();
    assert_eq!(
        upsert(vec![first.clone(), other.clone()]),
        [(WriteKind::Unchanged, 1), (WriteKind::Unchanged, 1)]
    );
    assert_eq!(
        store.read("Patient", "u1").unwrap(),
        stored,
        "nothing rewritten"
    );
    // Within one transaction too: the second write of the same content writes nothing.
    assert_eq!(
        upsert(vec![changed.clone(), changed.clone(), other]),
        [
            (WriteKind::Updated, 2),
            (WriteKind::Unchanged, 2),
            (WriteKind::Unchanged, 1)
        ]
    );
    store.delete("Patient", "u1", None).unwrap();
    assert_eq!(upsert(vec![changed]), [(WriteKind::Created, 4)]);
}

fn if_match_guards_updates_and_deletes(backend: &dyn Backend) {
    let store = backend.open();
    put(&*store, patient("p", "Lee", "Kim", "male", "1980"));
    let stale = store.update(patient("p", "Lee", "Kim", "male", "1981"), Some(2));
    assert!(matches!(stale, Err(Error::Conflict { .. })), "{stale:?}");
    let fresh = store
        .update(patient("p", "Lee", "Kim", "male", "1981"), Some(1))
        .unwrap();
    assert_eq!(fresh.version, 2);
    assert!(matches!(
        store.delete("Patient", "p", Some(1)),
        Err(Error::Conflict { .. })
    ));
    assert_eq!(
        store.delete("Patient", "p", Some(2)).unwrap().kind,
        WriteKind::Deleted
    );
    assert!(matches!(
        store.update(patient("absent", "A", "B", "male", "1990"), Some(1)),
        Err(Error::Conflict { .. })
    ));
}

fn delete_writes_a_tombstone_and_read_answers_gone(backend: &dyn Backend) {
    let store = backend.open();
    put(&*store, patient("p1", "Lee", "Kim", "male", "1980"));
    let deleted = store.delete("Patient", "p1", None).unwrap();
    assert_eq!((deleted.kind, deleted.version), (WriteKind::Deleted, 2));
    assert!(deleted.json.is_none());
    match store.read("Patient", "p1") {
        Err(Error::Gone {
            version,
            deleted_at,
            ..
        }) => assert_eq!((version, deleted_at), (2, deleted.last_updated)),
        other => panic!("expected Gone, got {other:?}"),
    }
    assert!(matches!(
        store.vread("Patient", "p1", 2),
        Err(Error::Gone { .. })
    ));
    assert_eq!(store.vread("Patient", "p1", 1).unwrap().version, 1);

    let again = store.delete("Patient", "p1", None).unwrap();
    assert_eq!(
        (again.kind, again.version, again.last_updated),
        (WriteKind::Unchanged, 2, deleted.last_updated)
    );
    let never = store.delete("Patient", "never", None).unwrap();
    assert_eq!((never.kind, never.version), (WriteKind::Unchanged, 0));

    let revived = put(&*store, patient("p1", "Lee", "Kim", "male", "1980"));
    assert_eq!((revived.kind, revived.version), (WriteKind::Created, 3));
    assert_eq!(store.read("Patient", "p1").unwrap().version, 3);
}

fn invalid_resources_are_refused(backend: &dyn Backend) {
    let store = backend.open();
    for resource in [
        json!({"id": "x"}),
        json!({"resourceType": "NotAType"}),
        json!({"resourceType": "Bundle ", "id": "x"}),
        json!({"resourceType": "Patient", "id": "has space"}),
        json!({"resourceType": "Patient", "id": 7}),
        json!({"resourceType": "Patient", "meta": "text"}),
        json!(["resourceType"]),
    ] {
        let result = store.create(resource);
        assert!(matches!(result, Err(Error::Invalid(_))), "{result:?}");
    }
    assert!(matches!(
        store.update(json!({"resourceType": "Patient"}), None),
        Err(Error::Invalid(_))
    ));
    assert!(store.counts().unwrap().is_empty());
}

fn history_of_instance_type_and_system(backend: &dyn Backend) {
    let store = backend.open();
    put(&*store, patient("a", "Lee", "Kim", "male", "1980"));
    let t1 = store.transaction_time().unwrap();
    put(&*store, patient("a", "Lee", "Kim", "male", "1981"));
    put(
        &*store,
        observation("o1", "a", "8867-4", json!("2024-01-01")),
    );
    store.delete("Patient", "a", None).unwrap();

    let page = |scope: HistoryScope, since: Option<Timestamp>, count: usize, offset: usize| {
        store
            .history(&HistoryQuery {
                scope,
                since,
                count,
                offset,
            })
            .unwrap()
    };
    let instance = page(
        HistoryScope::Instance("Patient".into(), "a".into()),
        None,
        10,
        0,
    );
    let versions: Vec<_> = instance
        .entries
        .iter()
        .map(|e| (e.version, e.json.is_some()))
        .collect();
    assert_eq!(versions, [(3, false), (2, true), (1, true)]);
    assert_eq!((instance.total, instance.more), (3, false));
    assert_eq!(
        serde_json::from_str::<Value>(instance.entries[1].json.as_ref().unwrap()).unwrap()["birthDate"],
        "1981"
    );

    let types = page(HistoryScope::Type("Patient".into()), None, 2, 0);
    assert_eq!((types.entries.len(), types.total, types.more), (2, 3, true));
    let rest = page(HistoryScope::Type("Patient".into()), None, 2, 2);
    assert_eq!((rest.entries.len(), rest.more), (1, false));
    assert_eq!(rest.entries[0].version, 1);

    let system = page(HistoryScope::System, None, 10, 0);
    let order: Vec<_> = system
        .entries
        .iter()
        .map(|e| format!("{}/{}/{}", e.resource_type, e.id, e.version))
        .collect();
    assert_eq!(
        order,
        [
            "Patient/a/3",
            "Observation/o1/1",
            "Patient/a/2",
            "Patient/a/1"
        ]
    );
    assert!(
        system
            .entries
            .windows(2)
            .all(|w| w[0].last_updated >= w[1].last_updated)
    );

    let since = page(HistoryScope::System, Some(t1), 10, 0);
    assert_eq!(since.total, 3, "versions at or after _since");

    assert!(matches!(
        store.history(&HistoryQuery {
            scope: HistoryScope::Instance("Patient".into(), "nobody".into()),
            since: None,
            count: 10,
            offset: 0
        }),
        Err(Error::NotFound { .. })
    ));
}

fn instants_are_monotonic_and_shared_within_a_transaction(backend: &dyn Backend) {
    let store = backend.open();
    let mut previous = Timestamp::from_millis(0);
    for n in 0..30 {
        let outcomes = store
            .transaction(vec![
                Write::Create(json!({"resourceType": "Patient"})),
                Write::Update {
                    resource: json!({"resourceType": "Patient", "id": format!("p{n}")}),
                    if_match: None,
                },
            ])
            .unwrap();
        assert_eq!(outcomes[0].last_updated, outcomes[1].last_updated);
        assert!(outcomes[0].last_updated > previous, "strictly increasing");
        previous = outcomes[0].last_updated;
    }
    let t = store.transaction_time().unwrap();
    assert!(t > previous);
    let after = store.create(json!({"resourceType": "Patient"})).unwrap();
    assert!(
        after.last_updated > t,
        "writes after a transaction time are later"
    );
    assert!(store.transaction_time().unwrap() > after.last_updated);
}

fn concurrent_writers_and_readers(backend: &dyn Backend) {
    let store = backend.open();
    put(&*store, patient("shared", "A", "A", "male", "1980"));
    let outcomes: Vec<Vec<store::WriteOutcome>> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..4)
            .map(|thread| {
                let store = &*store;
                scope.spawn(move || {
                    (0..20)
                        .map(|n| {
                            let mine = format!("t{thread}-{n}");
                            put(store, patient(&mine, "A", "A", "male", "1980"));
                            put(store, patient("shared", "A", "A", "male", "1980"))
                        })
                        .collect()
                })
            })
            .collect();
        let reader = scope.spawn(|| {
            for _ in 0..20 {
                assert_eq!(ids(&*store, "Patient", &[("_id", "shared")]), ["shared"]);
            }
        });
        reader.join().unwrap();
        writers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut versions: Vec<u64> = outcomes.iter().flatten().map(|o| o.version).collect();
    versions.sort_unstable();
    assert_eq!(
        versions,
        (2..=81).collect::<Vec<_>>(),
        "no version is lost or repeated"
    );
    let mut instants: Vec<_> = outcomes.iter().flatten().map(|o| o.last_updated).collect();
    instants.sort_unstable();
    instants.dedup();
    assert_eq!(instants.len(), 80, "each transaction has its own instant");
    assert_eq!(store.read("Patient", "shared").unwrap().version, 81);
    assert_eq!(store.counts().unwrap(), [("Patient".to_owned(), 81)]);
}

fn a_failed_transaction_leaves_nothing_behind(backend: &dyn Backend) {
    let store = backend.open();
    put(&*store, patient("existing", "Lee", "Kim", "male", "1980"));
    let before = store.counts().unwrap();
    let writes = |last: Write| {
        vec![
            Write::Create(patient("n1", "New", "One", "female", "1990")),
            Write::Create(observation("o1", "n1", "1234-5", json!("2024-01-01"))),
            Write::Update {
                resource: patient("existing", "Changed", "Kim", "male", "1980"),
                if_match: None,
            },
            Write::Delete {
                resource_type: "Patient".into(),
                id: "existing".into(),
                if_match: None,
            },
            last,
        ]
    };
    let failures = [
        // A failed precondition after the other writes.
        Write::Update {
            resource: patient("existing", "Lee", "Kim", "male", "1980"),
            if_match: Some(1),
        },
        // A create whose id is taken, by an earlier write of the same transaction.
        Write::Create(patient("n1", "Again", "One", "female", "1990")),
        // An invalid resource.
        Write::Create(json!({"resourceType": "Nope"})),
    ];
    for failure in failures {
        let result = store.transaction(writes(failure));
        assert!(result.is_err());
        assert_eq!(store.counts().unwrap(), before);
        assert!(matches!(
            store.read("Patient", "n1"),
            Err(Error::NotFound { .. })
        ));
        assert!(ids(&*store, "Observation", &[("patient", "n1")]).is_empty());
        assert!(ids(&*store, "Patient", &[("family", "changed")]).is_empty());
        let existing = store.read("Patient", "existing").unwrap();
        assert_eq!(existing.version, 1);
    }
    // The same writes with a good last one all apply.
    let outcomes = store
        .transaction(writes(Write::Create(
            json!({"resourceType": "Organization"}),
        )))
        .unwrap();
    let kinds: Vec<_> = outcomes.iter().map(|o| o.kind).collect();
    assert_eq!(
        kinds,
        [
            WriteKind::Created,
            WriteKind::Created,
            WriteKind::Updated,
            WriteKind::Deleted,
            WriteKind::Created
        ]
    );
}

fn one_resource_twice_in_a_transaction_gets_two_versions(backend: &dyn Backend) {
    let store = backend.open();
    let outcomes = store
        .transaction(vec![
            Write::Update {
                resource: patient("twice", "First", "A", "male", "1980"),
                if_match: None,
            },
            Write::Update {
                resource: patient("twice", "Second", "A", "male", "1980"),
                if_match: Some(1),
            },
        ])
        .unwrap();
    assert_eq!(
        outcomes.iter().map(|o| o.version).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(store.read("Patient", "twice").unwrap().version, 2);
    assert!(ids(&*store, "Patient", &[("family", "first")]).is_empty());
    assert_eq!(ids(&*store, "Patient", &[("family", "second")]), ["twice"]);
    // Version 1 was never current at any instant, so no snapshot exports it.
    let at = store.transaction_time().unwrap();
    let exported = store
        .export_page(&export_query("Patient", at, PatientScope::All), 0, 10)
        .unwrap();
    assert_eq!(exported.items.len(), 1);
    assert_eq!(exported.items[0].version, 2);
}

fn search_token_parameters(backend: &dyn Backend) {
    let store = backend.open();
    put(&*store, patient("f", "Lee", "Ann", "female", "1980"));
    put(&*store, patient("m", "Lee", "Bob", "male", "1980"));
    put(
        &*store,
        json!({"resourceType": "Patient", "id": "u", "identifier": [{"value": "NOSYS"}]}),
    );
    assert_eq!(ids(&*store, "Patient", &[("gender", "female")]), ["f"]);
    assert_eq!(
        sorted(ids(&*store, "Patient", &[("gender", "female,male")])),
        ["f", "m"]
    );
    assert_eq!(
        sorted(ids(&*store, "Patient", &[("gender:not", "female")])),
        ["m", "u"]
    );
    assert_eq!(
        ids(
            &*store,
            "Patient",
            &[("identifier", "http://hospital/mrn|MRN-m")]
        ),
        ["m"]
    );
    assert_eq!(ids(&*store, "Patient", &[("identifier", "MRN-f")]), ["f"]);
    assert_eq!(ids(&*store, "Patient", &[("identifier", "|NOSYS")]), ["u"]);
    assert!(ids(&*store, "Patient", &[("identifier", "|MRN-f")]).is_empty());
    assert_eq!(
        sorted(ids(
            &*store,
            "Patient",
            &[("identifier", "http://hospital/mrn|")]
        )),
        ["f", "m"]
    );
    assert!(ids(&*store, "Patient", &[("identifier", "http://other|MRN-f")]).is_empty());

    put(
        &*store,
        observation("o1", "f", "8867-4", json!("2024-01-01")),
    );
    let mut lab = observation("o2", "m", "2339-0", json!("2024-01-02"));
    lab["status"] = json!("amended");
    lab["category"] = json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}]);
    put(&*store, lab);
    assert_eq!(
        ids(
            &*store,
            "Observation",
            &[("code", "http://loinc.org|8867-4")]
        ),
        ["o1"]
    );
    assert_eq!(ids(&*store, "Observation", &[("code", "2339-0")]), ["o2"]);
    assert_eq!(
        ids(&*store, "Observation", &[("status", "amended")]),
        ["o2"]
    );
    assert_eq!(
        ids(&*store, "Observation", &[("category", "vital-signs")]),
        ["o1"]
    );
    assert_eq!(
        ids(
            &*store,
            "Observation",
            &[("category", "laboratory"), ("status", "final")]
        ),
        Vec::<String>::new(),
        "criteria are AND-ed"
    );
    put(
        &*store,
        json!({
            "resourceType": "MedicationRequest", "id": "mr", "status": "active", "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "313782"}]},
            "subject": {"reference": "Patient/f"}
        }),
    );
    assert_eq!(
        ids(&*store, "MedicationRequest", &[("code", "313782")]),
        ["mr"]
    );
}

fn search_string_parameters(backend: &dyn Backend) {
    let store = backend.open();
    put(&*store, patient("a", "Núñez", "José", "male", "1980"));
    put(&*store, patient("b", "Nunn", "Zoë", "female", "1980"));
    let mut c = patient("c", "O'Brien", "Seán", "male", "1980");
    c["name"][0]["prefix"] = json!(["Dr."]);
    c["address"][0]["postalCode"] = json!("02139");
    put(&*store, c);

    assert_eq!(
        sorted(ids(&*store, "Patient", &[("family", "nun")])),
        ["a", "b"]
    );
    assert_eq!(ids(&*store, "Patient", &[("family", "NUÑEZ")]), ["a"]);
    assert_eq!(ids(&*store, "Patient", &[("family", "nunez")]), ["a"]);
    assert_eq!(ids(&*store, "Patient", &[("given", "zoe")]), ["b"]);
    assert_eq!(
        ids(&*store, "Patient", &[("name", "dr")]),
        ["c"],
        "name matches every part"
    );
    assert_eq!(
        sorted(ids(&*store, "Patient", &[("name", "jos,zo")])),
        ["a", "b"]
    );
    assert_eq!(ids(&*store, "Patient", &[("family:exact", "Núñez")]), ["a"]);
    assert!(ids(&*store, "Patient", &[("family:exact", "nunez")]).is_empty());
    assert_eq!(
        ids(&*store, "Patient", &[("family:contains", "brie")]),
        ["c"]
    );
    assert!(
        ids(&*store, "Patient", &[("family", "brie")]).is_empty(),
        "prefix, not substring"
    );
    assert_eq!(
        ids(&*store, "Patient", &[("address-postalcode", "021")]),
        ["c"]
    );
}

fn search_date_parameters_with_prefixes(backend: &dyn Backend) {
    let store = backend.open();
    put(&*store, patient("y", "A", "A", "male", "1980"));
    put(&*store, patient("m", "A", "A", "male", "1980-06"));
    put(&*store, patient("d", "A", "A", "male", "1980-06-15"));
    put(&*store, patient("late", "A", "A", "male", "1990-01-01"));
    let find = |value: &str| sorted(ids(&*store, "Patient", &[("birthdate", value)]));
    assert_eq!(find("1980"), ["d", "m", "y"], "eq: within the search range");
    assert_eq!(find("1980-06"), ["d", "m"]);
    assert_eq!(find("eq1980-06-15"), ["d"]);
    assert_eq!(find("ne1980-06"), ["late", "y"]);
    assert_eq!(
        find("gt1980-06"),
        ["late", "y"],
        "gt: the value reaches past the end"
    );
    assert_eq!(
        find("lt1980-06-15"),
        ["m", "y"],
        "lt: the value starts before"
    );
    assert_eq!(find("ge1980-06"), ["d", "late", "m", "y"]);
    assert_eq!(find("le1980-06-15"), ["d", "m", "y"]);
    assert_eq!(find("sa1980-12-31"), ["late"]);
    assert_eq!(find("eb1980-01-01"), Vec::<String>::new());
    assert_eq!(find("eb1981"), ["d", "m", "y"]);
    assert_eq!(
        find("ap1980-06-15"),
        ["d", "m", "y"],
        "ap: the ranges overlap"
    );
    assert_eq!(find("lt1970,gt1985"), ["late"]);

    put(
        &*store,
        observation("point", "y", "x", json!("2024-03-01T10:00:00+02:00")),
    );
    put(
        &*store,
        observation("open", "y", "x", json!({"start": "2024-02-01"})),
    );
    put(
        &*store,
        observation(
            "closed",
            "y",
            "x",
            json!({"start": "2024-01-01", "end": "2024-01-31"}),
        ),
    );
    let find = |value: &str| sorted(ids(&*store, "Observation", &[("date", value)]));
    assert_eq!(
        find("2024-03-01T08:00:00Z"),
        ["point"],
        "zones are honoured"
    );
    assert_eq!(find("2024-01"), ["closed"]);
    assert_eq!(
        find("gt2024-12-31"),
        ["open"],
        "an open period reaches the future"
    );
    assert_eq!(find("lt2024-01-15"), ["closed"]);
    assert_eq!(find("ge2024-03-01"), ["open", "point"]);
    let invalid = store.search(&{
        let mut q = SearchQuery::new("Observation");
        q.criteria.push(Criterion::parse("date", "gt2024-13"));
        q
    });
    assert!(
        matches!(invalid, Err(Error::InvalidSearch { .. })),
        "{invalid:?}"
    );
}

fn search_last_updated_and_id(backend: &dyn Backend) {
    let store = backend.open();
    let first = put(&*store, patient("a", "A", "A", "male", "1980"));
    let second = put(&*store, patient("b", "A", "A", "male", "1980"));
    let at = |prefix: &str, t: Timestamp| format!("{prefix}{t}");
    assert_eq!(
        ids(
            &*store,
            "Patient",
            &[("_lastUpdated", &at("gt", first.last_updated))]
        ),
        ["b"]
    );
    assert_eq!(
        ids(
            &*store,
            "Patient",
            &[("_lastUpdated", &at("le", first.last_updated))]
        ),
        ["a"]
    );
    assert_eq!(
        ids(
            &*store,
            "Patient",
            &[("_lastUpdated", &at("", second.last_updated))]
        ),
        ["b"]
    );
    let day = &first.last_updated.to_string()[..10];
    assert_eq!(
        sorted(ids(
            &*store,
            "Patient",
            &[("_lastUpdated", &format!("ge{day}"))]
        )),
        ["a", "b"]
    );
    assert_eq!(
        sorted(ids(&*store, "Patient", &[("_id", "a,b,c")])),
        ["a", "b"]
    );
    assert_eq!(ids(&*store, "Patient", &[("_id", "b")]), ["b"]);
}

fn search_reference_parameters(backend: &dyn Backend) {
    let store = backend.open();
    put(&*store, observation("o1", "p1", "x", json!("2024-01-01")));
    put(&*store, observation("o2", "p2", "x", json!("2024-01-01")));
    let mut grouped = observation("o3", "p1", "x", json!("2024-01-01"));
    grouped["subject"] = json!({"reference": "Group/p1"});
    put(&*store, grouped);
    put(
        &*store,
        json!({"resourceType": "Condition", "id": "c1", "subject": {"reference": "https://other.example/fhir/Patient/p1"}}),
    );

    assert_eq!(ids(&*store, "Observation", &[("patient", "p1")]), ["o1"]);
    assert_eq!(
        ids(&*store, "Observation", &[("patient", "Patient/p2")]),
        ["o2"]
    );
    assert_eq!(
        sorted(ids(&*store, "Observation", &[("subject", "p1")])),
        ["o1", "o3"]
    );
    assert_eq!(
        ids(&*store, "Observation", &[("subject", "Group/p1")]),
        ["o3"]
    );
    assert_eq!(
        ids(&*store, "Observation", &[("subject:Patient", "p1")]),
        ["o1"]
    );
    assert!(ids(&*store, "Observation", &[("subject:Group", "Patient/p1")]).is_empty());
    assert_eq!(ids(&*store, "Condition", &[("patient", "p1")]), ["c1"]);
    assert_eq!(
        ids(
            &*store,
            "Observation",
            &[("subject", "https://haven.example/fhir/Patient/p2")]
        ),
        ["o2"]
    );
    // A changed reference moves the resource between patients.
    put(&*store, observation("o1", "p2", "x", json!("2024-01-01")));
    assert!(ids(&*store, "Observation", &[("patient", "p1")]).is_empty());
    assert_eq!(
        sorted(ids(&*store, "Observation", &[("patient", "p2")])),
        ["o1", "o2"]
    );
}

fn search_paging_sort_and_total(backend: &dyn Backend) {
    let store = backend.open();
    for n in 0..25 {
        put(
            &*store,
            patient(&format!("p{n:02}"), "Same", "A", "female", "1980"),
        );
    }
    // Touching p00 again makes it the most recently updated and moves it last in storage order.
    put(&*store, patient("p00", "Same", "A", "female", "1981"));

    let mut query = SearchQuery::new("Patient");
    query.criteria.push(Criterion::parse("family", "same"));
    query.count = 10;
    query.total = true;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.search(&query).unwrap();
        assert_eq!(page.total, Some(25));
        pages += 1;
        seen.extend(page.resources.into_iter().map(|r| r.id));
        if !page.more {
            break;
        }
        query.offset += query.count;
    }
    assert_eq!(pages, 3);
    let mut expected: Vec<String> = (1..25).map(|n| format!("p{n:02}")).collect();
    expected.push("p00".into());
    assert_eq!(seen, expected, "storage order is stable across pages");

    query.offset = 0;
    query.count = 3;
    query.sort = Sort::LastUpdatedDesc;
    let newest: Vec<_> = store.search(&query).unwrap().resources;
    assert_eq!(newest[0].id, "p00");
    assert!(
        newest
            .windows(2)
            .all(|w| w[0].last_updated >= w[1].last_updated)
    );
    query.sort = Sort::LastUpdated;
    let oldest = store.search(&query).unwrap();
    assert_eq!(
        oldest
            .resources
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        ["p01", "p02", "p03"]
    );
    assert!(oldest.more);

    query.count = 0;
    let count_only = store.search(&query).unwrap();
    assert!(count_only.resources.is_empty());
    assert_eq!(count_only.total, Some(25));
    query.total = false;
    query.count = 100;
    assert_eq!(store.search(&query).unwrap().total, None);
}

fn search_missing_and_unsupported_parameters(backend: &dyn Backend) {
    let store = backend.open();
    put(&*store, patient("with", "A", "A", "male", "1980"));
    put(&*store, json!({"resourceType": "Patient", "id": "without"}));
    assert_eq!(
        ids(&*store, "Patient", &[("birthdate:missing", "true")]),
        ["without"]
    );
    assert_eq!(
        ids(&*store, "Patient", &[("gender:missing", "false")]),
        ["with"]
    );
    assert_eq!(
        ids(&*store, "Patient", &[("name:missing", "true")]),
        ["without"]
    );
    let search = |name: &str, value: &str| {
        let mut query = SearchQuery::new("Patient");
        query.criteria.push(Criterion::parse(name, value));
        store.search(&query)
    };
    assert!(matches!(
        search("deceased", "true"),
        Err(Error::UnsupportedSearch { .. })
    ));
    assert!(matches!(
        search("gender:text", "x"),
        Err(Error::UnsupportedSearch { .. })
    ));
    assert!(matches!(
        search("birthdate", "yesterday"),
        Err(Error::InvalidSearch { .. })
    ));
    assert!(matches!(
        search("gender:missing", "maybe"),
        Err(Error::InvalidSearch { .. })
    ));
    assert!(matches!(
        search("gender", ""),
        Err(Error::InvalidSearch { .. })
    ));
    let message = search("birthdate", "secret-value").unwrap_err().to_string();
    assert!(
        message.contains("birthdate") && !message.contains("secret"),
        "{message}"
    );
}

fn search_sees_only_current_live_versions(backend: &dyn Backend) {
    let store = backend.open();
    put(&*store, patient("a", "Old", "A", "male", "1980"));
    put(&*store, patient("a", "New", "A", "male", "1980"));
    put(&*store, patient("b", "New", "B", "male", "1980"));
    store.delete("Patient", "b", None).unwrap();
    assert!(ids(&*store, "Patient", &[("family", "old")]).is_empty());
    assert_eq!(ids(&*store, "Patient", &[("family", "new")]), ["a"]);
    assert_eq!(ids(&*store, "Patient", &[]), ["a"]);
}

fn export_query(resource_type: &str, at: Timestamp, patients: PatientScope) -> ExportQuery {
    ExportQuery {
        resource_type: resource_type.to_owned(),
        at,
        since: None,
        patients,
    }
}

fn export_ids(store: &dyn Store, query: ExportQuery) -> Vec<String> {
    store::export_resources(store, query, 0, 2)
        .map(|r| {
            let r = r.unwrap();
            format!("{}@{}", r.id, r.version)
        })
        .collect()
}

fn export_reads_a_consistent_snapshot(backend: &dyn Backend) {
    let store = backend.open();
    put(&*store, patient("a", "A", "A", "male", "1980"));
    put(&*store, patient("b", "B", "B", "male", "1980"));
    put(&*store, patient("gone", "G", "G", "male", "1980"));
    store.delete("Patient", "gone", None).unwrap();
    let t = store.transaction_time().unwrap();
    // Writes after the transaction time: none of them may show in the snapshot.
    put(&*store, patient("a", "A2", "A", "male", "1980"));
    store.delete("Patient", "b", None).unwrap();
    put(&*store, patient("c", "C", "C", "male", "1980"));
    put(&*store, patient("gone", "G", "G", "male", "1980"));

    let snapshot = export_ids(&*store, export_query("Patient", t, PatientScope::All));
    assert_eq!(sorted(snapshot), ["a@1", "b@1"]);
    let exported = store
        .export_page(&export_query("Patient", t, PatientScope::All), 0, 10)
        .unwrap();
    assert!(exported.items.iter().all(|r| r.last_updated <= t));
    assert_eq!(parse(&exported.items[0])["name"][0]["family"], "A");

    let now = store.transaction_time().unwrap();
    let latest = export_ids(&*store, export_query("Patient", now, PatientScope::All));
    assert_eq!(sorted(latest), ["a@2", "c@1", "gone@3"]);

    let mut since = export_query("Patient", now, PatientScope::All);
    since.since = Some(t);
    assert_eq!(sorted(export_ids(&*store, since)), ["a@2", "c@1", "gone@3"]);
}

fn export_by_patient_compartment(backend: &dyn Backend) {
    let store = backend.open();
    put(&*store, patient("p1", "A", "A", "male", "1980"));
    put(&*store, patient("p2", "B", "B", "male", "1980"));
    put(&*store, observation("o1", "p1", "x", json!("2024-01-01")));
    put(&*store, observation("o2", "p2", "x", json!("2024-01-01")));
    put(
        &*store,
        json!({"resourceType": "Observation", "id": "none", "status": "final", "code": {"text": "x"}}),
    );
    put(
        &*store,
        json!({"resourceType": "Organization", "id": "org"}),
    );
    let t = store.transaction_time().unwrap();
    // Moving o1 to p2 after T does not change the snapshot's compartments.
    put(&*store, observation("o1", "p2", "x", json!("2024-01-01")));

    let only = |ids: &[&str]| PatientScope::Patients(ids.iter().map(|s| s.to_string()).collect());
    assert_eq!(
        export_ids(&*store, export_query("Observation", t, only(&["p1"]))),
        ["o1@1"]
    );
    assert_eq!(
        export_ids(&*store, export_query("Patient", t, only(&["p1"]))),
        ["p1@1"]
    );
    assert_eq!(
        sorted(export_ids(
            &*store,
            export_query("Observation", t, only(&["p1", "p2"]))
        )),
        ["o1@1", "o2@1"]
    );
    assert_eq!(
        sorted(export_ids(
            &*store,
            export_query("Observation", t, PatientScope::AnyPatient)
        )),
        ["o1@1", "o2@1"]
    );
    assert_eq!(
        sorted(export_ids(
            &*store,
            export_query("Observation", t, PatientScope::All)
        )),
        ["none@1", "o1@1", "o2@1"]
    );
    assert!(
        export_ids(
            &*store,
            export_query("Organization", t, PatientScope::AnyPatient)
        )
        .is_empty()
    );
    assert!(export_ids(&*store, export_query("Observation", t, only(&[]))).is_empty());

    let now = store.transaction_time().unwrap();
    assert!(export_ids(&*store, export_query("Observation", now, only(&["p1"]))).is_empty());
    assert_eq!(
        sorted(export_ids(
            &*store,
            export_query("Observation", now, only(&["p2"]))
        )),
        ["o1@2", "o2@1"]
    );
}

fn export_reports_deletions(backend: &dyn Backend) {
    let store = backend.open();
    put(&*store, patient("p1", "A", "A", "male", "1980"));
    put(
        &*store,
        observation("early", "p1", "x", json!("2024-01-01")),
    );
    store.delete("Observation", "early", None).unwrap();
    let since = store.transaction_time().unwrap();
    put(&*store, observation("o1", "p1", "x", json!("2024-01-01")));
    put(&*store, observation("o2", "p2", "x", json!("2024-01-01")));
    put(&*store, observation("back", "p1", "x", json!("2024-01-01")));
    let deleted = store.delete("Observation", "o1", None).unwrap();
    store.delete("Observation", "o2", None).unwrap();
    store.delete("Observation", "back", None).unwrap();
    put(&*store, observation("back", "p1", "x", json!("2024-01-01")));
    let t = store.transaction_time().unwrap();
    store.delete("Patient", "p1", None).unwrap();

    let mut query = export_query("Observation", t, PatientScope::All);
    query.since = Some(since);
    let tombstones: Vec<_> = store::export_deleted(&*store, query.clone(), 0, 1)
        .map(|t| t.unwrap())
        .collect();
    assert_eq!(
        tombstones.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["o1", "o2"],
        "deletions in (since, T], not re-created ones, not earlier ones"
    );
    assert_eq!(tombstones[0].deleted_at, deleted.last_updated);
    assert_eq!(tombstones[0].version, 2);

    query.patients = PatientScope::Patients(vec!["p1".into()]);
    let for_p1: Vec<_> = store::export_deleted(&*store, query.clone(), 0, 10)
        .map(|t| t.unwrap().id)
        .collect();
    assert_eq!(for_p1, ["o1"], "tombstones keep their compartments");

    query.resource_type = "Patient".into();
    assert_eq!(
        store::export_deleted(&*store, query, 0, 10).count(),
        0,
        "deleted after T"
    );
    // The export of live resources at T holds the re-created one.
    let live = export_ids(&*store, export_query("Observation", t, PatientScope::All));
    assert_eq!(live, ["back@3"]);
}

fn export_streams_in_pages(backend: &dyn Backend) {
    let store = backend.open();
    let writes = (0..250)
        .map(|n| Write::Create(observation(&format!("o{n}"), "p", "x", json!("2024-01-01"))))
        .collect();
    store.transaction(writes).unwrap();
    let t = store.transaction_time().unwrap();
    let query = export_query("Observation", t, PatientScope::All);
    let mut after = 0;
    let mut pages = 0;
    let mut seen = 0;
    loop {
        let page = store.export_page(&query, after, 100).unwrap();
        assert!(page.items.len() <= 100);
        seen += page.items.len();
        pages += 1;
        match page.next {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!((seen, pages), (250, 3));
    let streamed: Vec<_> = store::export_resources(&*store, query, 0, 7)
        .map(|r| r.unwrap().id)
        .collect();
    let expected: Vec<_> = (0..250).map(|n| format!("o{n}")).collect();
    assert_eq!(streamed, expected, "storage order");
}

fn counts_per_type(backend: &dyn Backend) {
    let store = backend.open();
    put(&*store, patient("a", "A", "A", "male", "1980"));
    put(&*store, patient("b", "B", "B", "male", "1980"));
    put(&*store, patient("b", "B", "B", "male", "1981"));
    put(&*store, patient("c", "C", "C", "male", "1980"));
    store.delete("Patient", "c", None).unwrap();
    put(&*store, observation("o", "a", "x", json!("2024-01-01")));
    assert_eq!(
        store.counts().unwrap(),
        [("Observation".to_owned(), 1), ("Patient".to_owned(), 2)]
    );
}

fn jobs_survive_reopening(backend: &dyn Backend) {
    let id = {
        let store = backend.open();
        let request = json!({"url": "http://x/fhir/Patient/$export", "_type": ["Patient"]});
        let mut job = store.create_job(request.clone(), Some("client-a")).unwrap();
        assert_eq!(job.status, JobStatus::Accepted);
        assert_eq!(store.get_job(&job.id).unwrap().as_ref(), Some(&job));
        job.status = JobStatus::InProgress;
        job.transaction_time = Some(store.transaction_time().unwrap());
        job.progress = json!({"Patient": {"cursor": 12, "count": 10}});
        let saved = store.update_job(&job).unwrap();
        assert!(saved.updated >= job.created);
        let other = store.create_job(json!({}), None).unwrap();
        assert!(store.delete_job(&other.id).unwrap());
        assert!(!store.delete_job(&other.id).unwrap());
        job.id
    };
    let store = backend.open();
    let mut job = store.get_job(&id).unwrap().expect("the job survives");
    assert_eq!(job.status, JobStatus::InProgress);
    assert_eq!(job.owner.as_deref(), Some("client-a"));
    assert_eq!(job.progress["Patient"]["cursor"], 12);
    assert!(job.transaction_time.is_some());
    job.status = JobStatus::Completed;
    job.output = Some(json!({"output": [{"type": "Patient", "url": "u", "count": 10}]}));
    store.update_job(&job).unwrap();
    let listed = store.list_jobs().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].output, job.output);
    assert_eq!(listed[0].status, JobStatus::Completed);
    job.id = "missing".into();
    assert!(matches!(store.update_job(&job), Err(Error::JobNotFound(_))));
    assert!(store.get_job("missing").unwrap().is_none());
    for status in [
        "accepted",
        "in-progress",
        "completed",
        "failed",
        "cancelled",
    ] {
        assert_eq!(JobStatus::parse(status).unwrap().as_str(), status);
    }
}

fn resources_survive_reopening(backend: &dyn Backend) {
    let (last, t) = {
        let store = backend.open();
        put(&*store, patient("a", "A", "A", "male", "1980"));
        let t = store.transaction_time().unwrap();
        (put(&*store, patient("a", "B", "A", "male", "1980")), t)
    };
    let store = backend.open();
    assert_eq!(store.read("Patient", "a").unwrap().version, 2);
    assert_eq!(ids(&*store, "Patient", &[("family", "b")]), ["a"]);
    let next = put(&*store, patient("a", "C", "A", "male", "1980"));
    assert_eq!(next.version, 3);
    assert!(next.last_updated > last.last_updated);
    assert!(store.transaction_time().unwrap() > t);
}
