//! The `[policy] config` string as `key=value` pairs, the form the shipped examples use:
//! `header=x-user, spread=3`. Pairs are separated by commas or whitespace.

/// The pairs of a config string, checked against the keys a policy knows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigPairs<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> ConfigPairs<'a> {
    /// Parses `config`; an item without `=`, an empty key, a key not in `known` or a key given
    /// twice is an error whose message names it (return it from `configure` to refuse the load).
    pub fn parse(config: &'a str, known: &[&str]) -> Result<Self, String> {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for item in config
            .split([',', ' ', '\t', '\n'])
            .filter(|item| !item.is_empty())
        {
            let Some((key, value)) = item.split_once('=') else {
                return Err(format!("config item {item:?} is not key=value"));
            };
            if !known.contains(&key) {
                return Err(format!(
                    "unknown config key {key:?}: expected {}",
                    known.join(", ")
                ));
            }
            if pairs.iter().any(|(seen, _)| *seen == key) {
                return Err(format!("config key {key:?} is given twice"));
            }
            pairs.push((key, value));
        }
        Ok(ConfigPairs { pairs })
    }

    /// The value of `key`, if the config gives it.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| *value)
    }

    /// The value of `key` parsed as `T`; an error names the key and the value.
    pub fn parsed<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, String> {
        self.get(key)
            .map(|value| {
                value
                    .parse()
                    .map_err(|_| format!("config key {key:?}: {value:?} is not valid"))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_read_and_checked() {
        let pairs = ConfigPairs::parse("header=x-user, spread=3", &["header", "spread"]).unwrap();
        assert_eq!(pairs.get("header"), Some("x-user"));
        assert_eq!(pairs.parsed::<u32>("spread"), Ok(Some(3)));
        assert_eq!(pairs.get("other"), None);
        assert_eq!(
            ConfigPairs::parse("", &["header"]),
            Ok(ConfigPairs::default())
        );
        for bad in ["nonsense", "colour=red", "header=a,header=b", "=x"] {
            assert!(ConfigPairs::parse(bad, &["header"]).is_err(), "{bad}");
        }
        let pairs = ConfigPairs::parse("spread=lots", &["spread"]).unwrap();
        assert!(pairs.parsed::<u32>("spread").is_err());
    }
}
