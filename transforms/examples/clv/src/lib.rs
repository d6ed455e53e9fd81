//! `clv`: a simple discounted customer lifetime value.
//!
//! ```text
//! annual_margin = avg_order_value × frequency_365d × margin
//! clv           = Σ_{t=1..horizon_years} annual_margin × retention^t / (1 + discount_rate)^t
//! ```
//!
//! Year `t` is the `t`-th year from now: its margin is earned only if the customer is still
//! there (`retention^t`) and is worth less today (`(1 + discount_rate)^t`, end-of-year cash
//! flows). Last year's order count stands for the orders per year.
//!
//! Config keys (defaults): `margin` (0.3, a fraction in 0..=1), `horizon_years` (3, 1..=100),
//! `discount_rate` (0.1, 0..=1), `retention` (0.8, 0..=1).
//!
//! A null input gives a null value: an unknown order value is not a zero one. Inputs are not
//! clamped; a negative average (refunds) gives a negative value.

use fstore_transform_sdk::{config, transform};

config! {
    /// The value model's parameters.
    #[derive(Debug, Clone, PartialEq)]
    pub struct ClvConfig {
        /// Share of revenue kept as margin.
        pub margin: f64 = 0.3,
        /// Years summed.
        pub horizon_years: u32 = 3,
        /// Yearly discount rate.
        pub discount_rate: f64 = 0.1,
        /// Probability a customer is still one a year later.
        pub retention: f64 = 0.8,
    }
    validate(c) {
        let fraction = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) { Ok(()) } else { Err(format!("{name} must be in 0..=1, got {v}")) }
        };
        fraction("margin", c.margin)?;
        fraction("discount_rate", c.discount_rate)?;
        fraction("retention", c.retention)?;
        if !(1..=100).contains(&c.horizon_years) {
            return Err(format!("horizon_years must be in 1..=100, got {}", c.horizon_years));
        }
        Ok(())
    }
}

impl ClvConfig {
    /// `margin × Σ (retention / (1 + discount_rate))^t`: what one unit of yearly revenue is
    /// worth today.
    pub fn multiplier(&self) -> f64 {
        let q = self.retention / (1.0 + self.discount_rate);
        let mut factor = 1.0;
        let mut sum = 0.0;
        for _ in 0..self.horizon_years {
            factor *= q;
            sum += factor;
        }
        self.margin * sum
    }
}

transform! {
    /// Discounted customer lifetime value.
    pub struct Clv;
    config: ClvConfig,
    inputs: (avg_order_value: float64, frequency_365d: int64),
    outputs: (clv: float64),
    compute: clv,
}

/// One customer's value.
pub fn clv(
    cfg: &ClvConfig,
    avg_order_value: Option<f64>,
    frequency_365d: Option<i64>,
) -> Result<Option<f64>, String> {
    Ok(match (avg_order_value, frequency_365d) {
        (Some(aov), Some(n)) => Some(aov * n as f64 * cfg.multiplier()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fstore_transform_sdk::{Config, Transform, Value};

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn default_model() {
        let q: f64 = 0.8 / 1.1;
        let want = 100.0 * 4.0 * 0.3 * (q + q * q + q * q * q);
        assert!(close(
            clv(&ClvConfig::default(), Some(100.0), Some(4))
                .ok()
                .flatten(),
            want
        ));
        assert!(close(
            clv(&ClvConfig::default(), Some(100.0), Some(0))
                .ok()
                .flatten(),
            0.0
        ));
    }

    #[test]
    fn configured_model() {
        let cfg = ClvConfig::from_pairs(&[
            ("margin".into(), "1".into()),
            ("horizon_years".into(), "2".into()),
            ("discount_rate".into(), "0".into()),
            ("retention".into(), "0.5".into()),
        ])
        .expect("valid config");
        // 10 × 1 × (0.5 + 0.25)
        assert!(close(clv(&cfg, Some(10.0), Some(1)).ok().flatten(), 7.5));
    }

    #[test]
    fn nulls() {
        let c = ClvConfig::default();
        assert_eq!(clv(&c, None, Some(3)), Ok(None));
        assert_eq!(clv(&c, Some(3.0), None), Ok(None));
        assert_eq!(
            Clv::compute(&c, &[Value::Null, Value::Int64(1)]),
            Ok(vec![Value::Null])
        );
    }

    #[test]
    fn invalid_config() {
        for (k, v) in [
            ("margin", "1.5"),
            ("retention", "-0.1"),
            ("discount_rate", "abc"),
            ("horizon_years", "0"),
            ("horizon_years", "2.5"),
            ("churn", "0.2"),
        ] {
            assert!(
                ClvConfig::from_pairs(&[(k.into(), v.into())]).is_err(),
                "{k}={v}"
            );
        }
    }
}
