//! `next_offer`: a request-time transform combining stored features (`segment`, `clv`) with the
//! request's context (`cart_value`, `channel`) into the offer to show and its discount.
//!
//! The first rule that matches wins:
//!
//! | offer | rule | discount_pct |
//! |---|---|---|
//! | `early_access` | segment `champions` | 0: they buy anyway; access, not margin |
//! | `win_back` | segment `at_risk` or `hibernating`, `cart_value >= min_cart` | `winback_pct`, or `winback_high_clv_pct` when `clv >= high_clv` |
//! | `reactivation` | segment `lost`, `cart_value >= min_cart` | `reactivation_pct` |
//! | `welcome` | segment `new`, `cart_value >= min_cart` | `welcome_pct` |
//! | `free_shipping` | `channel` equals `free_shipping_channel` | 0 |
//! | `loyalty_points` | segment `loyal` | 0 |
//! | `none` | anything else | 0 |
//!
//! Config keys (defaults): `min_cart` (50), `high_clv` (1000), `winback_pct` (15),
//! `winback_high_clv_pct` (25), `reactivation_pct` (20), `welcome_pct` (10),
//! `free_shipping_channel` (`mobile`). Percentages are in 0..=100.
//!
//! Nulls never make the request fail, and both outputs are always set: a null segment matches no
//! segment rule (so `free_shipping` or `none`), a null clv is below `high_clv`, a null cart is
//! below `min_cart` and a null channel matches no channel.

use fstore_transform_sdk::{config, transform};

config! {
    /// Thresholds and discounts.
    #[derive(Debug, Clone, PartialEq)]
    pub struct OfferConfig {
        /// The smallest cart that earns a discount.
        pub min_cart: f64 = 50.0,
        /// The lifetime value above which a lapsing customer gets the bigger win-back discount.
        pub high_clv: f64 = 1000.0,
        pub winback_pct: f64 = 15.0,
        pub winback_high_clv_pct: f64 = 25.0,
        pub reactivation_pct: f64 = 20.0,
        pub welcome_pct: f64 = 10.0,
        /// The channel whose requests get free shipping.
        pub free_shipping_channel: String = "mobile".to_string(),
    }
    validate(c) {
        for (name, v) in [
            ("winback_pct", c.winback_pct),
            ("winback_high_clv_pct", c.winback_high_clv_pct),
            ("reactivation_pct", c.reactivation_pct),
            ("welcome_pct", c.welcome_pct),
        ] {
            if !(0.0..=100.0).contains(&v) {
                return Err(format!("{name} must be a percentage in 0..=100, got {v}"));
            }
        }
        if c.min_cart < 0.0 {
            return Err(format!("min_cart must not be negative, got {}", c.min_cart));
        }
        Ok(())
    }
}

transform! {
    /// The offer for this request.
    pub struct NextOffer;
    config: OfferConfig,
    inputs: (segment: string, clv: float64, cart_value: float64, channel: string),
    outputs: (offer: string, discount_pct: float64),
    compute: next_offer,
}

/// The rules of the module docs: `(offer, discount_pct)`.
pub fn choose(
    cfg: &OfferConfig,
    segment: Option<&str>,
    clv: Option<f64>,
    cart_value: Option<f64>,
    channel: Option<&str>,
) -> (&'static str, f64) {
    let big_cart = cart_value.is_some_and(|c| c >= cfg.min_cart);
    let high_clv = clv.is_some_and(|v| v >= cfg.high_clv);
    match segment {
        Some("champions") => return ("early_access", 0.0),
        Some("at_risk" | "hibernating") if big_cart => {
            let pct = if high_clv {
                cfg.winback_high_clv_pct
            } else {
                cfg.winback_pct
            };
            return ("win_back", pct);
        }
        Some("lost") if big_cart => return ("reactivation", cfg.reactivation_pct),
        Some("new") if big_cart => return ("welcome", cfg.welcome_pct),
        _ => {}
    }
    if channel == Some(cfg.free_shipping_channel.as_str()) {
        ("free_shipping", 0.0)
    } else if segment == Some("loyal") {
        ("loyalty_points", 0.0)
    } else {
        ("none", 0.0)
    }
}

fn next_offer(
    cfg: &OfferConfig,
    segment: Option<&str>,
    clv: Option<f64>,
    cart_value: Option<f64>,
    channel: Option<&str>,
) -> Result<(Option<String>, Option<f64>), String> {
    let (offer, pct) = choose(cfg, segment, clv, cart_value, channel);
    Ok((Some(offer.to_string()), Some(pct)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fstore_transform_sdk::{Config, Transform, Value};

    fn pick(seg: Option<&str>, clv: f64, cart: f64, channel: &str) -> (&'static str, f64) {
        choose(
            &OfferConfig::default(),
            seg,
            Some(clv),
            Some(cart),
            Some(channel),
        )
    }

    #[test]
    fn rules() {
        assert_eq!(
            pick(Some("champions"), 5000.0, 10.0, "mobile"),
            ("early_access", 0.0)
        );
        assert_eq!(
            pick(Some("at_risk"), 100.0, 60.0, "web"),
            ("win_back", 15.0)
        );
        assert_eq!(
            pick(Some("hibernating"), 1000.0, 50.0, "web"),
            ("win_back", 25.0)
        );
        assert_eq!(pick(Some("at_risk"), 100.0, 49.99, "web"), ("none", 0.0));
        assert_eq!(
            pick(Some("at_risk"), 100.0, 10.0, "mobile"),
            ("free_shipping", 0.0)
        );
        assert_eq!(pick(Some("lost"), 0.0, 80.0, "web"), ("reactivation", 20.0));
        assert_eq!(pick(Some("new"), 0.0, 80.0, "web"), ("welcome", 10.0));
        assert_eq!(
            pick(Some("loyal"), 900.0, 80.0, "web"),
            ("loyalty_points", 0.0)
        );
        assert_eq!(
            pick(Some("loyal"), 900.0, 80.0, "mobile"),
            ("free_shipping", 0.0)
        );
        assert_eq!(pick(Some("potential"), 0.0, 80.0, "web"), ("none", 0.0));
    }

    #[test]
    fn nulls_never_fail() {
        let c = OfferConfig::default();
        assert_eq!(choose(&c, None, None, None, None), ("none", 0.0));
        assert_eq!(
            choose(&c, Some("at_risk"), None, Some(100.0), None),
            ("win_back", 15.0)
        );
        assert_eq!(
            choose(&c, Some("at_risk"), Some(1e6), None, Some("mobile")),
            ("free_shipping", 0.0)
        );
        assert_eq!(
            NextOffer::compute(&c, &[Value::Null, Value::Null, Value::Null, Value::Null]),
            Ok(vec![Value::String("none".into()), Value::Float64(0.0)])
        );
    }

    #[test]
    fn configured() {
        let c = OfferConfig::from_pairs(&[
            ("min_cart".into(), "100".into()),
            ("winback_pct".into(), "5".into()),
            ("free_shipping_channel".into(), "app".into()),
        ])
        .expect("valid config");
        assert_eq!(
            choose(&c, Some("at_risk"), None, Some(99.0), Some("app")),
            ("free_shipping", 0.0)
        );
        assert_eq!(
            choose(&c, Some("at_risk"), None, Some(100.0), Some("app")),
            ("win_back", 5.0)
        );
        assert!(OfferConfig::from_pairs(&[("welcome_pct".into(), "150".into())]).is_err());
        assert!(OfferConfig::from_pairs(&[("min_cart".into(), "-1".into())]).is_err());
        assert!(OfferConfig::from_pairs(&[("max_cart".into(), "1".into())]).is_err());
    }
}
