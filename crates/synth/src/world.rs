//! What all patients share: the epidemic (waves per ZIP3 area), the batch clock, and the pool
//! of Organizations, Locations, Practitioners and PractitionerRoles.

use serde_json::{Value, json};

use crate::rng::{IdGen, Rng};
use crate::time::{self, DAY};
use crate::vocab::{self, AREAS, Area, NPI, SYNTHEA_ID};

/// The first day of simulated history (earlier history appears only as onset dates).
pub(crate) fn history_start() -> i64 {
    time::days_from_civil(2019, 1, 1)
}

/// The transaction time of the first batch: 2023-01-01T00:00:00Z.
pub(crate) fn base_transaction_time() -> i64 {
    time::ts(2023, 1, 1)
}

/// Days between one batch and the next.
pub(crate) const BATCH_DAYS: i64 = 30;

/// The transaction time of batch `b` (0 = the first export).
pub(crate) fn transaction_time(batch: u32) -> i64 {
    base_transaction_time() + i64::from(batch) * BATCH_DAYS * DAY
}

/// A national COVID-19 wave: peak date, spread (days) and attack rate.
struct Wave {
    peak: (i64, u32, u32),
    sd_days: f64,
    attack: f64,
    /// Multiplier for the north-east (first wave) or the sun belt (summer 2020).
    northeast: f64,
}

const WAVES: &[Wave] = &[
    Wave {
        peak: (2020, 4, 12),
        sd_days: 16.0,
        attack: 0.03,
        northeast: 2.4,
    },
    Wave {
        peak: (2020, 7, 18),
        sd_days: 18.0,
        attack: 0.025,
        northeast: 0.25,
    },
    Wave {
        peak: (2021, 1, 8),
        sd_days: 26.0,
        attack: 0.06,
        northeast: 1.0,
    },
    Wave {
        peak: (2021, 9, 5),
        sd_days: 22.0,
        attack: 0.04,
        northeast: 0.7,
    },
    Wave {
        peak: (2022, 1, 12),
        sd_days: 15.0,
        attack: 0.13,
        northeast: 1.2,
    },
    Wave {
        peak: (2022, 7, 25),
        sd_days: 28.0,
        attack: 0.05,
        northeast: 1.0,
    },
];

/// One wave as it plays out in one area.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalWave {
    /// Peak day number.
    pub(crate) peak: i64,
    /// Spread in days.
    pub(crate) sd_days: f64,
    /// Probability that a susceptible, unvaccinated resident is infected in this wave.
    pub(crate) attack: f64,
}

/// A healthcare organisation and its one Location.
#[derive(Debug, Clone)]
pub(crate) struct Org {
    /// Organization id.
    pub(crate) id: String,
    /// Location id.
    pub(crate) location_id: String,
    /// Name (as Synthea writes it, upper case).
    pub(crate) name: String,
    /// Area index.
    pub(crate) area: usize,
    /// Street line.
    pub(crate) line: String,
    /// City.
    pub(crate) city: &'static str,
    /// Five-digit ZIP.
    pub(crate) zip: String,
    /// Phone.
    pub(crate) phone: String,
    /// Position.
    pub(crate) lat: f64,
    /// Position.
    pub(crate) lon: f64,
    /// Practitioners working here (indices into the pool).
    pub(crate) practitioners: Vec<usize>,
}

/// A practitioner and their PractitionerRole.
#[derive(Debug, Clone)]
pub(crate) struct Practitioner {
    /// Practitioner id.
    pub(crate) id: String,
    /// PractitionerRole id.
    pub(crate) role_id: String,
    /// NPI.
    pub(crate) npi: String,
    /// Given name.
    pub(crate) given: &'static str,
    /// Family name.
    pub(crate) family: &'static str,
    /// `male` or `female`.
    pub(crate) gender: &'static str,
    /// Specialty index.
    pub(crate) specialty: usize,
}

impl Practitioner {
    /// "Dr. Given Family", as in `Reference.display`.
    pub(crate) fn display(&self) -> String {
        format!("Dr. {} {}", self.given, self.family)
    }
}

/// How references are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefStyle {
    /// Bulk-export style: `Type/id`.
    Relative,
    /// Transaction-Bundle style: `urn:uuid:id`, and conditional references to shared resources.
    Bundle,
}

/// The shared world of one data set.
#[derive(Debug)]
pub(crate) struct World {
    /// The data set's seed.
    pub(crate) seed: u64,
    /// Reference style.
    pub(crate) style: RefStyle,
    /// Organisations (with their Locations).
    pub(crate) orgs: Vec<Org>,
    /// Practitioners.
    pub(crate) practitioners: Vec<Practitioner>,
    /// Organisation indices by area.
    pub(crate) orgs_by_area: Vec<Vec<usize>>,
    /// Waves per area.
    pub(crate) waves: Vec<Vec<LocalWave>>,
    /// Cumulative area weights for drawing a patient's area.
    pub(crate) area_weights: Vec<f64>,
}

/// Practitioners per organisation.
const PRACTITIONERS_PER_ORG: usize = 3;

/// The number of organisations for a data set of `patients` first-batch patients: at least one
/// per area, then one per 400 patients (shared resources stay near 1–2 % of the patients).
pub(crate) fn organizations_for(patients: u64) -> usize {
    AREAS.len().max((patients / 400) as usize)
}

fn is_northeast(area: &Area) -> bool {
    matches!(area.state, "MA" | "NH" | "NY" | "PA")
}

impl World {
    /// Builds the world from the seed and the organisation count.
    pub(crate) fn new(seed: u64, organizations: usize, style: RefStyle) -> World {
        let mut rng = Rng::new(&[seed, 0xE91D]);
        let waves = AREAS
            .iter()
            .map(|area| {
                WAVES
                    .iter()
                    .map(|w| {
                        let regional = if is_northeast(area) {
                            w.northeast
                        } else {
                            1.0 / w.northeast.sqrt()
                        };
                        let (y, m, d) = w.peak;
                        LocalWave {
                            peak: time::days_from_civil(y, m, d)
                                + rng.gauss(0.0, 16.0).round() as i64,
                            sd_days: w.sd_days * rng.uniform(0.7, 1.3),
                            attack: (0.75 * w.attack * regional * rng.uniform(0.35, 1.9)).min(0.5),
                        }
                    })
                    .collect()
            })
            .collect();

        let mut ids = IdGen::new(&[seed, 0x5A4E_D000]);
        let mut orgs = Vec::with_capacity(organizations);
        let mut practitioners = Vec::with_capacity(organizations * PRACTITIONERS_PER_ORG);
        let mut orgs_by_area = vec![Vec::new(); AREAS.len()];
        for i in 0..organizations {
            let area_index = i % AREAS.len();
            let area = &AREAS[area_index];
            let city = *rng.pick(area.cities);
            let kind = *rng.pick(vocab::FACILITY_KINDS);
            let name = if kind.contains("HOSPITAL") || rng.chance(0.5) {
                format!("{} {kind}", city.to_uppercase())
            } else {
                format!("{} {kind}", rng.pick(vocab::FAMILY).to_uppercase())
            };
            let mut org = Org {
                id: ids.next_id(),
                location_id: ids.next_id(),
                name,
                area: area_index,
                line: format!(
                    "{} {} {}",
                    rng.range(1, 999),
                    rng.pick(vocab::STREETS).to_uppercase(),
                    rng.pick(vocab::STREET_SUFFIXES).to_uppercase()
                ),
                city,
                zip: format!("{}{:02}", area.zip3, rng.below(100)),
                phone: format!("{}{}", rng.range(201, 989), rng.digits(7)),
                lat: area.lat + rng.gauss(0.0, 0.05),
                lon: area.lon + rng.gauss(0.0, 0.05),
                practitioners: Vec::new(),
            };
            for _ in 0..PRACTITIONERS_PER_ORG {
                let female = rng.chance(0.5);
                let names = if female {
                    vocab::GIVEN_FEMALE
                } else {
                    vocab::GIVEN_MALE
                };
                let given = *rng.pick(names);
                let family = *rng.pick(vocab::FAMILY);
                let p = Practitioner {
                    id: ids.next_id(),
                    role_id: ids.next_id(),
                    npi: format!("99{:08}", practitioners.len() + 1),
                    given,
                    family,
                    gender: if female { "female" } else { "male" },
                    specialty: rng.below(vocab::SPECIALTIES.len() as u64) as usize,
                };
                org.practitioners.push(practitioners.len());
                practitioners.push(p);
            }
            orgs_by_area[area_index].push(i);
            orgs.push(org);
        }
        World {
            seed,
            style,
            orgs,
            practitioners,
            orgs_by_area,
            waves,
            area_weights: AREAS.iter().map(|a| a.weight).collect(),
        }
    }

    /// A reference to a patient-owned resource.
    pub(crate) fn local_ref(&self, resource_type: &str, id: &str) -> String {
        match self.style {
            RefStyle::Relative => format!("{resource_type}/{id}"),
            RefStyle::Bundle => format!("urn:uuid:{id}"),
        }
    }

    /// A reference to an organisation.
    pub(crate) fn org_ref(&self, org: &Org) -> String {
        match self.style {
            RefStyle::Relative => format!("Organization/{}", org.id),
            RefStyle::Bundle => format!("Organization?identifier={SYNTHEA_ID}|{}", org.id),
        }
    }

    /// A reference to an organisation's Location.
    pub(crate) fn location_ref(&self, org: &Org) -> String {
        match self.style {
            RefStyle::Relative => format!("Location/{}", org.location_id),
            RefStyle::Bundle => format!("Location?identifier={SYNTHEA_ID}|{}", org.location_id),
        }
    }

    /// A reference to a practitioner.
    pub(crate) fn practitioner_ref(&self, p: &Practitioner) -> String {
        match self.style {
            RefStyle::Relative => format!("Practitioner/{}", p.id),
            RefStyle::Bundle => format!("Practitioner?identifier={NPI}|{}", p.npi),
        }
    }

    /// The shared resources, in the order they are written: per organisation, the Organization,
    /// its Location, then each Practitioner and PractitionerRole.
    pub(crate) fn shared_resources(&self, last_updated: &str) -> Vec<Value> {
        let mut out = Vec::with_capacity(self.orgs.len() * (2 + 2 * PRACTITIONERS_PER_ORG));
        for org in &self.orgs {
            let area = &AREAS[org.area];
            let address = json!({
                "line": [org.line],
                "city": org.city.to_uppercase(),
                "state": area.state,
                "postalCode": org.zip,
                "country": "US"
            });
            out.push(json!({
                "resourceType": "Organization",
                "id": org.id,
                "meta": {"versionId": "1", "lastUpdated": last_updated},
                "identifier": [{"system": SYNTHEA_ID, "value": org.id}],
                "active": true,
                "type": [{
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "prov", "display": "Healthcare Provider"}],
                    "text": "Healthcare Provider"
                }],
                "name": org.name,
                "telecom": [{"system": "phone", "value": org.phone}],
                "address": [address]
            }));
            out.push(json!({
                "resourceType": "Location",
                "id": org.location_id,
                "meta": {"versionId": "1", "lastUpdated": last_updated},
                "identifier": [{"system": SYNTHEA_ID, "value": org.location_id}],
                "status": "active",
                "name": org.name,
                "telecom": [{"system": "phone", "value": org.phone}],
                "address": address,
                "position": {"longitude": org.lon, "latitude": org.lat},
                "managingOrganization": {"reference": self.org_ref(org), "display": org.name}
            }));
            for &pi in &org.practitioners {
                let p = &self.practitioners[pi];
                let email = format!("{}.{}@example.com", p.given, p.family);
                let specialty = vocab::SPECIALTIES[p.specialty];
                let specialty = json!([{
                    "coding": [{"system": "http://nucc.org/provider-taxonomy", "code": specialty.0, "display": specialty.1}],
                    "text": specialty.1
                }]);
                out.push(json!({
                    "resourceType": "Practitioner",
                    "id": p.id,
                    "meta": {"versionId": "1", "lastUpdated": last_updated},
                    "identifier": [{"system": NPI, "value": p.npi}],
                    "active": true,
                    "name": [{"family": p.family, "given": [p.given], "prefix": ["Dr."]}],
                    "telecom": [{
                        "extension": [{"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-direct", "valueBoolean": true}],
                        "system": "email", "value": email, "use": "work"
                    }],
                    "address": [{
                        "line": [org.line], "city": org.city.to_uppercase(), "state": area.state,
                        "postalCode": org.zip, "country": "US"
                    }],
                    "gender": p.gender
                }));
                out.push(json!({
                    "resourceType": "PractitionerRole",
                    "id": p.role_id,
                    "meta": {"versionId": "1", "lastUpdated": last_updated},
                    "practitioner": {"reference": self.practitioner_ref(p), "display": p.display()},
                    "organization": {"reference": self.org_ref(org), "display": org.name},
                    "code": specialty,
                    "specialty": specialty,
                    "location": [{"reference": self.location_ref(org), "display": org.name}],
                    "telecom": [
                        {"system": "phone", "value": org.phone},
                        {"system": "email", "value": email, "use": "work"}
                    ]
                }));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_area_has_an_organization_and_waves() {
        let w = World::new(1, organizations_for(100), RefStyle::Relative);
        assert!(w.orgs_by_area.iter().all(|o| !o.is_empty()));
        assert!(w.waves.iter().all(|ws| ws.len() == WAVES.len()));
        assert_eq!(
            w.shared_resources("2023-01-01T00:00:00.000Z").len(),
            w.orgs.len() * 8
        );
    }

    #[test]
    fn areas_have_their_own_timing() {
        let w = World::new(5, organizations_for(100), RefStyle::Relative);
        let peaks: std::collections::BTreeSet<i64> = w.waves.iter().map(|ws| ws[2].peak).collect();
        assert!(peaks.len() > AREAS.len() / 2);
    }
}
