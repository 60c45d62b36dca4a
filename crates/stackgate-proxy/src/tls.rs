//! HTTPS: certificates from a folder (`NAME.crt` with `NAME.key`, PEM), chosen per connection
//! by SNI, and reloaded when the files change. A reload swaps what new handshakes see; live
//! connections keep the certificate they started with.

use crate::ProxyError;
use rustls::{
    crypto::aws_lc_rs,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

/// Every certificate in the folder, with the files' fingerprint to notice changes.
#[derive(Debug)]
struct Loaded {
    keys: Vec<Arc<CertifiedKey>>,
    stamp: Vec<(PathBuf, SystemTime, u64)>,
}

/// Chooses a certificate by the client's SNI name (exact or wildcard, as the certificate says);
/// without SNI, or with no match, the first certificate.
#[derive(Debug)]
pub struct CertResolver {
    dir: PathBuf,
    loaded: RwLock<Arc<Loaded>>,
}

impl CertResolver {
    pub fn open(dir: &Path) -> Result<Arc<Self>, ProxyError> {
        let loaded = load(dir)?;
        Ok(Arc::new(CertResolver {
            dir: dir.to_owned(),
            loaded: RwLock::new(Arc::new(loaded)),
        }))
    }

    fn current(&self) -> Arc<Loaded> {
        match self.loaded.read() {
            Ok(loaded) => loaded.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reloads if any file changed. A folder that no longer loads (a half-copied key) keeps the
    /// old certificates in force and says why.
    pub fn reload_if_changed(&self) -> bool {
        let Ok(stamp) = stamp(&self.dir) else {
            return false;
        };
        if stamp == self.current().stamp {
            return false;
        }
        match load(&self.dir) {
            Ok(loaded) => {
                tracing::info!(dir = %self.dir.display(), certificates = loaded.keys.len(), "reloaded TLS certificates");
                if let Ok(mut slot) = self.loaded.write() {
                    *slot = Arc::new(loaded);
                }
                true
            }
            Err(err) => {
                tracing::warn!(%err, "TLS certificates changed but cannot be loaded; keeping the previous ones");
                false
            }
        }
    }

    /// Checks the folder every `every` until the process ends.
    pub fn watch(self: Arc<Self>, every: Duration) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                self.reload_if_changed();
            }
        });
    }

    /// The TLS settings for the listener: HTTP/2 and HTTP/1.1 offered through ALPN.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, ProxyError> {
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| ProxyError::Config(format!("TLS: {e}")))?
                .with_no_client_auth()
                .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let loaded = self.current();
        let wanted = hello
            .server_name()
            .and_then(|name| ServerName::try_from(name.to_owned()).ok());
        if let Some(name) = wanted {
            for key in &loaded.keys {
                let Some(end_entity) = key.cert.first() else {
                    continue;
                };
                let Ok(cert) = webpki::EndEntityCert::try_from(end_entity) else {
                    continue;
                };
                if cert.verify_is_valid_for_subject_name(&name).is_ok() {
                    return Some(key.clone());
                }
            }
        }
        loaded.keys.first().cloned()
    }
}

fn pairs(dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>, ProxyError> {
    let unreadable = |e: std::io::Error| ProxyError::Certificate {
        path: dir.display().to_string(),
        message: e.to_string(),
    };
    let mut pairs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        if path.extension().is_some_and(|e| e == "crt") {
            let key = path.with_extension("key");
            if !key.exists() {
                return Err(ProxyError::Certificate {
                    path: path.display().to_string(),
                    message: format!("no matching key file {}", key.display()),
                });
            }
            pairs.push((path, key));
        }
    }
    pairs.sort();
    Ok(pairs)
}

fn stamp(dir: &Path) -> Result<Vec<(PathBuf, SystemTime, u64)>, ProxyError> {
    let mut stamp = Vec::new();
    for (cert, key) in pairs(dir)? {
        for path in [cert, key] {
            let meta = std::fs::metadata(&path)?;
            stamp.push((path, meta.modified()?, meta.len()));
        }
    }
    Ok(stamp)
}

fn load(dir: &Path) -> Result<Loaded, ProxyError> {
    let stamp = stamp(dir)?;
    let provider = aws_lc_rs::default_provider();
    let mut keys = Vec::new();
    for (cert_path, key_path) in pairs(dir)? {
        let bad = |path: &Path, message: String| ProxyError::Certificate {
            path: path.display().to_string(),
            message,
        };
        let chain = CertificateDer::pem_file_iter(&cert_path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| bad(&cert_path, format!("not a PEM certificate chain: {e}")))?;
        if chain.is_empty() {
            return Err(bad(&cert_path, "holds no certificate".into()));
        }
        let key = PrivateKeyDer::from_pem_file(&key_path)
            .map_err(|e| bad(&key_path, format!("not a PEM private key: {e}")))?;
        let certified = CertifiedKey::from_der(chain, key, &provider)
            .map_err(|e| bad(&key_path, format!("does not fit the certificate: {e}")))?;
        keys.push(Arc::new(certified));
    }
    if keys.is_empty() {
        return Err(ProxyError::Certificate {
            path: dir.display().to_string(),
            message: "no certificates (NAME.crt with NAME.key)".into(),
        });
    }
    Ok(Loaded { keys, stamp })
}
