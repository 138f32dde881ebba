//! The built-in vocabulary: real code systems and codes (SNOMED CT, LOINC, RxNorm, CVX) as they
//! appear in Synthea output, plus names, streets and places for the demographics.

/// SNOMED CT.
pub(crate) const SNOMED: &str = "http://snomed.info/sct";
/// LOINC.
pub(crate) const LOINC: &str = "http://loinc.org";
/// RxNorm.
pub(crate) const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
/// CVX vaccine codes.
pub(crate) const CVX: &str = "http://hl7.org/fhir/sid/cvx";
/// UCUM units.
pub(crate) const UCUM: &str = "http://unitsofmeasure.org";
/// Synthea's identifier system for resources.
pub(crate) const SYNTHEA_ID: &str = "https://github.com/synthetichealth/synthea";
/// The NPI identifier system.
pub(crate) const NPI: &str = "http://hl7.org/fhir/sid/us-npi";

/// A code with its display text (the system is implied by the table it sits in).
pub(crate) type Code = (&'static str, &'static str);

/// SARS-CoV-2 RNA PCR.
pub(crate) const COVID_PCR: Code = ("94531-1", "SARS-CoV-2 RNA Pnl Resp NAA+probe");
/// SARS-CoV-2 antigen rapid test.
pub(crate) const COVID_ANTIGEN: Code = (
    "94558-4",
    "SARS-CoV-2 (COVID-19) Ag [Presence] in Respiratory specimen by Rapid immunoassay",
);
/// SNOMED "Detected".
pub(crate) const DETECTED: Code = ("260373001", "Detected (qualifier value)");
/// SNOMED "Not detected".
pub(crate) const NOT_DETECTED: Code = ("260415000", "Not detected (qualifier value)");
/// SNOMED "Negative".
pub(crate) const NEGATIVE: Code = ("260385009", "Negative (qualifier value)");
/// Suspected COVID-19.
pub(crate) const COVID_SUSPECTED: Code = ("840544004", "Suspected COVID-19");
/// COVID-19.
pub(crate) const COVID_19: Code = ("840539006", "COVID-19");

/// COVID-19 symptom findings with their prevalence among cases.
pub(crate) const COVID_SYMPTOMS: &[(Code, f64)] = &[
    (("386661006", "Fever (finding)"), 0.9),
    (("49727002", "Cough (finding)"), 0.67),
    (("36955009", "Loss of taste (finding)"), 0.5),
    (("84229001", "Fatigue (finding)"), 0.43),
    (("248595008", "Sputum finding (finding)"), 0.35),
    (("25064002", "Headache (finding)"), 0.14),
    (("68962001", "Muscle pain (finding)"), 0.15),
    (("267036007", "Dyspnea (finding)"), 0.18),
    (("267102003", "Sore throat symptom (finding)"), 0.14),
    (("43724002", "Chill (finding)"), 0.11),
];

/// Conditions diagnosed during a COVID-19 hospital stay (the last two only in intensive care).
pub(crate) const COVID_INPATIENT_CONDITIONS: &[Code] = &[
    ("233604007", "Pneumonia (disorder)"),
    ("389087006", "Hypoxemia (disorder)"),
    ("271825005", "Respiratory distress (finding)"),
    ("65710008", "Acute respiratory failure (disorder)"),
    ("770349000", "Sepsis caused by virus (disorder)"),
];

/// Encounter types (SNOMED) by purpose.
pub(crate) mod encounter {
    use super::Code;
    /// Adult wellness visit.
    pub(crate) const CHECKUP: Code = ("162673000", "General examination of patient (procedure)");
    /// Child wellness visit.
    pub(crate) const WELL_CHILD: Code = ("410620009", "Well child visit (procedure)");
    /// Symptom visit (COVID-19 testing).
    pub(crate) const SYMPTOM: Code = ("185345009", "Encounter for symptom");
    /// Urgent care for acute illness.
    pub(crate) const URGENT: Code = ("702927004", "Urgent care clinic (procedure)");
    /// Emergency room.
    pub(crate) const EMERGENCY: Code = ("50849002", "Emergency room admission (procedure)");
    /// Inpatient COVID-19 isolation.
    pub(crate) const ISOLATION: Code = ("1505002", "Hospital admission for isolation (procedure)");
    /// Intensive care admission.
    pub(crate) const ICU: Code = ("305351004", "Admission to intensive care unit (procedure)");
    /// Vaccination visit.
    pub(crate) const VACCINATION: Code = (
        "33879002",
        "Administration of vaccine to produce active immunity (procedure)",
    );
}

/// A chronic condition: SNOMED code, the age band where it appears, yearly odds, and the RxNorm
/// medications that treat it.
pub(crate) struct Chronic {
    /// SNOMED code and display.
    pub(crate) code: Code,
    /// Youngest age (years) at which it is drawn.
    pub(crate) min_age: i64,
    /// Probability of having it, for someone aged 70.
    pub(crate) p70: f64,
    /// RxNorm medications.
    pub(crate) meds: &'static [Code],
}

/// The chronic problem list vocabulary.
pub(crate) const CHRONIC: &[Chronic] = &[
    Chronic {
        code: ("59621000", "Hypertension"),
        min_age: 18,
        p70: 0.55,
        meds: &[
            ("314076", "lisinopril 10 MG Oral Tablet"),
            ("308136", "amLODIPine 2.5 MG Oral Tablet"),
            ("310798", "Hydrochlorothiazide 25 MG Oral Tablet"),
        ],
    },
    Chronic {
        code: ("44054006", "Diabetes"),
        min_age: 25,
        p70: 0.22,
        meds: &[(
            "860975",
            "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet",
        )],
    },
    Chronic {
        code: ("15777000", "Prediabetes"),
        min_age: 18,
        p70: 0.3,
        meds: &[],
    },
    Chronic {
        code: ("55822004", "Hyperlipidemia"),
        min_age: 30,
        p70: 0.4,
        meds: &[("314231", "Simvastatin 10 MG Oral Tablet")],
    },
    Chronic {
        code: ("195967001", "Asthma"),
        min_age: 2,
        p70: 0.08,
        meds: &[
            (
                "895994",
                "120 ACTUAT Fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler",
            ),
            (
                "2123111",
                "NDA020503 200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler",
            ),
        ],
    },
    Chronic {
        code: ("87433001", "Pulmonary emphysema (disorder)"),
        min_age: 45,
        p70: 0.07,
        meds: &[(
            "896209",
            "60 ACTUAT Fluticasone propionate 0.25 MG/ACTUAT / salmeterol 0.05 MG/ACTUAT Dry Powder Inhaler",
        )],
    },
    Chronic {
        code: ("162864005", "Body mass index 30+ - obesity (finding)"),
        min_age: 18,
        p70: 0.35,
        meds: &[],
    },
    Chronic {
        code: ("431855005", "Chronic kidney disease stage 1 (disorder)"),
        min_age: 40,
        p70: 0.12,
        meds: &[],
    },
    Chronic {
        code: ("271737000", "Anemia (disorder)"),
        min_age: 10,
        p70: 0.1,
        meds: &[],
    },
    Chronic {
        code: ("278860009", "Chronic low back pain (finding)"),
        min_age: 20,
        p70: 0.15,
        meds: &[
            ("835603", "tramadol hydrochloride 50 MG Oral Tablet"),
            ("198405", "Ibuprofen 100 MG Oral Tablet"),
        ],
    },
    Chronic {
        code: ("49436004", "Atrial fibrillation"),
        min_age: 55,
        p70: 0.09,
        meds: &[
            ("855332", "Warfarin Sodium 5 MG Oral Tablet"),
            ("197604", "Digoxin 0.125 MG Oral Tablet"),
        ],
    },
    Chronic {
        code: ("53741008", "Coronary Heart Disease"),
        min_age: 50,
        p70: 0.12,
        meds: &[
            ("309362", "Clopidogrel 75 MG Oral Tablet"),
            ("705129", "Nitroglycerin 0.4 MG/ACTUAT Mucosal Spray"),
        ],
    },
    Chronic {
        code: ("64859006", "Osteoporosis (disorder)"),
        min_age: 55,
        p70: 0.1,
        meds: &[],
    },
    Chronic {
        code: ("26929004", "Alzheimer's disease (disorder)"),
        min_age: 70,
        p70: 0.04,
        meds: &[],
    },
];

/// An acute illness seen in urgent care or the emergency room, with what is given for it.
pub(crate) struct Acute {
    /// SNOMED code and display.
    pub(crate) code: Code,
    /// Seen in the emergency room rather than urgent care.
    pub(crate) emergency: bool,
    /// RxNorm medication, if any.
    pub(crate) med: Option<Code>,
    /// SNOMED procedure, if any.
    pub(crate) procedure: Option<Code>,
}

/// Acute illnesses.
pub(crate) const ACUTE: &[Acute] = &[
    Acute {
        code: ("444814009", "Viral sinusitis (disorder)"),
        emergency: false,
        med: None,
        procedure: None,
    },
    Acute {
        code: ("195662009", "Acute viral pharyngitis (disorder)"),
        emergency: false,
        med: Some(("313782", "Acetaminophen 325 MG Oral Tablet")),
        procedure: Some(("117015009", "Throat culture (procedure)")),
    },
    Acute {
        code: ("10509002", "Acute bronchitis (disorder)"),
        emergency: false,
        med: Some(("313782", "Acetaminophen 325 MG Oral Tablet")),
        procedure: None,
    },
    Acute {
        code: ("65363002", "Otitis media"),
        emergency: false,
        med: Some(("308182", "Amoxicillin 250 MG Oral Capsule")),
        procedure: None,
    },
    Acute {
        code: ("43878008", "Streptococcal sore throat (disorder)"),
        emergency: false,
        med: Some(("834061", "Penicillin V Potassium 250 MG Oral Tablet")),
        procedure: Some(("117015009", "Throat culture (procedure)")),
    },
    Acute {
        code: ("44465007", "Sprain of ankle"),
        emergency: true,
        med: Some(("849574", "Naproxen sodium 220 MG Oral Tablet")),
        procedure: Some(("274474001", "Bone immobilization")),
    },
    Acute {
        code: ("283371005", "Laceration of forearm"),
        emergency: true,
        med: Some(("310965", "Ibuprofen 200 MG Oral Tablet")),
        procedure: Some(("288086009", "Suture open wound")),
    },
];

/// Procedures (SNOMED).
pub(crate) mod procedure {
    use super::Code;
    /// Recorded at every COVID-19 symptom visit in Synthea.
    pub(crate) const FACE_MASK: Code = ("261352009", "Face mask (physical object)");
    /// Medication reconciliation at wellness visits.
    pub(crate) const MED_RECONCILIATION: Code =
        ("430193006", "Medication Reconciliation (procedure)");
    /// Oxygen for hospitalised COVID-19 patients.
    pub(crate) const OXYGEN: Code = ("371908008", "Oxygen administration by mask (procedure)");
    /// Proning.
    pub(crate) const PRONE: Code = ("431182000", "Placing subject in prone position (procedure)");
    /// Intubation.
    pub(crate) const INTUBATION: Code = ("112798008", "Insertion of endotracheal tube (procedure)");
    /// Mechanical ventilation.
    pub(crate) const VENTILATION: Code = (
        "26763009",
        "Controlled ventilation procedure and therapy, initiation and management (procedure)",
    );
    /// Chest X-ray.
    pub(crate) const CHEST_XRAY: Code = ("399208008", "Plain chest X-ray (procedure)");
}

/// A quantitative LOINC measurement: code, display, UCUM unit, mean, standard deviation, and
/// decimals kept.
pub(crate) type Measure = (&'static str, &'static str, &'static str, f64, f64, i32);

/// Basic metabolic panel.
pub(crate) const BMP: (Code, &[Measure]) = (
    ("51990-0", "Basic Metabolic Panel"),
    &[
        ("2339-0", "Glucose", "mg/dL", 92.0, 14.0, 1),
        ("6299-2", "Urea Nitrogen", "mg/dL", 14.0, 4.0, 1),
        ("38483-4", "Creatinine", "mg/dL", 1.0, 0.2, 2),
        ("49765-1", "Calcium", "mg/dL", 9.4, 0.4, 1),
        ("2947-0", "Sodium", "mmol/L", 140.0, 2.0, 1),
        ("6298-4", "Potassium", "mmol/L", 4.2, 0.35, 1),
        ("2069-3", "Chloride", "mmol/L", 104.0, 2.5, 1),
        ("20565-8", "Carbon Dioxide", "mmol/L", 25.0, 2.0, 1),
    ],
);

/// Lipid panel.
pub(crate) const LIPID: (Code, &[Measure]) = (
    ("57698-3", "Lipid Panel"),
    &[
        ("2093-3", "Total Cholesterol", "mg/dL", 190.0, 30.0, 1),
        ("2571-8", "Triglycerides", "mg/dL", 130.0, 35.0, 1),
        (
            "18262-6",
            "Low Density Lipoprotein Cholesterol",
            "mg/dL",
            110.0,
            25.0,
            1,
        ),
        (
            "2085-9",
            "High Density Lipoprotein Cholesterol",
            "mg/dL",
            55.0,
            12.0,
            1,
        ),
    ],
);

/// Complete blood count.
pub(crate) const CBC: (Code, &[Measure]) = (
    (
        "58410-2",
        "Complete blood count (hemogram) panel - Blood by Automated count",
    ),
    &[
        (
            "6690-2",
            "Leukocytes [#/volume] in Blood by Automated count",
            "10*3/uL",
            7.0,
            1.8,
            1,
        ),
        (
            "789-8",
            "Erythrocytes [#/volume] in Blood by Automated count",
            "10*6/uL",
            4.8,
            0.4,
            2,
        ),
        (
            "718-7",
            "Hemoglobin [Mass/volume] in Blood",
            "g/dL",
            14.0,
            1.3,
            1,
        ),
        (
            "4544-3",
            "Hematocrit [Volume Fraction] of Blood by Automated count",
            "%",
            42.0,
            3.5,
            1,
        ),
        (
            "787-2",
            "MCV [Entitic volume] by Automated count",
            "fL",
            90.0,
            4.0,
            1,
        ),
        (
            "785-6",
            "MCH [Entitic mass] by Automated count",
            "pg",
            30.0,
            1.5,
            1,
        ),
        (
            "786-4",
            "MCHC [Mass/volume] by Automated count",
            "g/dL",
            34.0,
            1.0,
            1,
        ),
        (
            "777-3",
            "Platelets [#/volume] in Blood by Automated count",
            "10*3/uL",
            260.0,
            50.0,
            1,
        ),
    ],
);

/// Inflammation and coagulation markers drawn for hospitalised COVID-19 patients (raised means).
pub(crate) const COVID_INPATIENT_LABS: &[Measure] = &[
    (
        "48065-7",
        "Fibrin D-dimer FEU [Mass/volume] in Platelet poor plasma",
        "ug/mL",
        1.6,
        0.6,
        2,
    ),
    (
        "2276-4",
        "Ferritin [Mass/volume] in Serum or Plasma",
        "ug/L",
        750.0,
        250.0,
        1,
    ),
    (
        "1988-5",
        "C reactive protein [Mass/volume] in Serum or Plasma",
        "mg/L",
        65.0,
        25.0,
        1,
    ),
    (
        "14804-9",
        "Lactate dehydrogenase [Enzymatic activity/volume] in Serum or Plasma by Lactate to pyruvate reaction",
        "U/L",
        330.0,
        80.0,
        1,
    ),
    (
        "33959-8",
        "Procalcitonin [Mass/volume] in Serum or Plasma",
        "ng/mL",
        0.3,
        0.15,
        2,
    ),
];

/// The respiratory pathogen panel ordered beside the SARS-CoV-2 PCR.
pub(crate) const RESPIRATORY_PANEL: (Code, &[Code]) = (
    (
        "92143-7",
        "Respiratory pathogens DNA and RNA panel - Respiratory specimen by NAA with probe detection",
    ),
    &[
        (
            "92142-9",
            "Influenza virus A RNA [Presence] in Respiratory specimen by NAA with probe detection",
        ),
        (
            "92141-1",
            "Influenza virus B RNA [Presence] in Respiratory specimen by NAA with probe detection",
        ),
        (
            "92131-2",
            "Respiratory syncytial virus RNA [Presence] in Respiratory specimen by NAA with probe detection",
        ),
        (
            "92140-3",
            "Parainfluenza virus 1 RNA [Presence] in Respiratory specimen by NAA with probe detection",
        ),
        (
            "92130-4",
            "Rhinovirus RNA [Presence] in Respiratory specimen by NAA with probe detection",
        ),
        (
            "92134-6",
            "Human metapneumovirus RNA [Presence] in Respiratory specimen by NAA with probe detection",
        ),
        (
            "94040-3",
            "Adenovirus A+B+C+D+E DNA [Presence] in Respiratory specimen by NAA with probe detection",
        ),
    ],
);

/// Vital signs (LOINC).
pub(crate) mod vital {
    use super::Code;
    /// Body height.
    pub(crate) const HEIGHT: Code = ("8302-2", "Body Height");
    /// Body weight.
    pub(crate) const WEIGHT: Code = ("29463-7", "Body Weight");
    /// Body mass index.
    pub(crate) const BMI: Code = ("39156-5", "Body Mass Index");
    /// Blood pressure panel.
    pub(crate) const BP: Code = ("85354-9", "Blood Pressure");
    /// Systolic component.
    pub(crate) const SYSTOLIC: Code = ("8480-6", "Systolic Blood Pressure");
    /// Diastolic component.
    pub(crate) const DIASTOLIC: Code = ("8462-4", "Diastolic Blood Pressure");
    /// Heart rate.
    pub(crate) const HEART_RATE: Code = ("8867-4", "Heart rate");
    /// Respiratory rate.
    pub(crate) const RESP_RATE: Code = ("9279-1", "Respiratory rate");
    /// Body temperature.
    pub(crate) const TEMPERATURE: Code = ("8310-5", "Body temperature");
    /// Oxygen saturation.
    pub(crate) const SPO2: Code = ("2708-6", "Oxygen saturation in Arterial blood");
    /// Pain score.
    pub(crate) const PAIN: Code = (
        "72514-3",
        "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
    );
}

/// Tobacco smoking status and its answers.
pub(crate) const SMOKING: (Code, &[Code]) = (
    ("72166-2", "Tobacco smoking status NHIS"),
    &[
        ("266919005", "Never smoker"),
        ("8517006", "Former smoker"),
        ("449868002", "Smokes tobacco daily (finding)"),
    ],
);

/// PRAPARE social-determinants items: the panel and the free-text address question.
pub(crate) const PRAPARE_ADDRESS: Code = ("56799-0", "Address");

/// Clinical note types (LOINC).
pub(crate) const NOTE_HP: Code = ("34117-2", "History and physical note");
/// Evaluation and plan note.
pub(crate) const NOTE_EP: Code = ("51847-2", "Evaluation+Plan note");
/// Emergency department note.
pub(crate) const NOTE_ED: Code = ("34111-5", "Emergency department note");
/// Discharge summary.
pub(crate) const NOTE_DISCHARGE: Code = ("18842-5", "Discharge summary");

/// COVID-19 vaccines (CVX): code, display, doses in the primary series, days between doses,
/// market share.
pub(crate) const COVID_VACCINES: &[(Code, u32, i64, f64)] = &[
    (
        (
            "208",
            "SARS-COV-2 (COVID-19) vaccine, mRNA, spike protein, LNP, preservative free, 30 mcg/0.3mL dose",
        ),
        2,
        21,
        0.55,
    ),
    (
        (
            "207",
            "SARS-COV-2 (COVID-19) vaccine, mRNA, spike protein, LNP, preservative free, 100 mcg/0.5mL dose",
        ),
        2,
        28,
        0.38,
    ),
    (
        (
            "212",
            "SARS-COV-2 (COVID-19) vaccine, vector non-replicating, recombinant spike protein-Ad26, preservative free, 0.5 mL",
        ),
        1,
        0,
        0.07,
    ),
];

/// Seasonal influenza vaccine.
pub(crate) const FLU_VACCINE: Code = ("140", "Influenza, seasonal, injectable, preservative free");

/// Insurance payers.
pub(crate) const PAYERS: &[&str] = &[
    "Blue Cross Blue Shield",
    "Aetna",
    "UnitedHealthcare",
    "Cigna Health",
    "Humana",
    "Anthem",
    "Medicaid",
];

/// A three-digit ZIP area with its own epidemic timing.
pub(crate) struct Area {
    /// The first three digits of the ZIP code.
    pub(crate) zip3: &'static str,
    /// State (two-letter code).
    pub(crate) state: &'static str,
    /// Cities in the area.
    pub(crate) cities: &'static [&'static str],
    /// Latitude and longitude of the centre.
    pub(crate) lat: f64,
    /// Longitude of the centre.
    pub(crate) lon: f64,
    /// UTC offset in minutes (standard time).
    pub(crate) offset_min: i32,
    /// Relative population.
    pub(crate) weight: f64,
}

/// The ZIP3 areas. `036` and `692` are Safe Harbor restricted areas (fewer than 20,000 people).
pub(crate) const AREAS: &[Area] = &[
    Area {
        zip3: "021",
        state: "MA",
        cities: &["Boston", "Cambridge", "Somerville", "Brookline"],
        lat: 42.36,
        lon: -71.06,
        offset_min: -300,
        weight: 14.0,
    },
    Area {
        zip3: "010",
        state: "MA",
        cities: &["Springfield", "Holyoke", "Chicopee", "Westfield"],
        lat: 42.10,
        lon: -72.59,
        offset_min: -300,
        weight: 6.0,
    },
    Area {
        zip3: "027",
        state: "MA",
        cities: &["New Bedford", "Fall River", "Taunton", "Attleboro"],
        lat: 41.64,
        lon: -70.93,
        offset_min: -300,
        weight: 6.0,
    },
    Area {
        zip3: "036",
        state: "NH",
        cities: &["Claremont", "Charlestown", "Walpole"],
        lat: 43.37,
        lon: -72.34,
        offset_min: -300,
        weight: 0.8,
    },
    Area {
        zip3: "100",
        state: "NY",
        cities: &["New York"],
        lat: 40.75,
        lon: -73.99,
        offset_min: -300,
        weight: 12.0,
    },
    Area {
        zip3: "112",
        state: "NY",
        cities: &["Brooklyn"],
        lat: 40.65,
        lon: -73.95,
        offset_min: -300,
        weight: 10.0,
    },
    Area {
        zip3: "191",
        state: "PA",
        cities: &["Philadelphia"],
        lat: 39.95,
        lon: -75.17,
        offset_min: -300,
        weight: 9.0,
    },
    Area {
        zip3: "606",
        state: "IL",
        cities: &["Chicago", "Evanston", "Oak Park"],
        lat: 41.88,
        lon: -87.63,
        offset_min: -360,
        weight: 11.0,
    },
    Area {
        zip3: "692",
        state: "NE",
        cities: &["Valentine", "Ainsworth"],
        lat: 42.87,
        lon: -100.55,
        offset_min: -360,
        weight: 0.5,
    },
    Area {
        zip3: "770",
        state: "TX",
        cities: &["Houston", "Pasadena", "Bellaire"],
        lat: 29.76,
        lon: -95.37,
        offset_min: -360,
        weight: 11.0,
    },
    Area {
        zip3: "852",
        state: "AZ",
        cities: &["Phoenix", "Scottsdale", "Tempe", "Mesa"],
        lat: 33.45,
        lon: -112.07,
        offset_min: -420,
        weight: 8.0,
    },
    Area {
        zip3: "900",
        state: "CA",
        cities: &["Los Angeles", "Inglewood", "Culver City"],
        lat: 34.05,
        lon: -118.24,
        offset_min: -480,
        weight: 12.0,
    },
    Area {
        zip3: "981",
        state: "WA",
        cities: &["Seattle", "Bellevue", "Renton"],
        lat: 47.61,
        lon: -122.33,
        offset_min: -480,
        weight: 6.0,
    },
];

/// Birth places outside the generated areas (city, state).
pub(crate) const BIRTH_PLACES: &[(&str, &str)] = &[
    ("Worcester", "Massachusetts"),
    ("Lowell", "Massachusetts"),
    ("Providence", "Rhode Island"),
    ("Hartford", "Connecticut"),
    ("Albany", "New York"),
    ("Baltimore", "Maryland"),
    ("Atlanta", "Georgia"),
    ("Detroit", "Michigan"),
    ("San Juan", "Puerto Rico"),
    ("Denver", "Colorado"),
    ("Portland", "Oregon"),
    ("Miami", "Florida"),
];

/// Male given names.
pub(crate) const GIVEN_MALE: &[&str] = &[
    "James",
    "Robert",
    "John",
    "Michael",
    "David",
    "William",
    "Richard",
    "Joseph",
    "Thomas",
    "Charles",
    "Christopher",
    "Daniel",
    "Matthew",
    "Anthony",
    "Mark",
    "Donald",
    "Steven",
    "Paul",
    "Andrew",
    "Joshua",
    "Kenneth",
    "Kevin",
    "Brian",
    "George",
    "Timothy",
    "Ronald",
    "Jason",
    "Edward",
    "Jeffrey",
    "Ryan",
    "Jacob",
    "Gary",
    "Nicholas",
    "Eric",
    "Jonathan",
    "Stephen",
    "Luis",
    "José",
    "Wei",
    "Minh",
    "Darnell",
    "Andrés",
    "Mohammed",
    "Dmitri",
    "Kwame",
    "Taylor",
];

/// Female given names.
pub(crate) const GIVEN_FEMALE: &[&str] = &[
    "Mary",
    "Patricia",
    "Jennifer",
    "Linda",
    "Elizabeth",
    "Barbara",
    "Susan",
    "Jessica",
    "Sarah",
    "Karen",
    "Lisa",
    "Nancy",
    "Betty",
    "Margaret",
    "Sandra",
    "Ashley",
    "Kimberly",
    "Emily",
    "Donna",
    "Michelle",
    "Carol",
    "Amanda",
    "Dorothy",
    "Melissa",
    "Deborah",
    "Stephanie",
    "Rebecca",
    "Sharon",
    "Laura",
    "Cynthia",
    "Kathleen",
    "Amy",
    "Angela",
    "Shirley",
    "Anna",
    "María",
    "Lucía",
    "Mei",
    "Lan",
    "Aaliyah",
    "Zoë",
    "Chloé",
    "Fatima",
    "Ingrid",
    "Noelle",
];

/// Family names, including non-ASCII ones.
pub(crate) const FAMILY: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodríquez",
    "Martinez",
    "Hernández",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Pérez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Guzmán",
    "O'Brien",
    "Müller",
    "Kowalski",
    "Cormier",
    "Stiedemann",
    "Pollich",
    "Nováková",
    "Søren",
    "Chen",
    "Wang",
    "Patel",
    "Okafor",
    "Haddad",
    "Fitzgerald",
    "Boyle",
    "Hilll",
    "Fisher",
];

/// Street names.
pub(crate) const STREETS: &[&str] = &[
    "Main",
    "Oak",
    "Maple",
    "Cedar",
    "Elm",
    "Washington",
    "Lake",
    "Hill",
    "Park",
    "Pine",
    "Walnut",
    "Chestnut",
    "Spring",
    "North",
    "Ridge",
    "Church",
    "Willow",
    "Mill",
    "Highland",
    "Franklin",
    "Tillman",
    "Jefferson",
    "Madison",
    "Sunset",
    "Forest",
    "River",
    "Meadow",
    "Prospect",
    "Union",
    "Liberty",
];

/// Street suffixes.
pub(crate) const STREET_SUFFIXES: &[&str] = &[
    "Street",
    "Avenue",
    "Road",
    "Lane",
    "Drive",
    "Court",
    "Way",
    "Boulevard",
    "Place",
    "Terrace",
    "Underpass",
    "Crossing",
];

/// Words for facility names.
pub(crate) const FACILITY_KINDS: &[&str] = &[
    "GENERAL HOSPITAL",
    "MEDICAL CENTER",
    "COMMUNITY HEALTH CENTER",
    "FAMILY MEDICINE",
    "PHYSICIAN SERVICES INC",
    "URGENT CARE",
    "MEMORIAL HOSPITAL",
];

/// Provider specialties (NUCC taxonomy).
pub(crate) const SPECIALTIES: &[Code] = &[
    ("208D00000X", "General Practice"),
    ("207R00000X", "Internal Medicine"),
    ("208000000X", "Pediatrics"),
    ("207P00000X", "Emergency Medicine"),
    ("207RP1001X", "Pulmonary Disease"),
];

/// OMB race categories (code, display).
pub(crate) const RACES: &[(Code, f64)] = &[
    (("2106-3", "White"), 0.62),
    (("2054-5", "Black or African American"), 0.13),
    (("2028-9", "Asian"), 0.07),
    (("1002-5", "American Indian or Alaska Native"), 0.02),
    (("2131-1", "Other"), 0.16),
];

/// Spoken languages (BCP 47 code, display).
pub(crate) const LANGUAGES: &[(Code, f64)] = &[
    (("en-US", "English (United States)"), 0.82),
    (("es", "Spanish"), 0.12),
    (("zh", "Chinese"), 0.03),
    (("vi", "Vietnamese"), 0.02),
    (("pt", "Portuguese"), 0.01),
];
