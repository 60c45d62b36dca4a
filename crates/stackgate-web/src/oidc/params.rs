//! Protocol parameters, from a query string or a form body. A parameter sent twice is an error
//! (RFC 6749 §3.1): which copy would win is exactly what an attacker would play with.

use stackgate_oidc::OidcError;
use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    pub(crate) fn parse(encoded: &[u8]) -> Result<Self, OidcError> {
        let mut map = HashMap::new();
        for (key, value) in url::form_urlencoded::parse(encoded) {
            if map
                .insert(key.clone().into_owned(), value.into_owned())
                .is_some()
            {
                return Err(OidcError::InvalidRequest(format!(
                    "parameter {key} is repeated"
                )));
            }
        }
        Ok(Self(map))
    }

    /// A parameter; empty values count as absent (RFC 6749 §3.1).
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub(crate) fn require(&self, key: &str) -> Result<&str, OidcError> {
        self.get(key)
            .ok_or_else(|| OidcError::InvalidRequest(format!("{key} is required")))
    }

    /// The parameters re-encoded, without the ones named.
    pub(crate) fn encode_without(&self, drop: &[&str]) -> String {
        let mut pairs: Vec<(&String, &String)> = self
            .0
            .iter()
            .filter(|(k, _)| !drop.contains(&k.as_str()))
            .collect();
        pairs.sort();
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(Params::parse(b"a=1&a=2").is_err());
        let p = Params::parse(b"a=1&b=&c=x%20y").unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some("x y"));
        assert_eq!(p.encode_without(&["a"]), "b=&c=x+y");
    }
}
