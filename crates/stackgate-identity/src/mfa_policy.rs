//! What an organisation (globally) or a group asks of a sign-in, and whether a session's
//! methods (`amr`) meet it. A user is held to the strictest policy among the global one and
//! their groups'.

use crate::IdentityError;

#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum MfaPolicy {
    /// A password alone is enough (second factors are still used when the user has them).
    #[default]
    Optional,
    /// Two factors: any second factor after the password, or a passkey.
    Required,
    /// Two factors, one of them a WebAuthn key (passkey or security key): the methods a
    /// phishing page cannot relay.
    PhishingResistant,
}

impl MfaPolicy {
    pub fn parse(field: &'static str, text: &str) -> Result<Self, IdentityError> {
        match text {
            "optional" => Ok(MfaPolicy::Optional),
            "required" => Ok(MfaPolicy::Required),
            "phishing_resistant" => Ok(MfaPolicy::PhishingResistant),
            other => Err(IdentityError::invalid(
                field,
                format!("{other:?} is not one of optional, required, phishing_resistant"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MfaPolicy::Optional => "optional",
            MfaPolicy::Required => "required",
            MfaPolicy::PhishingResistant => "phishing_resistant",
        }
    }

    /// The policy an `acr` value asks for (`2`: two factors, `3`: phishing-resistant).
    pub fn from_acr(acr: &str) -> Self {
        match acr {
            "3" => MfaPolicy::PhishingResistant,
            "2" => MfaPolicy::Required,
            _ => MfaPolicy::Optional,
        }
    }

    /// Whether a session authenticated with `amr` (space-separated RFC 8176 values) meets it.
    pub fn met_by(self, amr: &str) -> bool {
        let has = |m: &str| amr.split_whitespace().any(|x| x == m);
        match self {
            MfaPolicy::Optional => true,
            MfaPolicy::Required => has("mfa"),
            MfaPolicy::PhishingResistant => has("mfa") && (has("hwk") || has("swk")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_and_what_meets_them() {
        assert!(MfaPolicy::Optional.met_by("pwd"));
        assert!(!MfaPolicy::Required.met_by("pwd"));
        assert!(MfaPolicy::Required.met_by("pwd otp mfa"));
        assert!(!MfaPolicy::PhishingResistant.met_by("pwd otp mfa"));
        assert!(MfaPolicy::PhishingResistant.met_by("pwd hwk mfa"));
        assert!(MfaPolicy::PhishingResistant.met_by("swk user mfa"));
        assert!(MfaPolicy::PhishingResistant > MfaPolicy::Required);
        assert_eq!(
            MfaPolicy::parse("p", "required").unwrap(),
            MfaPolicy::Required
        );
        assert!(MfaPolicy::parse("p", "strict").is_err());
        assert_eq!(MfaPolicy::from_acr("3"), MfaPolicy::PhishingResistant);
    }
}
