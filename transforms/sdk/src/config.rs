//! Configuration: the key/value list a transform is registered with, parsed into a typed struct.
//!
//! The contract makes an unknown key or an unparsable value an error, so a typo in a feature
//! definition fails registration instead of silently falling back to a default.

/// A transform's configuration. Usually declared with [`config!`](crate::config!), which
/// implements this from the struct's fields; `()` is the configuration of a transform without
/// keys.
pub trait Config: Default + Sized {
    /// The accepted keys, for error messages.
    const KEYS: &'static [&'static str];

    /// Sets one key from its text. Unknown keys and values that do not parse are errors.
    fn set(&mut self, key: &str, value: &str) -> Result<(), String>;

    /// Checks that need several keys (or the defaults) after every key is set.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }

    /// The defaults, overridden by `pairs` in order, then validated. A key given twice is an
    /// error: which one should win is not obvious, so neither does.
    fn from_pairs(pairs: &[(String, String)]) -> Result<Self, String> {
        let mut config = Self::default();
        for (i, (key, value)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(k, _)| k == key) {
                return Err(format!("config key `{key}` is given twice"));
            }
            config.set(key, value)?;
        }
        config.validate()?;
        Ok(config)
    }
}

impl Config for () {
    const KEYS: &'static [&'static str] = &[];

    fn set(&mut self, key: &str, _value: &str) -> Result<(), String> {
        Err(unknown_key(key, Self::KEYS))
    }
}

/// The error for a key the configuration does not have.
#[doc(hidden)]
pub fn unknown_key(key: &str, known: &[&str]) -> String {
    if known.is_empty() {
        format!("unknown config key `{key}`: this transform takes no configuration")
    } else {
        format!(
            "unknown config key `{key}` (expected one of: {})",
            known.join(", ")
        )
    }
}

/// Parses one key's value, naming the key in the error.
#[doc(hidden)]
pub fn parse_key<T: ConfigValue>(key: &str, value: &str) -> Result<T, String> {
    T::parse_config(value).map_err(|e| format!("config key `{key}`: {e}"))
}

/// A type a config value parses into. Surrounding whitespace is ignored.
pub trait ConfigValue: Sized {
    /// Parses the text of one value.
    fn parse_config(s: &str) -> Result<Self, String>;
}

macro_rules! integer_values {
    ($($t:ty),+) => {$(
        impl ConfigValue for $t {
            fn parse_config(s: &str) -> Result<Self, String> {
                s.trim().parse().map_err(|_| {
                    format!("`{s}` is not an integer in {}..={}", <$t>::MIN, <$t>::MAX)
                })
            }
        }
    )+};
}

integer_values!(i64, u32, u64);

impl ConfigValue for f64 {
    /// A finite number: NaN and infinities would make every comparison against them meaningless.
    fn parse_config(s: &str) -> Result<Self, String> {
        match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(format!("`{s}` is not a finite number")),
        }
    }
}

impl ConfigValue for bool {
    fn parse_config(s: &str) -> Result<Self, String> {
        match s.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("`{s}` is not `true` or `false`")),
        }
    }
}

impl ConfigValue for String {
    /// Taken as given, whitespace included.
    fn parse_config(s: &str) -> Result<Self, String> {
        Ok(s.to_string())
    }
}

/// `N` strictly ascending cut points, written `"14,30,60,120"`: the boundaries of `N + 1`
/// buckets, as in quintile scores. Parsing checks the count, each value (finite for `f64`) and
/// the order, so a scoring function can rely on them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cuts<T, const N: usize>(pub [T; N]);

impl<T: PartialOrd + Copy, const N: usize> Cuts<T, N> {
    /// How many cuts are strictly below `v` (0..=N): the bucket `v` falls in, with a value equal
    /// to a cut falling in the lower bucket.
    #[inline]
    pub fn count_below(&self, v: T) -> usize {
        self.0.iter().filter(|c| **c < v).count()
    }
}

impl<T: ConfigValue + PartialOrd + Copy + Default, const N: usize> ConfigValue for Cuts<T, N> {
    fn parse_config(s: &str) -> Result<Self, String> {
        let mut cuts = [T::default(); N];
        let mut n = 0;
        for part in s.split(',') {
            if n == N {
                return Err(format!("expected {N} comma-separated values, got more"));
            }
            let v = T::parse_config(part)?;
            if n > 0 && cuts[n - 1] >= v {
                return Err(format!("cut points must be strictly ascending: `{s}`"));
            }
            cuts[n] = v;
            n += 1;
        }
        if n != N {
            return Err(format!("expected {N} comma-separated values, got {n}"));
        }
        Ok(Cuts(cuts))
    }
}

/// Declares a configuration struct whose fields are the config keys, each with its type and
/// default, and optionally a check over the whole configuration:
///
/// ```
/// fstore_transform_sdk::config! {
///     /// Thresholds.
///     #[derive(Debug, Clone, PartialEq)]
///     pub struct Limits {
///         /// The smallest cart that gets a discount.
///         pub min_cart: f64 = 40.0,
///         pub max_pct: f64 = 20.0,
///     }
///     validate(c) {
///         if c.max_pct <= 100.0 { Ok(()) } else { Err("max_pct is a percentage".into()) }
///     }
/// }
/// use fstore_transform_sdk::Config;
/// let pairs = [("max_pct".to_string(), "15".to_string())];
/// assert_eq!(Limits::from_pairs(&pairs).map(|c| c.max_pct), Ok(15.0));
/// assert!(Limits::from_pairs(&[("max_pc".into(), "15".into())]).is_err());
/// ```
///
/// It implements `Default` (from the defaults) and [`Config`]; field types implement
/// [`ConfigValue`]. Do not derive `Default` yourself.
#[macro_export]
macro_rules! config {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $fvis:vis $field:ident : $fty:ty = $default:expr
            ),* $(,)?
        }
        $(validate($this:ident) $check:block)?
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $($(#[$fmeta])* $fvis $field: $fty,)*
        }

        impl ::core::default::Default for $name {
            fn default() -> Self {
                $name { $($field: $default,)* }
            }
        }

        impl $crate::Config for $name {
            const KEYS: &'static [&'static str] = &[$(stringify!($field)),*];

            fn set(&mut self, key: &str, value: &str) -> ::std::result::Result<(), ::std::string::String> {
                match key {
                    $(stringify!($field) => self.$field = $crate::__config::parse_key(key, value)?,)*
                    _ => return Err($crate::__config::unknown_key(key, Self::KEYS)),
                }
                Ok(())
            }

            $(
                fn validate(&self) -> ::std::result::Result<(), ::std::string::String> {
                    let $this = self;
                    $check
                }
            )?
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::config! {
        #[derive(Debug, PartialEq)]
        struct Example {
            cuts: Cuts<i64, 4> = Cuts([1, 2, 3, 4]),
            rate: f64 = 0.5,
            years: u32 = 3,
            flag: bool = false,
            label: String = "x".to_string(),
        }
        validate(c) {
            if c.rate < 1.0 { Ok(()) } else { Err("rate must be below 1".to_string()) }
        }
    }

    fn pairs(kv: &[(&str, &str)]) -> Vec<(String, String)> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(Example::from_pairs(&[]), Ok(Example::default()));
        let c = Example::from_pairs(&pairs(&[
            ("cuts", " 10, 20,30 ,40"),
            ("rate", "0.25"),
            ("years", "5"),
            ("flag", "true"),
            ("label", " a b "),
        ]))
        .expect("valid config");
        assert_eq!(
            c,
            Example {
                cuts: Cuts([10, 20, 30, 40]),
                rate: 0.25,
                years: 5,
                flag: true,
                label: " a b ".to_string(),
            }
        );
    }

    #[test]
    fn errors_name_the_key() {
        let err = |kv: &[(&str, &str)]| Example::from_pairs(&pairs(kv)).err().unwrap_or_default();
        assert_eq!(
            err(&[("colour", "red")]),
            "unknown config key `colour` (expected one of: cuts, rate, years, flag, label)"
        );
        assert_eq!(
            err(&[("rate", "abc")]),
            "config key `rate`: `abc` is not a finite number"
        );
        assert_eq!(
            err(&[("rate", "NaN")]),
            "config key `rate`: `NaN` is not a finite number"
        );
        assert_eq!(err(&[("rate", "2")]), "rate must be below 1");
        assert!(err(&[("years", "-1")]).starts_with("config key `years`: `-1` is not an integer"));
        assert_eq!(
            err(&[("flag", "yes")]),
            "config key `flag`: `yes` is not `true` or `false`"
        );
        assert_eq!(
            err(&[("rate", "0.1"), ("rate", "0.2")]),
            "config key `rate` is given twice"
        );
        assert_eq!(
            err(&[("cuts", "1,2,3")]),
            "config key `cuts`: expected 4 comma-separated values, got 3"
        );
        assert_eq!(
            err(&[("cuts", "1,2,3,4,5")]),
            "config key `cuts`: expected 4 comma-separated values, got more"
        );
        assert_eq!(
            err(&[("cuts", "1,3,3,4")]),
            "config key `cuts`: cut points must be strictly ascending: `1,3,3,4`"
        );
        assert!(err(&[("cuts", "1,,3,4")]).contains("`` is not an integer"));
        assert_eq!(
            <()>::from_pairs(&pairs(&[("a", "b")])),
            Err("unknown config key `a`: this transform takes no configuration".to_string())
        );
    }

    #[test]
    fn cuts_count_below() {
        let c: Cuts<f64, 4> = Cuts::parse_config("50,150,400,1000").expect("valid cuts");
        assert_eq!(c.count_below(50.0), 0);
        assert_eq!(c.count_below(50.01), 1);
        assert_eq!(c.count_below(1e9), 4);
        assert!(Cuts::<f64, 2>::parse_config("1,inf").is_err());
    }
}
