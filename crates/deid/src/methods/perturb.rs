//! `perturb`: adds uniform noise to numbers (`decimal`, `integer`, `positiveInt`,
//! `unsignedInt`) and to the `value` of quantities (`Quantity`, `Age`, `Count`, `Duration`,
//! `Distance`, `Money`, `SimpleQuantity`, `MoneyQuantity`).
//!
//! The noise is uniform in `[-s/2, s/2]`, where `s` is `span` (`fixed`) or `span × |value|`
//! (`proportional`); the result is rounded half-to-even to `roundTo` places (0 for integer
//! types). A `positiveInt` never goes below 1 nor an `unsignedInt` below 0. The arithmetic is
//! decimal (exact to 28 digits), as in the original; the noise itself is a double.

use rand::{Rng, RngExt};
use rust_decimal::prelude::*;

use crate::config::{PerturbSettings, RangeType};

/// The quantity types whose `value` child is perturbed.
pub const QUANTITY_TYPES: [&str; 8] = [
    "Age",
    "Count",
    "Duration",
    "Distance",
    "Money",
    "MoneyQuantity",
    "Quantity",
    "SimpleQuantity",
];

/// The kind of number being perturbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberKind {
    /// `decimal` (and quantity values): rounded to `roundTo`.
    Decimal,
    /// `integer`: rounded to a whole number.
    Integer,
    /// `positiveInt`: whole, at least 1.
    PositiveInt,
    /// `unsignedInt`: whole, at least 0.
    UnsignedInt,
}

impl NumberKind {
    /// The kind of a primitive type code, if it is a number perturb applies to.
    pub fn of(type_code: &str) -> Option<NumberKind> {
        match type_code {
            "decimal" => Some(NumberKind::Decimal),
            "integer" => Some(NumberKind::Integer),
            "positiveInt" => Some(NumberKind::PositiveInt),
            "unsignedInt" => Some(NumberKind::UnsignedInt),
            _ => None,
        }
    }
}

/// Perturbs `value`, drawing the noise from `rng`.
pub fn perturb<R: Rng + ?Sized>(
    value: Decimal,
    kind: NumberKind,
    settings: &PerturbSettings,
    rng: &mut R,
) -> Decimal {
    let span = match settings.range_type {
        RangeType::Fixed => settings.span,
        RangeType::Proportional => settings.span * value.abs(),
    };
    let half = span.to_f64().unwrap_or(0.0) / 2.0;
    let noise = -half + 2.0 * half * rng.random::<f64>();
    let noise = Decimal::from_f64(noise).unwrap_or_default();
    let round_to = if kind == NumberKind::Decimal {
        settings.round_to
    } else {
        0
    };
    let result =
        (value + noise).round_dp_with_strategy(round_to, RoundingStrategy::MidpointNearestEven);
    match kind {
        NumberKind::PositiveInt if result <= Decimal::ZERO => Decimal::ONE,
        NumberKind::UnsignedInt if result < Decimal::ZERO => Decimal::ZERO,
        _ => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn settings(span: &str, range_type: RangeType, round_to: u32) -> PerturbSettings {
        PerturbSettings {
            span: span.parse().unwrap(),
            range_type,
            round_to,
        }
    }

    #[test]
    fn stays_within_bounds() {
        let mut rng = StdRng::seed_from_u64(1);
        let fixed = settings("4", RangeType::Fixed, 2);
        let prop = settings("0.1", RangeType::Proportional, 0);
        for _ in 0..500 {
            let v = perturb(Decimal::from(100), NumberKind::Decimal, &fixed, &mut rng);
            assert!(v >= Decimal::from(98) && v <= Decimal::from(102), "{v}");
            assert!(v.scale() <= 2);
            let v = perturb(Decimal::from(60), NumberKind::Decimal, &prop, &mut rng);
            assert!(v >= Decimal::from(57) && v <= Decimal::from(63), "{v}");
            assert_eq!(v.scale(), 0);
            let v = perturb(Decimal::from(-60), NumberKind::Decimal, &prop, &mut rng);
            assert!(v >= Decimal::from(-63) && v <= Decimal::from(-57), "{v}");
        }
    }

    #[test]
    fn clamps_and_rounds_integers() {
        let mut rng = StdRng::seed_from_u64(2);
        let wide = settings("100", RangeType::Fixed, 5);
        let mut saw_clamp = (false, false);
        for _ in 0..500 {
            let v = perturb(Decimal::ONE, NumberKind::PositiveInt, &wide, &mut rng);
            assert!(v >= Decimal::ONE && v.scale() == 0);
            saw_clamp.0 |= v == Decimal::ONE;
            let v = perturb(Decimal::ZERO, NumberKind::UnsignedInt, &wide, &mut rng);
            assert!(v >= Decimal::ZERO && v.scale() == 0);
            saw_clamp.1 |= v == Decimal::ZERO;
            let v = perturb(Decimal::ZERO, NumberKind::Integer, &wide, &mut rng);
            assert_eq!(v.scale(), 0);
        }
        assert_eq!(saw_clamp, (true, true));
    }

    #[test]
    fn zero_span_keeps_the_value() {
        let mut rng = StdRng::seed_from_u64(3);
        let zero = settings("0", RangeType::Fixed, 2);
        assert_eq!(
            perturb(
                "12.5".parse().unwrap(),
                NumberKind::Decimal,
                &zero,
                &mut rng
            )
            .to_string(),
            "12.5"
        );
    }

    #[test]
    fn seeded_runs_repeat() {
        let s = settings("10", RangeType::Fixed, 2);
        let run = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..5)
                .map(|_| perturb(Decimal::from(50), NumberKind::Decimal, &s, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
    }
}
