//! `generalize`: replaces a primitive value by the value of the first case whose FHIRPath
//! predicate is true on it (`$this` is the value), e.g. `{"$this >= 20 and $this < 30": "25"}`.
//! With no true case the value is removed (`otherValues: redact`) or kept (`keep`); either way
//! the node counts as generalized.

use fhirpath::{Environment, Expression, Item};
use serde_json::Value;

use crate::config::OtherValues;

/// The compiled cases of one rule.
#[derive(Debug, Clone)]
pub struct Cases {
    /// (predicate, value) pairs in configuration order.
    pub cases: Vec<(Expression, Expression)>,
    /// What happens when no predicate is true.
    pub other_values: OtherValues,
}

/// What generalization does to one value.
#[derive(Debug, Clone, PartialEq)]
pub enum Generalized {
    /// Write this value.
    Replace(Value),
    /// Remove the value.
    Remove,
    /// Leave the value.
    Unchanged,
}

/// Why a case could not be evaluated (the message holds no value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("case {case}: {message}")]
pub struct CaseError {
    /// The index of the failing case.
    pub case: usize,
    /// What went wrong.
    pub message: String,
}

fn to_json(item: &Item<'_>) -> Option<Value> {
    if let Some(json) = item.json()
        && !json.is_object()
        && !json.is_array()
    {
        return Some(json.clone());
    }
    Some(match item.to_value()? {
        fhirpath::Value::Boolean(b) => Value::Bool(b),
        fhirpath::Value::Integer(i) => Value::from(i),
        fhirpath::Value::Decimal(d) => d
            .to_string()
            .parse::<serde_json::Number>()
            .map_or_else(|_| Value::String(d.to_string()), Value::Number),
        other => Value::String(other.to_string()),
    })
}

/// Generalizes one primitive value of FHIR type `type_code`.
pub fn generalize(
    value: &Value,
    type_code: &'static str,
    cases: &Cases,
    resource: &Value,
) -> Result<Generalized, CaseError> {
    // Cases compare partial dates the way the original tool's FHIRPath engine does.
    let env = Environment::new()
        .with_resource(resource)
        .with_context_type(type_code)
        .partial_date_ranges();
    for (i, (predicate, result)) in cases.cases.iter().enumerate() {
        let err = |e: fhirpath::Error| CaseError {
            case: i,
            message: e.to_string(),
        };
        let matched = predicate.evaluate_with(value, &env).map_err(err)?;
        let is_true = match matched.as_slice() {
            [] => false,
            [one] => !matches!(one.to_value(), Some(fhirpath::Value::Boolean(false))),
            _ => {
                return Err(CaseError {
                    case: i,
                    message: "the predicate returned more than one item".into(),
                });
            }
        };
        if !is_true {
            continue;
        }
        let out = result.evaluate_with(value, &env).map_err(err)?;
        return match out.as_slice() {
            [] => Ok(Generalized::Remove),
            [one] => Ok(to_json(one).map_or(Generalized::Remove, Generalized::Replace)),
            _ => Err(CaseError {
                case: i,
                message: "the value expression returned more than one item".into(),
            }),
        };
    }
    Ok(match cases.other_values {
        OtherValues::Redact => Generalized::Remove,
        OtherValues::Keep => Generalized::Unchanged,
    })
}
