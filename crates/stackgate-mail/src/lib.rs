//! Outgoing email: invitations and password-reset links, sent through the organisation's own
//! SMTP server with lettre.
//!
//! Links in these messages let their holder set a password, so they are only ever sent over
//! TLS: `smtps://` (TLS from the first byte) or `smtp://` (STARTTLS, required). Plain SMTP is
//! accepted only to a server on this machine (`smtp+plain://127.0.0.1:25`, a local relay that
//! then sends over TLS itself), where nothing crosses a network.

#![forbid(unsafe_code)]

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
    transport::smtp::{
        authentication::Credentials,
        client::{Certificate, Tls, TlsParameters},
    },
};
use percent_encoding::percent_decode_str;
use std::{net::IpAddr, time::Duration};

/// What went wrong with email; messages name the setting or the server's answer, never a
/// password.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("smtp_url: {0}")]
    Config(String),
    #[error("email address {address:?}: {reason}")]
    Address { address: String, reason: String },
    #[error("the mail server did not accept the message: {0}")]
    Send(String),
}

/// How long one message may take to hand over, connection included.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// An SMTP connection's settings, ready to send.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The URL without its password, for logs and the admin's settings page.
    shown: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.shown)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

/// An email to one person, in plain text.
#[derive(Debug, Clone)]
pub struct Email {
    pub to_name: String,
    pub to_address: String,
    pub subject: String,
    pub body: String,
}

/// A mail server URL fit to show: its password, if any, replaced.
pub fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(not a URL)".to_owned(),
    }
}

fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        // URLs of schemes the url crate does not know keep IP addresses as text.
        url::Host::Domain(name) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        url::Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        url::Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

fn mailbox(name: Option<&str>, address: &str) -> Result<Mailbox, MailError> {
    let parsed = address.parse().map_err(|e| MailError::Address {
        address: address.to_owned(),
        reason: format!("{e}"),
    })?;
    Ok(Mailbox::new(name.map(str::to_owned), parsed))
}

impl Mailer {
    /// `url` is `smtps://[user[:password]@]host[:port]`, `smtp://...` (STARTTLS required) or
    /// `smtp+plain://...` to a loopback address; `from` is the sender, `Name <address>` or an
    /// address.
    pub fn new(url: &str, from: &str) -> Result<Self, MailError> {
        Self::with_ca(url, from, None)
    }

    /// Like [`Self::new`], also trusting the certificate authority in `ca_pem` (an
    /// organisation's own CA, or a test's), beside the system's roots.
    pub fn with_ca(url: &str, from: &str, ca_pem: Option<&[u8]>) -> Result<Self, MailError> {
        let parsed =
            url::Url::parse(url).map_err(|e| MailError::Config(format!("not a URL ({e})")))?;
        let host = parsed
            .host()
            .ok_or_else(|| MailError::Config("names no host".into()))?;
        let host_name = match &host {
            url::Host::Ipv6(ip) => ip.to_string(),
            url::Host::Domain(name) => name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            other => other.to_string(),
        };
        let builder = match parsed.scheme() {
            "smtps" => AsyncSmtpTransport::<Tokio1Executor>::relay(&host_name)
                .map_err(|e| MailError::Config(e.to_string()))?,
            "smtp" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host_name)
                .map_err(|e| MailError::Config(e.to_string()))?,
            "smtp+plain" if is_loopback(&host) => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host_name)
            }
            "smtp+plain" => {
                return Err(MailError::Config(
                    "plain SMTP is allowed only to this machine (127.0.0.1, ::1 or localhost): invitation links must not cross a network unencrypted; use smtps:// or smtp:// (STARTTLS)".into(),
                ));
            }
            other => {
                return Err(MailError::Config(format!(
                    "scheme {other:?}: use smtps://, smtp:// (STARTTLS) or smtp+plain:// (this machine only)"
                )));
            }
        };
        let mut builder = builder.timeout(Some(SEND_TIMEOUT));
        if let (Some(pem), "smtps" | "smtp") = (ca_pem, parsed.scheme()) {
            let ca = Certificate::from_pem(pem)
                .map_err(|e| MailError::Config(format!("the CA certificate: {e}")))?;
            let tls = TlsParameters::builder(host_name.clone())
                .add_root_certificate(ca)
                .build_rustls()
                .map_err(|e| MailError::Config(format!("TLS: {e}")))?;
            builder = builder.tls(if parsed.scheme() == "smtps" {
                Tls::Wrapper(tls)
            } else {
                Tls::Required(tls)
            });
        }
        if let Some(port) = parsed.port() {
            builder = builder.port(port);
        }
        if !parsed.username().is_empty() {
            let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
            builder = builder.credentials(Credentials::new(
                decode(parsed.username()),
                decode(parsed.password().unwrap_or_default()),
            ));
        }
        let from = from.parse::<Mailbox>().map_err(|e| MailError::Address {
            address: from.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            transport: builder.build(),
            from,
            shown: without_password(url),
        })
    }

    /// The server, without its password.
    pub fn server(&self) -> &str {
        &self.shown
    }

    pub async fn send(&self, email: &Email) -> Result<(), MailError> {
        let to = mailbox(Some(&email.to_name), &email.to_address)?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&email.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(email.body.clone())
            .map_err(|e| MailError::Send(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map_err(|e| MailError::Send(e.to_string()))?;
        tracing::info!(server = %self.shown, subject = %email.subject, "email sent");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn plain_smtp_only_to_this_machine() {
        for ok in [
            "smtp+plain://127.0.0.1:2525",
            "smtp+plain://localhost",
            "smtp+plain://[::1]:25",
        ] {
            Mailer::new(ok, "Stackgate <stackgate@example.org>").expect(ok);
        }
        let err = Mailer::new("smtp+plain://mail.example.org", "a@example.org").unwrap_err();
        assert!(err.to_string().contains("only to this machine"), "{err}");
        let err = Mailer::new("http://mail.example.org", "a@example.org").unwrap_err();
        assert!(err.to_string().contains("scheme"), "{err}");
    }

    #[test]
    fn tls_schemes_and_bad_senders() {
        Mailer::new("smtps://u:p%40ss@mail.example.org", "a@example.org").unwrap();
        Mailer::new("smtp://mail.example.org:587", "Org <a@example.org>").unwrap();
        let err = Mailer::new("smtps://mail.example.org", "not an address").unwrap_err();
        assert!(matches!(err, MailError::Address { .. }), "{err}");
    }

    #[test]
    fn the_password_never_shows() {
        let mailer = Mailer::new("smtps://ops:hunter2@mail.example.org", "a@example.org").unwrap();
        assert_eq!(mailer.server(), "smtps://ops:***@mail.example.org");
        assert!(!format!("{mailer:?}").contains("hunter2"));
    }
}
