//! One patient: demographics, a clinical timeline (wellness visits, acute illness, COVID-19
//! tests, infections and hospital stays, vaccinations), and the FHIR resources that record it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::json::{J, Raw, W, jw};
use crate::rng::{IdGen, Rng};
use crate::time::{self, DAY};
use crate::vocab::{self, AREAS, CVX, Code, LOINC, Measure, RXNORM, SNOMED, SYNTHEA_ID, UCUM};
use crate::world::{self, World};

/// The resource types the generator writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Ty {
    Patient,
    Encounter,
    Condition,
    Observation,
    DiagnosticReport,
    DocumentReference,
    Immunization,
    Medication,
    MedicationRequest,
    Procedure,
    Claim,
    ExplanationOfBenefit,
    Organization,
    Location,
    Practitioner,
    PractitionerRole,
    Group,
}

impl Ty {
    /// Every type, in file order.
    pub(crate) const ALL: [Ty; 17] = [
        Ty::Patient,
        Ty::Encounter,
        Ty::Condition,
        Ty::Observation,
        Ty::DiagnosticReport,
        Ty::DocumentReference,
        Ty::Immunization,
        Ty::Medication,
        Ty::MedicationRequest,
        Ty::Procedure,
        Ty::Claim,
        Ty::ExplanationOfBenefit,
        Ty::Organization,
        Ty::Location,
        Ty::Practitioner,
        Ty::PractitionerRole,
        Ty::Group,
    ];

    /// The FHIR resource type name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Ty::Patient => "Patient",
            Ty::Encounter => "Encounter",
            Ty::Condition => "Condition",
            Ty::Observation => "Observation",
            Ty::DiagnosticReport => "DiagnosticReport",
            Ty::DocumentReference => "DocumentReference",
            Ty::Immunization => "Immunization",
            Ty::Medication => "Medication",
            Ty::MedicationRequest => "MedicationRequest",
            Ty::Procedure => "Procedure",
            Ty::Claim => "Claim",
            Ty::ExplanationOfBenefit => "ExplanationOfBenefit",
            Ty::Organization => "Organization",
            Ty::Location => "Location",
            Ty::Practitioner => "Practitioner",
            Ty::PractitionerRole => "PractitionerRole",
            Ty::Group => "Group",
        }
    }

    /// The type of a resource type name.
    pub(crate) fn from_name(name: &str) -> Option<Ty> {
        Ty::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Position in [`Ty::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// One generated resource.
#[derive(Debug, Clone)]
pub(crate) struct Res {
    /// Its type.
    pub(crate) ty: Ty,
    /// Its id.
    pub(crate) id: String,
    /// The resource as compact JSON.
    pub(crate) json: String,
    /// What update batches and the truth curve need to know about it.
    pub(crate) tag: Tag,
}

/// A resource's role for update batches and the truth curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    /// Nothing special.
    None,
    /// A vital-sign Observation with a `valueQuantity` (safe to amend or delete).
    Vital,
    /// A Condition whose clinical status is active.
    ActiveCondition,
    /// A Detected SARS-CoV-2 PCR result, with its local day number.
    DetectedPcr(i64),
}

/// A chronic condition of a person: vocabulary index and onset day.
#[derive(Debug, Clone)]
pub(crate) struct ChronicCase {
    /// Index into [`vocab::CHRONIC`].
    pub(crate) kind: usize,
    /// Onset day number.
    pub(crate) onset: i64,
}

/// Demographics and the standing facts of one person.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    /// Patient id.
    pub(crate) id: String,
    /// Given name.
    pub(crate) given: &'static str,
    /// Second given name.
    pub(crate) middle: Option<&'static str>,
    /// Family name.
    pub(crate) family: &'static str,
    /// Maiden family name (married women, often).
    pub(crate) maiden: Option<&'static str>,
    /// Nickname.
    pub(crate) nickname: Option<&'static str>,
    /// Mr., Mrs., Ms., Miss or Master.
    pub(crate) prefix: &'static str,
    /// Administrative gender female (else male).
    pub(crate) female: bool,
    /// Birth day number.
    pub(crate) birth: i64,
    /// Index into [`AREAS`].
    pub(crate) area: usize,
    /// Home city.
    pub(crate) city: &'static str,
    /// Home ZIP code (five digits).
    pub(crate) zip: String,
    /// Home street line.
    pub(crate) line: String,
    /// Home latitude.
    pub(crate) lat: f64,
    /// Home longitude.
    pub(crate) lon: f64,
    /// A former address: line, city, ZIP and the day it ended.
    pub(crate) old_address: Option<(String, &'static str, String, i64)>,
    /// Home phone.
    pub(crate) phone: String,
    /// Mobile phone.
    pub(crate) mobile: Option<String>,
    /// Email address.
    pub(crate) email: String,
    /// Social Security number (999-xx-xxxx).
    pub(crate) ssn: String,
    /// Medical record number (sometimes the id itself).
    pub(crate) mrn: String,
    /// Driver's licence number.
    pub(crate) license: Option<String>,
    /// Passport number.
    pub(crate) passport: Option<String>,
    /// Index into [`vocab::RACES`].
    pub(crate) race: usize,
    /// Hispanic or Latino ethnicity.
    pub(crate) hispanic: bool,
    /// Index into [`vocab::LANGUAGES`].
    pub(crate) language: usize,
    /// Married.
    pub(crate) married: bool,
    /// Mother's maiden name.
    pub(crate) mother_maiden: String,
    /// Index into [`vocab::BIRTH_PLACES`].
    pub(crate) birth_place: usize,
    /// Next of kin: given name, family name, phone.
    pub(crate) contact: Option<(&'static str, &'static str, String)>,
    /// Primary-care organisation.
    pub(crate) org: usize,
    /// Hospital for emergencies and admissions.
    pub(crate) hospital: usize,
    /// Primary-care practitioner.
    pub(crate) pract: usize,
    /// Insurance payer.
    pub(crate) payer: &'static str,
    /// Insurance member id.
    pub(crate) member_id: String,
    /// Household block shared with other patients, if any.
    pub(crate) household: Option<u64>,
    /// Chronic conditions.
    pub(crate) chronic: Vec<ChronicCase>,
    /// Index into the smoking-status answers.
    pub(crate) smoking: usize,
    /// Height in centimetres.
    pub(crate) height_cm: f64,
    /// Body mass index.
    pub(crate) bmi: f64,
}

impl Person {
    /// UTC offset in minutes.
    pub(crate) fn tz(&self) -> i32 {
        AREAS[self.area].offset_min
    }

    /// "Mr. Given Family", as in `Reference.display`.
    pub(crate) fn display(&self) -> String {
        format!("{} {} {}", self.prefix, self.given, self.family)
    }

    /// Age in whole years on a day.
    pub(crate) fn age_on(&self, day: i64) -> i64 {
        time::years_between(self.birth, day)
    }
}

/// A patient's resources and facts, as generated and as later modified by update batches.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// Patient index in the data set.
    pub(crate) index: u64,
    /// Demographics.
    pub(crate) person: Person,
    /// Resources, Patient first.
    pub(crate) resources: Vec<Res>,
    /// Death time, if dead.
    pub(crate) death: Option<i64>,
    /// Whether a later batch deleted the whole patient.
    pub(crate) deleted: bool,
}

/// The window in which a batch stamps `meta.lastUpdated`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp {
    /// Earliest allowed (exclusive of the previous batch's transaction time).
    pub(crate) lo: i64,
    /// Latest allowed (the batch's transaction time minus a second).
    pub(crate) hi: i64,
}

impl Stamp {
    /// The window of batch `b`: everything before its transaction time, and after the previous
    /// batch's for `b > 0`.
    pub(crate) fn of_batch(batch: u32) -> Stamp {
        let hi = world::transaction_time(batch) - 1;
        let lo = if batch == 0 {
            i64::MIN / 2
        } else {
            world::transaction_time(batch - 1) + 1
        };
        Stamp { lo, hi }
    }
}

/// A CodeableConcept with one coding and its text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cc<'a>(pub(crate) &'a str, pub(crate) Code);

impl W for Cc<'_> {
    fn w(&self, j: &mut J) {
        let Cc(system, (code, display)) = *self;
        jw!(j, {"coding": [{"system": system, "code": code, "display": display}], "text": display});
    }
}

/// A one-coding category array (`[{"coding": [{system, code, display}]}]`).
#[derive(Debug, Clone, Copy)]
struct Cat<'a>(&'a str, &'a str, &'a str);

impl W for Cat<'_> {
    fn w(&self, j: &mut J) {
        let Cat(system, code, display) = *self;
        jw!(j, [{"coding": [{"system": system, "code": code, "display": display}]}]);
    }
}

const OBS_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";

/// A UCUM Quantity.
#[derive(Debug, Clone, Copy)]
struct Qty<'a>(f64, &'a str);

impl W for Qty<'_> {
    fn w(&self, j: &mut J) {
        let Qty(value, unit) = *self;
        jw!(j, {"value": value, "unit": unit, "system": UCUM, "code": unit});
    }
}

fn round_to(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

/// An Observation's value.
#[derive(Debug, Clone, Copy)]
enum ObsValue<'a> {
    Quantity(f64, &'a str),
    Concept(Code),
    Text(&'a str),
    BloodPressure(f64, f64),
}

/// `{"reference": …}` or `{"reference": …, "display": …}`, pre-rendered.
fn reference(r: &str, display: Option<&str>) -> String {
    let mut j = J::with_capacity(96);
    j.open_obj();
    jw!(@obj &mut j, "reference": r);
    if let Some(d) = display {
        jw!(@obj &mut j, "display": d);
    }
    j.close_obj();
    j.take()
}

impl<'a> Gen<'a> {
    fn new(w: &'a World, p: &'a Person, rng: Rng, ids: IdGen, batch: u32) -> Gen<'a> {
        let patient_ref = w.local_ref("Patient", &p.id);
        Gen {
            w,
            p,
            rng,
            ids,
            stamp: Stamp::of_batch(batch),
            subject: reference(&patient_ref, None),
            subject_named: reference(&patient_ref, Some(&p.display())),
            out: Vec::with_capacity(96),
        }
    }

    /// A generator appending to an existing patient (update batches).
    pub(crate) fn for_update(w: &'a World, p: &'a Person, index: u64, batch: u32) -> Gen<'a> {
        let rng = Rng::new(&[w.seed, index, u64::from(batch), 0x0DD]);
        let ids = IdGen::new(&[w.seed, index, u64::from(batch), 0x1D]);
        Gen::new(w, p, rng, ids, batch)
    }

    /// `meta` with version 1 and a `lastUpdated` shortly after `t`, inside the batch's window.
    fn meta(&mut self, t: i64) -> String {
        let stamped = (t + self.rng.range(3600, 3 * DAY)).clamp(self.stamp.lo, self.stamp.hi);
        format!(
            r#"{{"versionId":"1","lastUpdated":"{}"}}"#,
            time::instant(stamped)
        )
    }

    fn dt(&self, t: i64) -> String {
        time::date_time(t, self.p.tz())
    }

    fn push(&mut self, ty: Ty, id: String, json: String, tag: Tag) {
        self.out.push(Res { ty, id, json, tag });
    }

    /// Starts a resource: `{"resourceType": …, "id": …, "meta": …`.
    fn begin(&mut self, ty: Ty, id: &str, t: i64) -> J {
        let meta = self.meta(t);
        let mut j = J::with_capacity(1024);
        j.open_obj();
        jw!(@obj &mut j, "resourceType": ty.name(), "id": id, "meta": Raw(&meta));
        j
    }

    fn condition_ref(&self, id: &str, code: Code) -> String {
        reference(&self.w.local_ref("Condition", id), Some(code.1))
    }

    /// Writes the Patient resource.
    fn patient(&mut self, death: Option<i64>, last_activity: i64) {
        let p = self.p;
        let a = &AREAS[p.area];
        let race = vocab::RACES[p.race].0;
        let (eth_code, eth_display) = if p.hispanic {
            ("2135-2", "Hispanic or Latino")
        } else {
            ("2186-5", "Not Hispanic or Latino")
        };
        let (bp_city, bp_state) = vocab::BIRTH_PLACES[p.birth_place];
        let birth_date = time::date(p.birth);
        let meta = self.meta(last_activity);
        let mut j = J::with_capacity(4096);
        j.open_obj();
        jw!(@obj &mut j,
            "resourceType": "Patient",
            "id": p.id,
            "meta": Raw(&meta),
            "text": {
                "status": "generated",
                "div": format!(
                    "<div xmlns=\"http://www.w3.org/1999/xhtml\">{} {}, born {}, MRN {}. Generated by Haven synth.</div>",
                    p.given, p.family, birth_date, p.mrn
                )
            },
            "extension": [
                {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race", "extension": [
                    {"url": "ombCategory", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238", "code": race.0, "display": race.1}},
                    {"url": "text", "valueString": race.1}
                ]},
                {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity", "extension": [
                    {"url": "ombCategory", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238", "code": eth_code, "display": eth_display}},
                    {"url": "text", "valueString": eth_display}
                ]},
                {"url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName", "valueString": p.mother_maiden},
                {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex", "valueCode": if p.female { "F" } else { "M" }},
                {"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace", "valueAddress": {"city": bp_city, "state": bp_state, "country": "US"}}
            ]
        );
        let ident = |j: &mut J, code: &str, display: &str, system: &str, value: &str| {
            jw!(j, {
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": code, "display": display}], "text": display},
                "system": system,
                "value": value
            });
        };
        j.key("identifier");
        j.open_arr();
        jw!(&mut j, {"system": SYNTHEA_ID, "value": p.id});
        ident(
            &mut j,
            "MR",
            "Medical Record Number",
            "http://hospital.smarthealthit.org",
            &p.mrn,
        );
        ident(
            &mut j,
            "SS",
            "Social Security Number",
            "http://hl7.org/fhir/sid/us-ssn",
            &p.ssn,
        );
        if let Some(dl) = &p.license {
            ident(
                &mut j,
                "DL",
                "Driver's License",
                "urn:oid:2.16.840.1.113883.4.3.25",
                dl,
            );
        }
        if let Some(pp) = &p.passport {
            ident(
                &mut j,
                "PPN",
                "Passport Number",
                "http://standardhealthrecord.org/fhir/StructureDefinition/passportNumber",
                pp,
            );
        }
        j.close_arr();
        j.key("name");
        j.open_arr();
        j.open_obj();
        jw!(@obj &mut j, "use": "official", "family": p.family);
        j.key("given");
        j.open_arr();
        jw!(&mut j, p.given);
        if let Some(m) = p.middle {
            jw!(&mut j, m);
        }
        j.close_arr();
        jw!(@obj &mut j, "prefix": [p.prefix]);
        j.close_obj();
        if let Some(m) = p.maiden {
            jw!(&mut j, {"use": "maiden", "family": m, "given": [p.given], "prefix": ["Ms."]});
        }
        if let Some(nick) = p.nickname {
            jw!(&mut j, {"use": "nickname", "given": [nick]});
        }
        j.close_arr();
        j.key("telecom");
        j.open_arr();
        jw!(&mut j, {"system": "phone", "value": p.phone, "use": "home"});
        if let Some(m) = &p.mobile {
            jw!(&mut j, {"system": "phone", "value": m, "use": "mobile"});
        }
        jw!(&mut j, {"system": "email", "value": p.email});
        j.close_arr();
        jw!(@obj &mut j, "gender": if p.female { "female" } else { "male" }, "birthDate": birth_date);
        if self.rng.chance(0.05) {
            let t = p.birth * DAY + self.rng.range(0, DAY - 1) - i64::from(p.tz()) * 60;
            jw!(@obj &mut j, "_birthDate": {"extension": [{
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                "valueDateTime": self.dt(t)
            }]});
        }
        if let Some(d) = death {
            jw!(@obj &mut j, "deceasedDateTime": self.dt(d));
        }
        j.key("address");
        j.open_arr();
        jw!(&mut j, {
            "extension": [{
                "url": "http://hl7.org/fhir/StructureDefinition/geolocation",
                "extension": [
                    {"url": "latitude", "valueDecimal": round_to(p.lat, 6)},
                    {"url": "longitude", "valueDecimal": round_to(p.lon, 6)}
                ]
            }],
            "use": "home",
            "line": [p.line],
            "city": p.city,
            "state": a.state,
            "postalCode": p.zip,
            "country": "US"
        });
        if let Some((line, city, zip, until)) = &p.old_address {
            jw!(&mut j, {
                "use": "old",
                "line": [line],
                "city": city,
                "postalCode": zip,
                "country": "US",
                "period": {"end": time::date(*until)}
            });
        }
        j.close_arr();
        let marital = if p.married {
            ("M", "Married")
        } else {
            ("S", "Never Married")
        };
        jw!(@obj &mut j,
            "maritalStatus": Cc("http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", marital),
            "multipleBirthBoolean": false
        );
        if let Some((given, family, phone)) = &p.contact {
            jw!(@obj &mut j, "contact": [{
                "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "N", "display": "Next-of-Kin"}]}],
                "name": {"family": family, "given": [given]},
                "telecom": [{"system": "phone", "value": phone}],
                "address": {"line": [p.line], "city": p.city, "state": a.state, "postalCode": p.zip}
            }]);
        }
        let lang = vocab::LANGUAGES[p.language].0;
        jw!(@obj &mut j, "communication": [{"language": Cc("urn:ietf:bcp:47", lang)}]);
        j.close_obj();
        let id = p.id.clone();
        self.push(Ty::Patient, id, j.take(), Tag::None);
    }

    fn event(&mut self, t: i64, event: &Event, recorded: &mut [bool], death: Option<i64>) {
        match event {
            Event::Wellness => self.wellness(t, recorded),
            Event::Acute(kind) => self.acute(t, *kind),
            Event::CovidTest { positive, hospital } => {
                self.covid_test(t, *positive, *hospital, death);
            }
            Event::CovidVaccine { vaccine, dose } => {
                let (code, doses, _, _) = vocab::COVID_VACCINES[*vaccine];
                self.vaccination(t, code, Some((*dose, doses)));
            }
            Event::Flu => self.vaccination(t, vocab::FLU_VACCINE, None),
        }
    }

    fn open(
        &mut self,
        start: i64,
        minutes: i64,
        class: &'static str,
        code: Code,
        hospital: bool,
    ) -> Enc {
        let org = if hospital {
            self.p.hospital
        } else {
            self.p.org
        };
        let pract = if hospital {
            *self.rng.pick(&self.w.orgs[org].practitioners)
        } else {
            self.p.pract
        };
        let id = self.ids.next_id();
        let o = &self.w.orgs[org];
        let pr = &self.w.practitioners[pract];
        Enc {
            r#ref: reference(&self.w.local_ref("Encounter", &id), None),
            pract_ref: reference(&self.w.practitioner_ref(pr), Some(&pr.display())),
            org_ref: reference(&self.w.org_ref(o), Some(&o.name)),
            loc_ref: reference(&self.w.location_ref(o), Some(&o.name)),
            start_dt: self.dt(start),
            end_dt: self.dt(start + minutes * 60),
            id,
            start,
            end: start + minutes * 60,
            org,
            pract,
            class,
            code,
            bill: Billing::default(),
        }
    }

    fn encounter(&mut self, e: &Enc, reason: Option<(&str, Code)>, part_of: Option<&Enc>) {
        let mut j = self.begin(Ty::Encounter, &e.id, e.end);
        jw!(@obj &mut j,
            "identifier": [{"use": "official", "system": SYNTHEA_ID, "value": e.id}],
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": e.class},
            "type": [Cc(SNOMED, e.code)],
            "subject": Raw(&self.subject_named),
            "participant": [{
                "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PPRF", "display": "primary performer"}], "text": "primary performer"}],
                "period": {"start": e.start_dt, "end": e.end_dt},
                "individual": Raw(&e.pract_ref)
            }],
            "period": {"start": e.start_dt, "end": e.end_dt}
        );
        if let Some((condition_id, code)) = reason {
            jw!(@obj &mut j,
                "reasonCode": [Cc(SNOMED, code)],
                "reasonReference": [Raw(&self.condition_ref(condition_id, code))]
            );
        }
        jw!(@obj &mut j, "location": [{"location": Raw(&e.loc_ref)}], "serviceProvider": Raw(&e.org_ref));
        if let Some(parent) = part_of {
            jw!(@obj &mut j, "partOf": Raw(&parent.r#ref));
        }
        j.close_obj();
        self.push(Ty::Encounter, e.id.clone(), j.take(), Tag::None);
    }

    fn condition(
        &mut self,
        e: &mut Enc,
        code: Code,
        onset: &str,
        abatement: Option<i64>,
        problem_list: bool,
    ) -> String {
        let id = self.ids.next_id();
        let resolved = abatement.is_some_and(|a| a < self.stamp.hi);
        let mut j = self.begin(Ty::Condition, &id, e.end);
        let cat = if problem_list {
            Cat(
                "http://terminology.hl7.org/CodeSystem/condition-category",
                "problem-list-item",
                "Problem List Item",
            )
        } else {
            Cat(
                "http://terminology.hl7.org/CodeSystem/condition-category",
                "encounter-diagnosis",
                "Encounter Diagnosis",
            )
        };
        jw!(@obj &mut j,
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": if resolved { "resolved" } else { "active" }}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
            "category": cat,
            "code": Cc(SNOMED, code),
            "subject": Raw(&self.subject),
            "encounter": Raw(&e.r#ref),
            "onsetDateTime": onset
        );
        if let Some(a) = abatement.filter(|_| resolved) {
            jw!(@obj &mut j, "abatementDateTime": self.dt(a));
        }
        jw!(@obj &mut j, "recordedDate": e.start_dt);
        if code == vocab::COVID_19 && self.rng.chance(0.3) {
            let note = format!(
                "{} {} reports symptom onset two days before the visit; household contacts advised to test.",
                self.p.given, self.p.family
            );
            jw!(@obj &mut j, "note": [{"text": note}]);
        }
        j.close_obj();
        e.bill.conditions.push((id.clone(), code));
        let tag = if resolved {
            Tag::None
        } else {
            Tag::ActiveCondition
        };
        self.push(Ty::Condition, id.clone(), j.take(), tag);
        id
    }

    fn observation(
        &mut self,
        e: &Enc,
        t: i64,
        cat: &str,
        code: Code,
        value: ObsValue<'_>,
    ) -> String {
        let id = self.ids.next_id();
        let mut j = self.begin(Ty::Observation, &id, t);
        let effective = self.dt(t);
        jw!(@obj &mut j,
            "status": "final",
            "category": Cat(OBS_CATEGORY, cat, cat),
            "code": Cc(LOINC, code),
            "subject": Raw(&self.subject),
            "encounter": Raw(&e.r#ref),
            "effectiveDateTime": effective,
            "issued": time::instant(t + 1800)
        );
        let mut tag = Tag::None;
        match value {
            ObsValue::Quantity(v, unit) => {
                jw!(@obj &mut j, "valueQuantity": Qty(v, unit));
                if cat == "vital-signs" {
                    tag = Tag::Vital;
                }
            }
            ObsValue::Concept(c) => {
                jw!(@obj &mut j, "valueCodeableConcept": Cc(SNOMED, c));
                if code == vocab::COVID_PCR && c == vocab::DETECTED {
                    tag = Tag::DetectedPcr(time::local_day(t, self.p.tz()));
                }
            }
            ObsValue::Text(s) => jw!(@obj &mut j, "valueString": s),
            ObsValue::BloodPressure(sys, dia) => jw!(@obj &mut j, "component": [
                {"code": Cc(LOINC, vocab::vital::DIASTOLIC), "valueQuantity": Qty(dia, "mm[Hg]")},
                {"code": Cc(LOINC, vocab::vital::SYSTOLIC), "valueQuantity": Qty(sys, "mm[Hg]")}
            ]),
        }
        if self.rng.chance(0.01) {
            let serial = format!("SN-{}", self.rng.digits(8));
            jw!(@obj &mut j, "extension": [{"url": "http://example.org/fhir/StructureDefinition/device-serial", "valueString": serial}]);
        }
        j.close_obj();
        self.push(Ty::Observation, id.clone(), j.take(), tag);
        id
    }

    fn measure(
        &mut self,
        e: &Enc,
        t: i64,
        cat: &str,
        m: &Measure,
        shift: f64,
    ) -> (String, &'static str) {
        let (code, display, unit, mean, sd, dec) = *m;
        let v = round_to(self.rng.gauss(mean * shift, sd).max(mean * 0.05), dec);
        let id = self.observation(e, t, cat, (code, display), ObsValue::Quantity(v, unit));
        (id, display)
    }

    fn vitals(&mut self, e: &Enc, fever: bool, full: bool) {
        let t = e.start + 300;
        let age = self.p.age_on(e.start / DAY);
        let weight = self.p.bmi * (self.p.height_cm / 100.0).powi(2);
        let vs = "vital-signs";
        if full {
            let h = round_to(self.p.height_cm, 1);
            self.observation(e, t, vs, vocab::vital::HEIGHT, ObsValue::Quantity(h, "cm"));
            let wt = round_to(weight + self.rng.gauss(0.0, 1.0), 1);
            self.observation(e, t, vs, vocab::vital::WEIGHT, ObsValue::Quantity(wt, "kg"));
            if age >= 2 {
                let bmi = round_to(self.p.bmi + self.rng.gauss(0.0, 0.3), 2);
                self.observation(
                    e,
                    t,
                    vs,
                    vocab::vital::BMI,
                    ObsValue::Quantity(bmi, "kg/m2"),
                );
            }
        }
        if age >= 3 {
            let sys = self.rng.gauss(118.0 + age as f64 * 0.25, 12.0).round();
            let dia = self.rng.gauss(76.0, 8.0).round();
            self.observation(
                e,
                t,
                vs,
                vocab::vital::BP,
                ObsValue::BloodPressure(sys, dia),
            );
        }
        let hr = self.rng.gauss(if fever { 96.0 } else { 74.0 }, 9.0).round();
        self.observation(
            e,
            t,
            vs,
            vocab::vital::HEART_RATE,
            ObsValue::Quantity(hr, "/min"),
        );
        let rr = self.rng.gauss(if fever { 20.0 } else { 15.0 }, 2.0).round();
        self.observation(
            e,
            t,
            vs,
            vocab::vital::RESP_RATE,
            ObsValue::Quantity(rr, "/min"),
        );
        if full && age >= 18 {
            let pain = self.rng.weighted(&[0.5, 0.2, 0.15, 0.1, 0.05]) as f64;
            self.observation(
                e,
                t,
                vs,
                vocab::vital::PAIN,
                ObsValue::Quantity(pain, "{score}"),
            );
        }
        if fever || !full {
            let temp = round_to(self.rng.gauss(if fever { 38.6 } else { 36.9 }, 0.35), 1);
            self.observation(
                e,
                t,
                vs,
                vocab::vital::TEMPERATURE,
                ObsValue::Quantity(temp, "Cel"),
            );
        }
    }

    fn panel(&mut self, e: &mut Enc, panel: (Code, &[Measure]), shift: f64) {
        let t = e.start + 900;
        let results: Vec<String> = panel
            .1
            .iter()
            .map(|m| {
                let (id, display) = self.measure(e, t, "laboratory", m, shift);
                reference(&self.w.local_ref("Observation", &id), Some(display))
            })
            .collect();
        self.lab_report(e, t, panel.0, &results);
    }

    fn lab_report(&mut self, e: &Enc, t: i64, code: Code, results: &[String]) {
        let id = self.ids.next_id();
        let mut j = self.begin(Ty::DiagnosticReport, &id, t);
        jw!(@obj &mut j,
            "status": "final",
            "category": Cat("http://terminology.hl7.org/CodeSystem/v2-0074", "LAB", "Laboratory"),
            "code": Cc(LOINC, code),
            "subject": Raw(&self.subject),
            "encounter": Raw(&e.r#ref),
            "effectiveDateTime": self.dt(t),
            "issued": time::instant(t + 3600),
            "performer": [Raw(&e.org_ref)]
        );
        j.key("result");
        j.open_arr();
        for r in results {
            j.raw(r);
        }
        j.close_arr();
        j.close_obj();
        self.push(Ty::DiagnosticReport, id, j.take(), Tag::None);
    }

    fn procedure(&mut self, e: &mut Enc, code: Code, reason: Option<&(String, Code)>) {
        let id = self.ids.next_id();
        let mut j = self.begin(Ty::Procedure, &id, e.end);
        jw!(@obj &mut j,
            "status": "completed",
            "code": Cc(SNOMED, code),
            "subject": Raw(&self.subject),
            "encounter": Raw(&e.r#ref),
            "performedPeriod": {"start": e.start_dt, "end": self.dt(e.start.max(e.end - 900))},
            "location": Raw(&e.loc_ref)
        );
        if let Some((cid, ccode)) = reason {
            jw!(@obj &mut j, "reasonReference": [Raw(&self.condition_ref(cid, *ccode))]);
        }
        j.close_obj();
        e.bill.procedures.push((id.clone(), code));
        self.push(Ty::Procedure, id, j.take(), Tag::None);
    }

    fn medication(
        &mut self,
        e: &mut Enc,
        code: Code,
        reason: Option<&(String, Code)>,
        active: bool,
    ) {
        let id = self.ids.next_id();
        let med = if self.rng.chance(0.25) {
            let mid = self.ids.next_id();
            let mut m = self.begin(Ty::Medication, &mid, e.end);
            jw!(@obj &mut m, "code": Cc(RXNORM, code), "status": "active");
            m.close_obj();
            let r = reference(&self.w.local_ref("Medication", &mid), None);
            self.push(Ty::Medication, mid, m.take(), Tag::None);
            Some(r)
        } else {
            None
        };
        let mut j = self.begin(Ty::MedicationRequest, &id, e.end);
        jw!(@obj &mut j, "status": if active { "active" } else { "stopped" }, "intent": "order");
        match &med {
            Some(r) => jw!(@obj &mut j, "medicationReference": Raw(r)),
            None => jw!(@obj &mut j, "medicationCodeableConcept": Cc(RXNORM, code)),
        }
        jw!(@obj &mut j,
            "subject": Raw(&self.subject),
            "encounter": Raw(&e.r#ref),
            "authoredOn": e.start_dt,
            "requester": Raw(&e.pract_ref)
        );
        if let Some((cid, ccode)) = reason {
            jw!(@obj &mut j, "reasonReference": [Raw(&self.condition_ref(cid, *ccode))]);
        }
        jw!(@obj &mut j, "dosageInstruction": [{"sequence": 1_i64, "text": "Take as directed.", "asNeededBoolean": !active}]);
        j.close_obj();
        e.bill.medications.push((id.clone(), code));
        self.push(Ty::MedicationRequest, id, j.take(), Tag::None);
    }

    fn immunization(&mut self, e: &mut Enc, code: Code, dose: Option<(u32, u32)>) {
        let id = self.ids.next_id();
        let mut j = self.begin(Ty::Immunization, &id, e.end);
        let lot = format!(
            "{}{}",
            ["EL", "FA", "EW", "0"][self.rng.below(4) as usize],
            self.rng.digits(4)
        );
        jw!(@obj &mut j,
            "status": "completed",
            "vaccineCode": Cc(CVX, code),
            "patient": Raw(&self.subject),
            "encounter": Raw(&e.r#ref),
            "occurrenceDateTime": e.start_dt,
            "primarySource": true,
            "location": Raw(&e.loc_ref),
            "lotNumber": lot
        );
        if let Some((n, series)) = dose {
            if n > series {
                jw!(@obj &mut j, "protocolApplied": [{"series": "Booster", "doseNumberPositiveInt": n}]);
            } else {
                jw!(@obj &mut j, "protocolApplied": [{"series": "Primary series", "doseNumberPositiveInt": n, "seriesDosesPositiveInt": series}]);
            }
        }
        j.close_obj();
        e.bill.immunizations.push(id.clone());
        self.push(Ty::Immunization, id, j.take(), Tag::None);
    }

    /// A clinical note, as a DiagnosticReport with `presentedForm` and as a DocumentReference
    /// (sometimes only a `url`, as some EHRs export).
    fn note(&mut self, e: &Enc, kind: Code, complaint: &str, plan: &[String]) {
        let p = self.p;
        let a = &AREAS[p.area];
        let day = e.start / DAY;
        let o = &self.w.orgs[e.org];
        let doctor = self.w.practitioners[e.pract].display();
        let race = vocab::RACES[p.race].0.1.to_lowercase();
        let mut text = format!(
            "{}\n\n# Chief Complaint\n{complaint}\n\n# History of Present Illness\n{} {} (DOB {}, MRN {}) is a {} year-old {} {}.\nLives at {}, {}, {} {}. Phone {}.\n\n# Social History\n{}\nInsurance: {}.\n\n# Assessment and Plan\n",
            time::date(time::local_day(e.start, p.tz())),
            p.given,
            p.family,
            time::date(p.birth),
            p.mrn,
            p.age_on(day),
            race,
            if p.female { "female" } else { "male" },
            p.line,
            p.city,
            a.state,
            p.zip,
            p.phone,
            if p.married {
                "Patient is married."
            } else {
                "Patient is single."
            },
            p.payer,
        );
        if e.bill.conditions.is_empty() {
            text.push_str("No new findings.\n");
        } else {
            text.push_str("Patient is presenting with ");
            let names: Vec<&str> = e.bill.conditions.iter().map(|c| c.1.1).collect();
            text.push_str(&names.join(", ").to_lowercase());
            text.push_str(".\n");
        }
        for line in plan {
            text.push_str("- ");
            text.push_str(line);
            text.push('\n');
        }
        text.push_str(&format!("\nSeen by {doctor} at {}.\n", o.name));
        let data = BASE64.encode(text.as_bytes());
        let t = e.end;
        let issued = time::instant(t);
        let mut codes = J::with_capacity(160);
        jw!(&mut codes, [
            {"system": LOINC, "code": kind.0, "display": kind.1},
            {"system": LOINC, "code": vocab::NOTE_EP.0, "display": vocab::NOTE_EP.1}
        ]);
        let codes = codes.take();
        let dr_id = self.ids.next_id();
        let mut j = self.begin(Ty::DiagnosticReport, &dr_id, t);
        jw!(@obj &mut j,
            "status": "final",
            "category": [{"coding": Raw(&codes)}],
            "code": {"coding": Raw(&codes)},
            "subject": Raw(&self.subject),
            "encounter": Raw(&e.r#ref),
            "effectiveDateTime": e.start_dt,
            "issued": issued,
            "performer": [Raw(&e.pract_ref)],
            "presentedForm": [{"contentType": "text/plain; charset=utf-8", "data": data}]
        );
        j.close_obj();
        self.push(Ty::DiagnosticReport, dr_id.clone(), j.take(), Tag::None);

        let doc_id = self.ids.next_id();
        let url_only = self.rng.chance(0.1);
        let mut j = self.begin(Ty::DocumentReference, &doc_id, t);
        jw!(@obj &mut j,
            "identifier": [{"system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{dr_id}")}],
            "status": "current",
            "type": {"coding": Raw(&codes)},
            "category": [{"coding": [{"system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category", "code": "clinical-note", "display": "Clinical Note"}]}],
            "subject": Raw(&self.subject),
            "date": issued,
            "author": [Raw(&e.pract_ref)],
            "custodian": Raw(&e.org_ref)
        );
        j.key("content");
        j.open_arr();
        j.open_obj();
        if url_only {
            let url = format!("https://notes.example.org/Binary/{doc_id}");
            jw!(@obj &mut j, "attachment": {"contentType": "text/plain; charset=utf-8", "url": url});
        } else {
            jw!(@obj &mut j, "attachment": {"contentType": "text/plain; charset=utf-8", "data": data});
        }
        jw!(@obj &mut j, "format": {"system": "http://ihe.net/fhir/ValueSet/IHE.FormatCode.codesystem", "code": "urn:ihe:iti:xds:2017:mimeTypeSufficient", "display": "mimeType Sufficient"});
        j.close_obj();
        j.close_arr();
        jw!(@obj &mut j, "context": {"encounter": [Raw(&e.r#ref)], "period": {"start": e.start_dt, "end": e.end_dt}});
        j.close_obj();
        self.push(Ty::DocumentReference, doc_id, j.take(), Tag::None);
    }

    /// The encounter's Claim and ExplanationOfBenefit, and one pharmacy Claim per prescription.
    fn claims(&mut self, e: &Enc) {
        let institutional = matches!(e.class, "IMP" | "EMER" | "OBSENC");
        let claim_type = if institutional {
            "institutional"
        } else {
            "professional"
        };
        let payer = self.p.payer;
        let claim_id = self.ids.next_id();

        let mut items = J::with_capacity(1024);
        items.open_arr();
        jw!(&mut items, {"sequence": 1_usize, "productOrService": Cc(SNOMED, e.code), "encounter": [Raw(&e.r#ref)]});
        let mut seq = 1;
        for (i, (_, code)) in e.bill.conditions.iter().enumerate() {
            seq += 1;
            jw!(&mut items, {"sequence": seq, "diagnosisSequence": [i + 1], "productOrService": Cc(SNOMED, *code)});
        }
        for (i, (_, code)) in e.bill.procedures.iter().enumerate() {
            seq += 1;
            let net = round_to(self.rng.uniform(50.0, 900.0), 2);
            jw!(&mut items, {"sequence": seq, "procedureSequence": [i + 1], "productOrService": Cc(SNOMED, *code), "net": {"value": net, "currency": "USD"}});
        }
        items.close_arr();
        let items = items.take();
        let mut diagnosis = J::with_capacity(256);
        diagnosis.open_arr();
        for (i, (cid, _)) in e.bill.conditions.iter().enumerate() {
            let r = self.w.local_ref("Condition", cid);
            jw!(&mut diagnosis, {"sequence": i + 1, "diagnosisReference": {"reference": r}});
        }
        diagnosis.close_arr();
        let diagnosis = diagnosis.take();

        let total = round_to(
            self.rng
                .uniform(80.0, if institutional { 9000.0 } else { 600.0 }),
            2,
        );
        let mut j = self.begin(Ty::Claim, &claim_id, e.end);
        jw!(@obj &mut j,
            "status": "active",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": claim_type}]},
            "use": "claim",
            "patient": Raw(&self.subject_named),
            "billablePeriod": {"start": e.start_dt, "end": e.end_dt},
            "created": e.end_dt,
            "provider": Raw(&e.org_ref),
            "priority": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/processpriority", "code": "normal"}]},
            "facility": Raw(&e.loc_ref)
        );
        if !e.bill.immunizations.is_empty() {
            j.key("supportingInfo");
            j.open_arr();
            for (i, iid) in e.bill.immunizations.iter().enumerate() {
                let r = self.w.local_ref("Immunization", iid);
                jw!(&mut j, {
                    "sequence": i + 1,
                    "category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claiminformationcategory", "code": "info"}]},
                    "valueReference": {"reference": r}
                });
            }
            j.close_arr();
        }
        if !e.bill.conditions.is_empty() {
            jw!(@obj &mut j, "diagnosis": Raw(&diagnosis));
        }
        if !e.bill.procedures.is_empty() {
            j.key("procedure");
            j.open_arr();
            for (i, (pid, _)) in e.bill.procedures.iter().enumerate() {
                let r = self.w.local_ref("Procedure", pid);
                jw!(&mut j, {"sequence": i + 1, "procedureReference": {"reference": r}});
            }
            j.close_arr();
        }
        jw!(@obj &mut j,
            "insurance": [{"sequence": 1_usize, "focal": true, "coverage": {"display": payer}}],
            "item": Raw(&items),
            "total": {"value": total, "currency": "USD"}
        );
        j.close_obj();
        self.push(Ty::Claim, claim_id.clone(), j.take(), Tag::None);

        let pract_only = reference(
            &self.w.practitioner_ref(&self.w.practitioners[e.pract]),
            None,
        );
        let paid = if payer == "NO_INSURANCE" {
            0.0
        } else {
            round_to(total * self.rng.uniform(0.6, 0.9), 2)
        };
        let eob_id = self.ids.next_id();
        let mut j = self.begin(Ty::ExplanationOfBenefit, &eob_id, e.end + 7 * DAY);
        jw!(@obj &mut j,
            "contained": [
                {
                    "resourceType": "ServiceRequest",
                    "id": "referral",
                    "status": "completed",
                    "intent": "order",
                    "subject": Raw(&self.subject),
                    "requester": Raw(&pract_only),
                    "performer": [Raw(&pract_only)]
                },
                {
                    "resourceType": "Coverage",
                    "id": "coverage",
                    "status": "active",
                    "type": {"text": payer},
                    "subscriberId": self.p.member_id,
                    "beneficiary": Raw(&self.subject),
                    "payor": [{"display": payer}]
                }
            ],
            "identifier": [
                {"system": "https://bluebutton.cms.gov/resources/variables/clm_id", "value": claim_id},
                {"system": "https://bluebutton.cms.gov/resources/identifier/claim-group", "value": "99999999999"}
            ],
            "status": "active",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": claim_type}]},
            "use": "claim",
            "patient": Raw(&self.subject),
            "billablePeriod": {"start": e.start_dt, "end": e.end_dt},
            "created": e.end_dt,
            "insurer": {"display": payer},
            "provider": Raw(&e.pract_ref),
            "referral": {"reference": "#referral"},
            "facility": Raw(&e.loc_ref),
            "claim": {"reference": self.w.local_ref("Claim", &claim_id)},
            "outcome": "complete",
            "careTeam": [{"sequence": 1_usize, "provider": Raw(&pract_only), "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claimcareteamrole", "code": "primary", "display": "Primary Care Practitioner"}]}}],
            "diagnosis": Raw(&diagnosis),
            "insurance": [{"focal": true, "coverage": {"reference": "#coverage", "display": payer}}],
            "item": Raw(&items),
            "total": [{"category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "submitted", "display": "Submitted Amount"}], "text": "Submitted Amount"}, "amount": {"value": total, "currency": "USD"}}],
            "payment": {"amount": {"value": paid, "currency": "USD"}}
        );
        j.close_obj();
        self.push(Ty::ExplanationOfBenefit, eob_id, j.take(), Tag::None);

        for (mid, code) in &e.bill.medications {
            let id = self.ids.next_id();
            let cost = round_to(self.rng.uniform(5.0, 400.0), 2);
            let mut j = self.begin(Ty::Claim, &id, e.end);
            jw!(@obj &mut j,
                "status": "active",
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "pharmacy"}]},
                "use": "claim",
                "patient": Raw(&self.subject_named),
                "billablePeriod": {"start": e.start_dt, "end": e.end_dt},
                "created": e.end_dt,
                "provider": Raw(&e.org_ref),
                "priority": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/processpriority", "code": "normal"}]},
                "prescription": {"reference": self.w.local_ref("MedicationRequest", mid)},
                "insurance": [{"sequence": 1_usize, "focal": true, "coverage": {"display": payer}}],
                "item": [{"sequence": 1_usize, "productOrService": Cc(RXNORM, *code), "encounter": [Raw(&e.r#ref)]}],
                "total": {"value": cost, "currency": "USD"}
            );
            j.close_obj();
            self.push(Ty::Claim, id, j.take(), Tag::None);
        }
    }

    /// A wellness visit: vitals, newly recorded chronic problems and their prescriptions, labs,
    /// sometimes a flu shot and the PRAPARE address question, a note and the claims.
    pub(crate) fn wellness(&mut self, t: i64, recorded: &mut [bool]) {
        let day = t / DAY;
        let age = self.p.age_on(day);
        let code = if age < 18 {
            vocab::encounter::WELL_CHILD
        } else {
            vocab::encounter::CHECKUP
        };
        let minutes = self.rng.range(15, 40);
        let mut e = self.open(t, minutes, "AMB", code, false);
        self.vitals(&e, false, true);
        if age >= 12 {
            let answer = vocab::SMOKING.1[self.p.smoking];
            self.observation(
                &e,
                t + 600,
                "survey",
                vocab::SMOKING.0,
                ObsValue::Concept(answer),
            );
        }
        if age >= 18 && self.rng.chance(0.15) {
            let a = &AREAS[self.p.area];
            let addr = format!(
                "{}, {}, {} {}",
                self.p.line, self.p.city, a.state, self.p.zip
            );
            self.observation(
                &e,
                t + 600,
                "social-history",
                vocab::PRAPARE_ADDRESS,
                ObsValue::Text(&addr),
            );
        }
        let mut plan = Vec::new();
        let mut has = [false; 2];
        for (i, case) in self.p.chronic.iter().enumerate() {
            if case.onset > day {
                continue;
            }
            let c = &vocab::CHRONIC[case.kind];
            has[0] |= c.code.0 == "44054006";
            has[1] |= c.code.0 == "55822004";
            let cond = if recorded[i] {
                None
            } else {
                recorded[i] = true;
                let onset = if case.onset < world::history_start() && self.rng.chance(0.3) {
                    // Partial dates, as older records carry.
                    let (y, m, _) = time::civil_from_days(case.onset);
                    if self.rng.chance(0.5) {
                        format!("{y:04}")
                    } else {
                        format!("{y:04}-{m:02}")
                    }
                } else {
                    self.dt(case.onset * DAY + 12 * 3600)
                };
                let id = self.condition(&mut e, c.code, &onset, None, true);
                Some((id, c.code))
            };
            for &med in c.meds {
                if cond.is_some() || self.rng.chance(0.4) {
                    self.medication(&mut e, med, cond.as_ref(), true);
                    plan.push(format!("prescribed {}", med.1.to_lowercase()));
                }
            }
        }
        if age >= 18 && self.rng.chance(0.3) {
            self.panel(&mut e, vocab::BMP, 1.0);
        }
        if (has[0] || has[1]) && self.rng.chance(0.5) {
            self.panel(&mut e, vocab::LIPID, 1.0);
        }
        if self.rng.chance(0.1) {
            self.panel(&mut e, vocab::CBC, 1.0);
        }
        if !e.bill.medications.is_empty() {
            self.procedure(&mut e, vocab::procedure::MED_RECONCILIATION, None);
        }
        let (_, month, _) = time::civil_from_days(day);
        if !(4..=8).contains(&month) && self.rng.chance(0.55) {
            self.immunization(&mut e, vocab::FLU_VACCINE, None);
            plan.push("seasonal influenza vaccine given".to_string());
        }
        self.encounter(&e, None, None);
        self.note(&e, vocab::NOTE_HP, "No complaints.", &plan);
        self.claims(&e);
    }

    fn acute(&mut self, t: i64, kind: usize) {
        let a = &vocab::ACUTE[kind];
        let observation_stay = a.emergency && self.rng.chance(0.15);
        let (class, code, minutes) = match (a.emergency, observation_stay) {
            (true, true) => (
                "OBSENC",
                vocab::encounter::EMERGENCY,
                self.rng.range(600, 1400),
            ),
            (true, false) => ("EMER", vocab::encounter::EMERGENCY, self.rng.range(60, 240)),
            _ => ("AMB", vocab::encounter::URGENT, self.rng.range(15, 30)),
        };
        let mut e = self.open(t, minutes, class, code, a.emergency);
        let abatement = t + self.rng.range(5, 20) * DAY;
        let onset = e.start_dt.clone();
        let cid = self.condition(&mut e, a.code, &onset, Some(abatement), false);
        self.encounter(&e, Some((&cid, a.code)), None);
        let reason = (cid, a.code);
        self.vitals(&e, false, false);
        let mut plan = Vec::new();
        if let Some(p) = a.procedure {
            self.procedure(&mut e, p, Some(&reason));
            plan.push(p.1.to_lowercase());
        }
        if let Some(m) = a.med {
            self.medication(&mut e, m, Some(&reason), false);
            plan.push(format!("prescribed {}", m.1.to_lowercase()));
        }
        let kind = if a.emergency {
            vocab::NOTE_ED
        } else {
            vocab::NOTE_HP
        };
        self.note(&e, kind, a.code.1, &plan);
        self.claims(&e);
    }

    /// A COVID-19 test visit (Detected or Not detected), and for some cases a hospital stay.
    pub(crate) fn covid_test(
        &mut self,
        t: i64,
        positive: bool,
        hospital: Option<Hospital>,
        death: Option<i64>,
    ) {
        let day = t / DAY;
        let minutes = self.rng.range(15, 45);
        let mut e = self.open(t, minutes, "AMB", vocab::encounter::SYMPTOM, false);
        self.encounter(&e, None, None);
        let onset = e.start_dt.clone();
        let suspected_end = t + if positive { 0 } else { 2 * DAY };
        self.condition(
            &mut e,
            vocab::COVID_SUSPECTED,
            &onset,
            Some(suspected_end),
            false,
        );
        let mut covid = None;
        if positive {
            for &(code, p) in vocab::COVID_SYMPTOMS {
                if self.rng.chance(p) {
                    let resolved = t + self.rng.range(5, 20) * DAY;
                    self.condition(&mut e, code, &onset, Some(resolved), false);
                }
            }
            let end = t + self.rng.range(14, 28) * DAY;
            let end = death.map_or(end, |d| end.min(d));
            let id = self.condition(&mut e, vocab::COVID_19, &onset, Some(end), false);
            covid = Some((id, vocab::COVID_19));
        } else if self.rng.chance(0.6) {
            let (code, _) = vocab::COVID_SYMPTOMS[1];
            self.condition(&mut e, code, &onset, Some(t + 7 * DAY), false);
        }
        let fever = positive && self.rng.chance(0.8);
        self.vitals(&e, fever, false);
        let pt = e.start + 600;
        let spo2 = round_to(
            self.rng
                .gauss(if positive { 94.0 } else { 97.5 }, 1.5)
                .min(100.0),
            1,
        );
        self.observation(
            &e,
            pt,
            "vital-signs",
            vocab::vital::SPO2,
            ObsValue::Quantity(spo2, "%"),
        );
        let result = if positive {
            vocab::DETECTED
        } else {
            vocab::NOT_DETECTED
        };
        let pcr = self.observation(
            &e,
            pt,
            "laboratory",
            vocab::COVID_PCR,
            ObsValue::Concept(result),
        );
        let pcr_ref = reference(
            &self.w.local_ref("Observation", &pcr),
            Some(vocab::COVID_PCR.1),
        );
        self.lab_report(&e, pt, vocab::COVID_PCR, &[pcr_ref]);
        if day >= time::days_from_civil(2021, 1, 1) && self.rng.chance(0.35) {
            self.observation(
                &e,
                pt,
                "laboratory",
                vocab::COVID_ANTIGEN,
                ObsValue::Concept(result),
            );
        }
        if self.rng.chance(0.2) {
            let (panel, members) = vocab::RESPIRATORY_PANEL;
            let results: Vec<String> = members
                .iter()
                .map(|&code| {
                    let id = self.observation(
                        &e,
                        pt,
                        "laboratory",
                        code,
                        ObsValue::Concept(vocab::NEGATIVE),
                    );
                    reference(&self.w.local_ref("Observation", &id), Some(code.1))
                })
                .collect();
            self.lab_report(&e, pt, panel, &results);
        }
        self.procedure(&mut e, vocab::procedure::FACE_MASK, covid.as_ref());
        let plan = vec![if positive {
            "isolate at home for 10 days; return if short of breath".to_string()
        } else {
            "SARS-CoV-2 not detected; symptomatic care".to_string()
        }];
        self.note(
            &e,
            vocab::NOTE_HP,
            "Fever and cough; requests COVID-19 test.",
            &plan,
        );
        self.claims(&e);
        if let (Some(h), Some(covid)) = (hospital, covid) {
            self.hospital_stay(t + h.delay_days * DAY, h, &covid);
        }
    }

    fn hospital_stay(&mut self, t: i64, h: Hospital, covid: &(String, Code)) {
        let mut e = self.open(
            t,
            h.stay_days * 24 * 60,
            "IMP",
            vocab::encounter::ISOLATION,
            true,
        );
        self.encounter(&e, Some((&covid.0, covid.1)), None);
        let onset = e.start_dt.clone();
        let recovery = e.end + self.rng.range(3, 20) * DAY;
        let mut conditions = Vec::new();
        let n = if h.icu {
            vocab::COVID_INPATIENT_CONDITIONS.len()
        } else {
            3
        };
        for &code in &vocab::COVID_INPATIENT_CONDITIONS[..n] {
            if code.0 == "233604007" || self.rng.chance(0.7) {
                let id = self.condition(&mut e, code, &onset, Some(recovery), false);
                conditions.push((id, code));
            }
        }
        self.vitals(&e, true, true);
        let spo2 = round_to(self.rng.gauss(88.0, 3.0), 1);
        self.observation(
            &e,
            t + 600,
            "vital-signs",
            vocab::vital::SPO2,
            ObsValue::Quantity(spo2, "%"),
        );
        let lt = t + 3600;
        for m in vocab::COVID_INPATIENT_LABS {
            self.measure(&e, lt, "laboratory", m, if h.icu { 1.6 } else { 1.0 });
        }
        self.panel(&mut e, vocab::CBC, 1.0);
        self.procedure(&mut e, vocab::procedure::CHEST_XRAY, conditions.first());
        self.procedure(
            &mut e,
            vocab::procedure::OXYGEN,
            conditions.get(1).or(conditions.first()),
        );
        self.medication(
            &mut e,
            ("313782", "Acetaminophen 325 MG Oral Tablet"),
            Some(covid),
            false,
        );
        let mut plan = vec![
            "oxygen by mask".to_string(),
            "acetaminophen as needed".to_string(),
        ];
        if h.icu {
            let start = t + self.rng.range(1, h.stay_days.max(2) - 1) * DAY;
            let mut icu = self.open(start, 3 * 24 * 60, "IMP", vocab::encounter::ICU, true);
            self.encounter(&icu, Some((&covid.0, covid.1)), Some(&e));
            self.procedure(&mut icu, vocab::procedure::PRONE, Some(covid));
            self.procedure(&mut icu, vocab::procedure::INTUBATION, Some(covid));
            self.procedure(&mut icu, vocab::procedure::VENTILATION, Some(covid));
            self.vitals(&icu, true, false);
            self.claims(&icu);
            plan.push("transferred to intensive care; intubated and ventilated".to_string());
        }
        if h.dies {
            plan.push("patient expired during admission".to_string());
        }
        self.note(
            &e,
            vocab::NOTE_DISCHARGE,
            "Shortness of breath, COVID-19 positive.",
            &plan,
        );
        self.claims(&e);
    }

    fn vaccination(&mut self, t: i64, code: Code, dose: Option<(u32, u32)>) {
        let mut e = self.open(t, 15, "AMB", vocab::encounter::VACCINATION, false);
        self.encounter(&e, None, None);
        self.immunization(&mut e, code, dose);
        self.claims(&e);
    }
}

/// What happens on one day of a patient's timeline.
#[derive(Debug, Clone)]
enum Event {
    Wellness,
    Acute(usize),
    CovidTest {
        positive: bool,
        hospital: Option<Hospital>,
    },
    CovidVaccine {
        vaccine: usize,
        dose: u32,
    },
    Flu,
}

/// A COVID-19 hospital stay: days from the positive test to admission, length, intensive care,
/// and whether the patient dies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hospital {
    delay_days: i64,
    stay_days: i64,
    icu: bool,
    dies: bool,
}

/// Resources that a claim lists for one encounter.
#[derive(Debug, Default)]
struct Billing {
    conditions: Vec<(String, Code)>,
    procedures: Vec<(String, Code)>,
    immunizations: Vec<String>,
    medications: Vec<(String, Code)>,
}

/// An encounter being written, with its references pre-rendered.
#[derive(Debug)]
struct Enc {
    id: String,
    r#ref: String,
    pract_ref: String,
    org_ref: String,
    loc_ref: String,
    start_dt: String,
    end_dt: String,
    start: i64,
    end: i64,
    org: usize,
    pract: usize,
    class: &'static str,
    code: Code,
    bill: Billing,
}

/// Writes one patient's resources.
pub(crate) struct Gen<'a> {
    w: &'a World,
    p: &'a Person,
    rng: Rng,
    ids: IdGen,
    stamp: Stamp,
    /// `{"reference": "Patient/…"}`.
    subject: String,
    /// The same with the patient's name as `display`.
    subject_named: String,
    /// Resources written so far.
    pub(crate) out: Vec<Res>,
}

/// Earliest day of the COVID-19 era in the data.
fn covid_start() -> i64 {
    time::days_from_civil(2020, 3, 1)
}

/// Last day on which the epidemic model places infections.
fn covid_end() -> i64 {
    time::days_from_civil(2022, 12, 31)
}

/// Draws a person. `index` is the patient's position in the data set.
pub(crate) fn person(w: &World, index: u64, rng: &mut Rng, ids: &mut IdGen) -> Person {
    let now = world::base_transaction_time() / DAY;
    let id = ids.next_id();
    let female = rng.chance(0.51);
    let age_days = if rng.chance(0.03) {
        rng.range(90 * 365, 104 * 365)
    } else {
        rng.range(0, 90 * 365)
    };
    let birth = now - 1 - age_days;
    let age = time::years_between(birth, now);

    // Households: consecutive patients in blocks of four may share an address.
    let block = index / 4;
    let mut hh = Rng::new(&[w.seed, block, 0x4005E]);
    let shares = hh.chance(0.6) && rng.chance(0.7);
    let mut home = if shares { hh } else { rng.clone() };
    let area = home.weighted(&w.area_weights);
    let a = &AREAS[area];
    let city = *home.pick(a.cities);
    let line = format!(
        "{} {} {}",
        home.range(1, 9999),
        home.pick(vocab::STREETS),
        home.pick(vocab::STREET_SUFFIXES)
    );
    let line = if home.chance(0.25) {
        format!("{line} Unit {}", home.range(1, 40))
    } else {
        line
    };
    let zip = format!("{}{:02}", a.zip3, home.below(100));
    let lat = a.lat + home.gauss(0.0, 0.04);
    let lon = a.lon + home.gauss(0.0, 0.04);
    let phone = format!("555-{}-{}", home.range(200, 999), home.digits(4));
    let family_shared = *home.pick(vocab::FAMILY);
    if !shares {
        // Keep the person's own stream independent of how many draws the address took.
        *rng = Rng::new(&[w.seed, index, 0xADD2]);
    }

    let given = *rng.pick(if female {
        vocab::GIVEN_FEMALE
    } else {
        vocab::GIVEN_MALE
    });
    let family = if shares {
        family_shared
    } else {
        *rng.pick(vocab::FAMILY)
    };
    let married = age >= 20 && rng.chance(0.55);
    let maiden = (female && married && rng.chance(0.7)).then(|| *rng.pick(vocab::FAMILY));
    let prefix = match (age >= 18, female, married) {
        (false, _, _) => "",
        (true, false, _) => "Mr.",
        (true, true, true) => "Mrs.",
        (true, true, false) => "Ms.",
    };
    let prefix = if prefix.is_empty() {
        if female { "Miss" } else { "Master" }
    } else {
        prefix
    };
    let org_choices = &w.orgs_by_area[area];
    let org = *rng.pick(org_choices);
    let hospital = *rng.pick(org_choices);
    let pract = *rng.pick(&w.orgs[org].practitioners);
    let payer = if age >= 65 {
        "Medicare"
    } else if rng.chance(0.08) {
        "NO_INSURANCE"
    } else {
        *rng.pick(vocab::PAYERS)
    };
    let member_id = if payer == "Medicare" {
        format!(
            "{}{}{}-{}{}-{}",
            rng.range(1, 9),
            char::from(b'A' + rng.below(26) as u8),
            rng.digits(2),
            char::from(b'A' + rng.below(26) as u8),
            rng.digits(1),
            rng.digits(4)
        )
    } else {
        format!("{}{}", &payer[..1], rng.digits(9))
    };

    let chronic = vocab::CHRONIC
        .iter()
        .enumerate()
        .filter_map(|(kind, c)| {
            if age < c.min_age {
                return None;
            }
            let p = (c.p70 * (age as f64 / 70.0).powf(1.5)).min(0.9);
            if !rng.chance(p) {
                return None;
            }
            let earliest = birth + c.min_age * 365;
            let onset = rng.range(earliest, now - 30);
            Some(ChronicCase { kind, onset })
        })
        .collect();

    let email_user = format!("{}.{}{}", given, family, rng.range(1, 99))
        .to_lowercase()
        .replace([' ', '\''], "");
    let old_address = rng.chance(0.2).then(|| {
        let oa = &AREAS[rng.weighted(&w.area_weights)];
        (
            format!(
                "{} {} {}",
                rng.range(1, 9999),
                rng.pick(vocab::STREETS),
                rng.pick(vocab::STREET_SUFFIXES)
            ),
            *rng.pick(oa.cities),
            format!("{}{:02}", oa.zip3, rng.below(100)),
            rng.range(
                time::days_from_civil(2005, 1, 1),
                time::days_from_civil(2018, 12, 31),
            ),
        )
    });
    let contact = rng.chance(0.35).then(|| {
        (
            {
                let names = if rng.chance(0.5) {
                    vocab::GIVEN_FEMALE
                } else {
                    vocab::GIVEN_MALE
                };
                *rng.pick(names)
            },
            family,
            format!("555-{}-{}", rng.range(200, 999), rng.digits(4)),
        )
    });
    let height_cm = if age >= 18 {
        rng.gauss(if female { 162.0 } else { 176.0 }, 7.0)
    } else {
        50.0 + (age as f64) * 6.2 + rng.gauss(0.0, 4.0)
    };
    Person {
        mrn: if rng.chance(0.5) {
            id.clone()
        } else {
            format!("MRN{}", rng.digits(8))
        },
        id,
        given,
        middle: rng.chance(0.3).then(|| {
            *rng.pick(if female {
                vocab::GIVEN_FEMALE
            } else {
                vocab::GIVEN_MALE
            })
        }),
        family,
        maiden,
        nickname: rng
            .chance(0.1)
            .then(|| &given[..given.char_indices().nth(3).map_or(given.len(), |(i, _)| i)]),
        prefix,
        female,
        birth,
        area,
        city,
        zip,
        line,
        lat,
        lon,
        old_address,
        mobile: rng
            .chance(0.6)
            .then(|| format!("555-{}-{}", rng.range(200, 999), rng.digits(4))),
        phone,
        email: format!("{email_user}@example.com"),
        ssn: format!("999-{}-{}", rng.digits(2), rng.digits(4)),
        license: (age >= 16 && rng.chance(0.85)).then(|| format!("S99{}", rng.digits(6))),
        passport: (age >= 16 && rng.chance(0.8)).then(|| format!("X{}X", rng.digits(8))),
        race: rng.weighted(&vocab::RACES.iter().map(|r| r.1).collect::<Vec<_>>()),
        hispanic: rng.chance(0.17),
        language: rng.weighted(&vocab::LANGUAGES.iter().map(|r| r.1).collect::<Vec<_>>()),
        married,
        mother_maiden: format!(
            "{} {}",
            rng.pick(vocab::GIVEN_FEMALE),
            rng.pick(vocab::FAMILY)
        ),
        birth_place: rng.below(vocab::BIRTH_PLACES.len() as u64) as usize,
        contact,
        org,
        hospital,
        pract,
        payer,
        member_id,
        household: shares.then_some(block),
        chronic,
        smoking: rng.weighted(&[0.6, 0.25, 0.15]),
        height_cm,
        bmi: if age >= 18 {
            rng.gauss(28.0, 5.0).clamp(17.0, 48.0)
        } else {
            rng.gauss(18.0, 2.5)
        },
    }
}

/// Generates patient `index` of a data set, as first written by `batch`.
pub(crate) fn generate(w: &World, index: u64, batch: u32) -> Record {
    let mut rng = Rng::new(&[w.seed, index, 0xBA5E]);
    let mut ids = IdGen::new(&[w.seed, index, 0, 0x1D]);
    let p = person(w, index, &mut rng, &mut ids);
    let end = world::transaction_time(batch) - DAY;
    let (events, death) = plan(w, &p, &mut rng, end);
    let mut g = Gen::new(w, &p, rng, ids, batch);
    let last = events.last().map_or(p.birth * DAY, |e| e.0);
    g.patient(death, death.unwrap_or(last));
    let mut recorded = vec![false; p.chronic.len()];
    for (t, event) in &events {
        g.event(*t, event, &mut recorded, death);
    }
    let resources = g.out;
    Record {
        index,
        person: p,
        resources,
        death,
        deleted: false,
    }
}

/// The patient's timeline up to `end` (seconds), sorted, and the death time if any.
fn plan(w: &World, p: &Person, rng: &mut Rng, end: i64) -> (Vec<(i64, Event)>, Option<i64>) {
    let tz = p.tz();
    let end_day = end / DAY;
    let start_day = world::history_start().max(p.birth);
    let age_now = p.age_on(end_day);
    let at =
        |day: i64, rng: &mut Rng| day * DAY + rng.range(8 * 3600, 17 * 3600) - i64::from(tz) * 60;
    let mut events: Vec<(i64, Event)> = Vec::new();

    let mut death_day = {
        let age = age_now as f64 / 100.0;
        rng.chance(0.02 + 0.3 * age * age)
            .then(|| rng.range(start_day, end_day))
    };

    // Vaccination: eligibility by age group, uptake by age, then a lag.
    let age21 = p.age_on(time::days_from_civil(2021, 6, 1));
    let (eligible, uptake) = match age21 {
        a if a >= 75 => (time::days_from_civil(2021, 1, 10), 0.88),
        a if a >= 65 => (time::days_from_civil(2021, 2, 15), 0.85),
        a if a >= 18 => (time::days_from_civil(2021, 4, 10), 0.68),
        a if a >= 12 => (time::days_from_civil(2021, 5, 20), 0.55),
        a if a >= 5 => (time::days_from_civil(2021, 11, 10), 0.3),
        _ => (time::days_from_civil(2022, 6, 25), 0.1),
    };
    let mut protected_from = i64::MAX;
    if rng.chance(uptake) {
        let vi = rng.weighted(
            &vocab::COVID_VACCINES
                .iter()
                .map(|v| v.3)
                .collect::<Vec<_>>(),
        );
        let (_, doses, gap, _) = vocab::COVID_VACCINES[vi];
        let first = eligible.max(p.birth + 180) + (-rng.f64().max(1e-9).ln() * 30.0) as i64;
        let mut last = first;
        for dose in 1..=doses {
            let day = first + i64::from(dose - 1) * (gap + rng.range(0, 6));
            events.push((at(day, rng), Event::CovidVaccine { vaccine: vi, dose }));
            last = day;
        }
        protected_from = last + 14;
        if age21 >= 18 && rng.chance(0.5) {
            let day = (last + rng.range(180, 260)).max(time::days_from_civil(2021, 9, 22));
            events.push((
                at(day, rng),
                Event::CovidVaccine {
                    vaccine: vi,
                    dose: doses + 1,
                },
            ));
        }
    }

    // Infections: each wave, household clusters, vaccine protection, reinfection after 90 days.
    let mut hh = p.household.map(|b| Rng::new(&[w.seed, b, 0xC0F1D]));
    let mut infections: Vec<i64> = Vec::new();
    for (wi, wave) in w.waves[p.area].iter().enumerate() {
        let mut draw = rng.gauss(0.0, wave.sd_days);
        let household_day = hh.as_mut().and_then(|h| {
            let hit = h.chance((wave.attack * 2.5).min(0.9));
            let d = wave.peak + h.gauss(0.0, wave.sd_days).round() as i64;
            hit.then_some(d)
        });
        let day_guess = wave.peak + draw.round() as i64;
        let factor = if day_guess >= protected_from {
            if wi >= 4 { 0.6 } else { 0.3 }
        } else {
            1.0
        };
        let infected = match household_day {
            Some(d) if rng.chance(0.5 * factor) => {
                draw = (d - wave.peak) as f64 + rng.range(0, 6) as f64;
                true
            }
            _ => rng.chance(wave.attack * factor),
        };
        if !infected {
            continue;
        }
        let day = wave.peak + draw.round() as i64;
        if !(covid_start()..=covid_end()).contains(&day) {
            continue;
        }
        let alive = death_day.is_none_or(|d| day < d) && day > p.birth && day < end_day;
        let spaced = infections.last().is_none_or(|&prev| day > prev + 90);
        if alive && spaced {
            infections.push(day);
        }
    }
    let comorbid = p.chronic.len() as f64;
    for &day in &infections {
        let age = p.age_on(day);
        let base = match age {
            a if a < 18 => 0.01,
            a if a < 50 => 0.04,
            a if a < 65 => 0.1,
            a if a < 80 => 0.2,
            _ => 0.3,
        };
        let vacc = if day >= protected_from { 0.35 } else { 1.0 };
        let hospital = rng
            .chance((base * (1.0 + 0.25 * comorbid) * vacc).min(0.8))
            .then(|| {
                let icu = rng.chance(0.25);
                let dies =
                    rng.chance(if icu { 0.35 } else { 0.05 } * if age >= 70 { 1.5 } else { 0.6 });
                Hospital {
                    delay_days: rng.range(0, 4),
                    stay_days: rng.range(3, 14),
                    icu,
                    dies,
                }
            });
        if let Some(h) = hospital.filter(|h| h.dies) {
            let d = day + h.delay_days + h.stay_days;
            death_day = Some(death_day.map_or(d, |x| x.min(d)));
        }
        events.push((
            at(day, rng),
            Event::CovidTest {
                positive: true,
                hospital,
            },
        ));
        if rng.chance(0.15) {
            events.push((
                at(day + rng.range(10, 16), rng),
                Event::CovidTest {
                    positive: false,
                    hospital: None,
                },
            ));
        }
    }

    // Test-negative visits, more of them while a wave is on.
    let negatives = rng.weighted(&[0.5, 0.3, 0.13, 0.07]);
    for _ in 0..negatives {
        let wave = rng.pick(&w.waves[p.area]);
        let day = wave.peak + rng.gauss(0.0, wave.sd_days * 1.6).round() as i64;
        let in_era = (covid_start()..=covid_end()).contains(&day);
        if in_era && infections.iter().all(|&i| (day - i).abs() > 14) && day > p.birth {
            events.push((
                at(day, rng),
                Event::CovidTest {
                    positive: false,
                    hospital: None,
                },
            ));
        }
    }

    let first_year = time::civil_from_days(start_day).0;
    let last_year = time::civil_from_days(end_day).0;
    for year in first_year..=last_year {
        let y0 = time::days_from_civil(year, 1, 1).max(start_day);
        let y1 = time::days_from_civil(year, 12, 31).min(end_day);
        if y0 > y1 {
            continue;
        }
        let age = p.age_on(y0);
        if rng.chance(if age < 18 { 0.75 } else { 0.55 }) {
            events.push((at(rng.range(y0, y1), rng), Event::Wellness));
        }
        if rng.chance(0.15) {
            let kind = rng.below(vocab::ACUTE.len() as u64) as usize;
            events.push((at(rng.range(y0, y1), rng), Event::Acute(kind)));
        }
        if rng.chance(if age >= 65 { 0.25 } else { 0.08 }) {
            let day = time::days_from_civil(year, 9, 15) + rng.range(0, 75);
            if (y0..=y1).contains(&day) {
                events.push((at(day, rng), Event::Flu));
            }
        }
    }

    let death = death_day.map(|d| at(d, rng));
    let cutoff = death.unwrap_or(i64::MAX).min(end);
    events.retain(|(t, _)| *t < cutoff && *t >= start_day * DAY);
    events.sort_by_key(|e| e.0);
    (events, death)
}
