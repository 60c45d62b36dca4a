//! A real SMTP server for the email tests: Python's aiosmtpd (Debian's `python3-aiosmtpd`),
//! delivering every message it accepts into a maildir that tests read back.

use std::{path::PathBuf, process::Stdio, time::Duration};

pub struct SmtpSink {
    pub port: u16,
    /// The CA that signed the server's certificate, PEM, when it speaks STARTTLS.
    pub ca_pem: Option<String>,
    dir: tempfile::TempDir,
    _child: tokio::process::Child,
}

/// One message as delivered: its raw text (headers and body).
#[derive(Debug, Clone)]
pub struct Delivered {
    pub raw: String,
}

impl Delivered {
    /// The body as a reader sees it: quoted-printable (which mail uses for long lines) decoded.
    pub fn body(&self) -> String {
        let body = self
            .raw
            .split_once("\r\n\r\n")
            .or_else(|| self.raw.split_once("\n\n"))
            .map_or("", |(_, body)| body);
        let quoted = self
            .header("content-transfer-encoding")
            .is_some_and(|e| e.eq_ignore_ascii_case("quoted-printable"));
        if !quoted {
            return body.to_owned();
        }
        let joined = body.replace("=\r\n", "").replace("=\n", "");
        let bytes = joined.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (bytes[i], hex) {
                (b'=', Some(byte)) => {
                    out.push(byte);
                    i += 3;
                }
                (other, _) => {
                    out.push(other);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The first `http(s)://` link in the body that contains `needle`.
    pub fn link_containing(&self, needle: &str) -> Option<String> {
        self.body()
            .split_whitespace()
            .find(|w| w.starts_with("http") && w.contains(needle))
            .map(|link| {
                if let Some((_, token)) = link.split_once("token=") {
                    crate::used_secret(token);
                }
                link.to_owned()
            })
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.raw
            .lines()
            .take_while(|l| !l.is_empty())
            .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_owned())
    }
}

impl SmtpSink {
    /// A server that speaks plain SMTP (for `smtp+plain://` on loopback).
    pub async fn start() -> Self {
        Self::spawn(false).await
    }

    /// A server that requires STARTTLS, with a certificate for `localhost` from a CA of its
    /// own ([`Self::ca_pem`]).
    pub async fn start_tls() -> Self {
        Self::spawn(true).await
    }

    async fn spawn(tls: bool) -> Self {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("its address").port()
        };
        let dir = tempfile::tempdir().expect("maildir");
        let mut command = tokio::process::Command::new("/usr/bin/python3");
        command
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"));
        let ca_pem = tls.then(|| {
            use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
                .expect("CA");
            let key = KeyPair::generate().expect("key");
            let cert = CertificateParams::new(vec!["localhost".to_owned()])
                .expect("params")
                .signed_by(&key, &ca)
                .expect("certificate");
            std::fs::write(dir.path().join("smtp.key"), key.serialize_pem()).expect("key file");
            std::fs::write(dir.path().join("smtp.crt"), cert.pem()).expect("cert file");
            command
                .arg("--tlscert")
                .arg(dir.path().join("smtp.crt"))
                .arg("--tlskey")
                .arg(dir.path().join("smtp.key"));
            ca.pem()
        });
        let child = command
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("mail"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("aiosmtpd starts: apt-get install python3-aiosmtpd (tests/run does)");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Self {
                    port,
                    ca_pem,
                    dir,
                    _child: child,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("aiosmtpd did not listen on {port} in 5 s");
    }

    /// `smtp_url` for a Stackgate that sends here: STARTTLS to `localhost` when the server
    /// speaks it, plain SMTP to the loopback address otherwise.
    pub fn url(&self) -> String {
        match self.ca_pem {
            Some(_) => format!("smtp://localhost:{}", self.port),
            None => format!("smtp+plain://127.0.0.1:{}", self.port),
        }
    }

    /// Writes the CA to a file in the sink's folder, for `smtp_ca_file`.
    pub fn ca_file(&self) -> Option<PathBuf> {
        let pem = self.ca_pem.as_ref()?;
        let path = self.dir.path().join("ca.pem");
        std::fs::write(&path, pem).expect("CA file");
        Some(path)
    }

    pub fn maildir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// The messages delivered so far, oldest first.
    pub fn messages(&self) -> Vec<Delivered> {
        let mut files: Vec<_> = std::fs::read_dir(self.maildir().join("new"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files
            .into_iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .map(|raw| Delivered { raw })
            .collect()
    }

    /// Waits up to 10 s for the `n`th message (counting from 1).
    pub async fn wait_for(&self, n: usize) -> Delivered {
        for _ in 0..200 {
            if let Some(m) = self.messages().into_iter().nth(n - 1) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("message {n} did not arrive in 10 s");
    }
}
