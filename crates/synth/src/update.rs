//! Update batches: what changes in a patient's record between one export and the next.
//!
//! A batch is a pure function of (seed, patient index, batch number) applied to the record as the
//! previous batches left it, so any batch can be rebuilt by replaying the ones before it; nothing
//! has to be read back from the earlier output except its manifest.

use serde_json::{Value, json};

use crate::patient::{Gen, Record, Res, Stamp, Tag, Ty};
use crate::rng::Rng;
use crate::time::{self, DAY};
use crate::world::World;

/// The changes of one batch for one patient.
#[derive(Debug, Default)]
pub(crate) struct Delta {
    /// New versions of modified resources, then new resources.
    pub(crate) changed: Vec<Res>,
    /// Deleted resources (type, id).
    pub(crate) deleted: Vec<(Ty, String)>,
}

/// Rewrites a resource: parses it, applies `change`, sets `versionId` + 1 and `lastUpdated`.
fn revise(res: &mut Res, t: i64, change: impl FnOnce(&mut Value)) {
    let mut value: Value = serde_json::from_str(&res.json).expect("generated JSON parses");
    change(&mut value);
    let version = value["meta"]["versionId"]
        .as_str()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1);
    value["meta"]["versionId"] = (version + 1).to_string().into();
    value["meta"]["lastUpdated"] = time::instant(t).into();
    res.json = serde_json::to_string(&value).expect("in memory");
}

/// Indices of resources with a tag.
fn tagged(rec: &Record, ty: Ty, tag: Tag) -> Vec<usize> {
    rec.resources
        .iter()
        .enumerate()
        .filter(|(_, r)| r.ty == ty && r.tag == tag)
        .map(|(i, _)| i)
        .collect()
}

/// Applies batch `batch` to a record and returns what changed.
pub(crate) fn apply(w: &World, rec: &mut Record, batch: u32) -> Delta {
    let mut delta = Delta::default();
    if rec.deleted {
        return delta;
    }
    let mut rng = Rng::new(&[w.seed, rec.index, u64::from(batch), 0x0BD]);
    if rng.chance(0.003) {
        delta.deleted = rec.resources.drain(..).map(|r| (r.ty, r.id)).collect();
        rec.deleted = true;
        return delta;
    }
    let stamp = Stamp::of_batch(batch);
    let when = |rng: &mut Rng| rng.range(stamp.lo, stamp.hi);
    let mut touched: Vec<usize> = Vec::new();

    if rng.chance(0.05) {
        let t = when(&mut rng);
        let new_phone = format!("555-{}-{}", rng.range(200, 999), rng.digits(4));
        revise(&mut rec.resources[0], t, |patient| {
            if let Some(home) = patient["telecom"]
                .as_array_mut()
                .and_then(|t| t.first_mut())
            {
                home["value"] = new_phone.into();
            }
        });
        touched.push(0);
    }
    if rng.chance(0.04) {
        let active = tagged(rec, Ty::Condition, Tag::ActiveCondition);
        if !active.is_empty() {
            let i = *rng.pick(&active);
            let t = when(&mut rng);
            let abatement = time::date_time(t - rng.range(1, 20) * DAY, rec.person.tz());
            let res = &mut rec.resources[i];
            revise(res, t, |v| {
                v["clinicalStatus"]["coding"][0]["code"] = "resolved".into();
                v["abatementDateTime"] = abatement.into();
            });
            res.tag = Tag::None;
            touched.push(i);
        }
    }
    if rng.chance(0.03) {
        let vitals = tagged(rec, Ty::Observation, Tag::Vital);
        if !vitals.is_empty() {
            let i = *rng.pick(&vitals);
            let t = when(&mut rng);
            revise(&mut rec.resources[i], t, |v| {
                v["status"] = "amended".into();
                let old = v["valueQuantity"]["value"].as_f64().unwrap_or(0.0);
                v["valueQuantity"]["value"] = json!(((old * 1.02) * 10.0).round() / 10.0);
            });
            touched.push(i);
        }
    }
    delta.changed = touched.iter().map(|&i| rec.resources[i].clone()).collect();

    let mut remove: Vec<usize> = Vec::new();
    for (ty, tag) in [
        (Ty::DocumentReference, Tag::None),
        (Ty::Observation, Tag::Vital),
    ] {
        if rng.chance(0.015) {
            let c: Vec<usize> = tagged(rec, ty, tag)
                .into_iter()
                .filter(|i| !touched.contains(i))
                .collect();
            if !c.is_empty() {
                remove.push(*rng.pick(&c));
            }
        }
    }
    remove.sort_unstable();
    remove.dedup();
    for i in remove.into_iter().rev() {
        let r = rec.resources.remove(i);
        delta.deleted.push((r.ty, r.id));
    }

    if rec.death.is_none() && rng.chance(0.1) {
        let t = rng.range(stamp.lo, stamp.hi - DAY);
        let positive = rng.chance(0.12);
        let wellness = rng.chance(0.6);
        let mut g = Gen::for_update(w, &rec.person, rec.index, batch);
        if wellness {
            let mut recorded = vec![true; rec.person.chronic.len()];
            g.wellness(t, &mut recorded);
        } else {
            g.covid_test(t, positive, None, None);
        }
        let new = g.out;
        delta.changed.extend(new.iter().cloned());
        rec.resources.extend(new);
    }
    delta
}
