//! The signing keys in use: loaded from the store, opened with the master key, and swapped as a
//! whole on rotation, so a request never waits on a lock held across I/O.

use base64::{Engine, engine::general_purpose::STANDARD};
use stackgate_identity::{Actor, Uuid};
use stackgate_oidc::{
    Jwk, Jwks, KeyMaterial, KeySet, MasterKeys, OidcError, SigningAlg, SigningKey,
};
use stackgate_store::{Resealed, SealedOwner, Store, StoreError, StoredKey};
use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

/// How long a retired key stays published: the longest an access token (24 h) or ID token
/// it signed can live, plus a margin for clock skew.
pub const RETIRED_KEY_PUBLISHED_FOR: i64 = 86_400 + 3_600 + 300;

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] OidcError),
}

/// One consistent view of the keys.
pub struct Keys {
    signers: HashMap<SigningAlg, Arc<SigningKey>>,
    pub keyset: KeySet,
    pub jwks: Jwks,
}

impl Keys {
    /// The current key for `alg`.
    pub fn signer(&self, alg: SigningAlg) -> Result<&SigningKey, OidcError> {
        self.signers
            .get(&alg)
            .map(Arc::as_ref)
            .ok_or_else(|| OidcError::Key(format!("no current {} key", alg.as_str())))
    }
}

pub struct Keyring {
    store: Store,
    master: MasterKeys,
    current: RwLock<Arc<Keys>>,
    /// When a reload for an unknown key last ran, so forged `kid`s cannot make us hammer the store.
    last_unknown_kid_reload: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("master", &self.master)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// Loads the keys, creating a first key for any algorithm that has none. Values sealed under
    /// a previous master key are resealed under the current one first.
    pub async fn open(store: Store, master: impl Into<MasterKeys>) -> Result<Self, KeyringError> {
        let master = master.into();
        reseal(&store, &master).await?;
        let keys = load(&store, &master).await?;
        let keyring = Self {
            store,
            master,
            current: RwLock::new(Arc::new(keys)),
            last_unknown_kid_reload: tokio::sync::Mutex::new(None),
        };
        let missing: Vec<SigningAlg> = SigningAlg::ALL
            .into_iter()
            .filter(|alg| keyring.keys().signer(*alg).is_err())
            .collect();
        for alg in missing {
            keyring.add(alg).await?;
        }
        keyring.reload().await?;
        Ok(keyring)
    }

    pub fn master_keys(&self) -> &MasterKeys {
        &self.master
    }

    pub fn keys(&self) -> Arc<Keys> {
        match self.current.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the keys (another replica may have rotated them).
    pub async fn reload(&self) -> Result<(), KeyringError> {
        let keys = Arc::new(load(&self.store, &self.master).await?);
        match self.current.write() {
            Ok(mut current) => *current = keys,
            Err(poisoned) => *poisoned.into_inner() = keys,
        }
        Ok(())
    }

    /// The keys for verifying `token`: when it names a key we do not know (another replica has
    /// just rotated), reload once — at most every few seconds — before answering.
    pub async fn keys_for(&self, token: &str) -> Arc<Keys> {
        let keys = self.keys();
        let Some(kid) = jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid) else {
            return keys;
        };
        if keys.jwks.keys.iter().any(|k| k.kid == kid) {
            return keys;
        }
        let mut last = self.last_unknown_kid_reload.lock().await;
        let now = tokio::time::Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < std::time::Duration::from_secs(5)) {
            return keys;
        }
        *last = Some(now);
        if let Err(err) = self.reload().await {
            tracing::warn!(%err, "cannot reload signing keys");
        }
        self.keys()
    }

    /// A new key for every algorithm; the previous ones stay published until what they signed
    /// has expired.
    pub async fn rotate(&self) -> Result<Vec<String>, KeyringError> {
        let mut kids = Vec::new();
        for alg in SigningAlg::ALL {
            kids.push(self.add(alg).await?);
        }
        self.reload().await?;
        Ok(kids)
    }

    /// When the current ES256 key was created, for scheduled rotation.
    pub async fn current_key_created_at(&self) -> Result<Option<i64>, KeyringError> {
        Ok(self
            .store
            .signing_keys()
            .await?
            .into_iter()
            .filter(|k| k.retired_at.is_none() && k.alg == SigningAlg::ES256.as_str())
            .map(|k| k.created_at)
            .max())
    }

    /// Seals another secret (a TOTP secret) under the master key; returns it in base64 with the
    /// master key's id. `label` binds the ciphertext to its owner, so it cannot be moved.
    pub fn seal_secret(
        &self,
        label: &str,
        plaintext: &[u8],
    ) -> Result<(String, String), OidcError> {
        Ok((
            STANDARD.encode(self.master.current().seal(label, plaintext)?),
            self.master.current().id().to_owned(),
        ))
    }

    /// Opens a secret sealed by the master key `master_key_id` (the current or a previous one).
    pub fn open_secret(
        &self,
        label: &str,
        sealed: &str,
        master_key_id: &str,
    ) -> Result<Vec<u8>, OidcError> {
        open_sealed(&self.master, master_key_id, label, sealed)
    }

    async fn add(&self, alg: SigningAlg) -> Result<String, KeyringError> {
        let material = KeyMaterial::generate(alg)?;
        let sealed = self
            .master
            .current()
            .seal(&label(&material.kid), &material.pkcs8)?;
        let stored = StoredKey {
            kid: material.kid.clone(),
            alg: alg.as_str().to_owned(),
            private_key: STANDARD.encode(sealed),
            public_jwk: serde_json::to_string(&material.jwk)
                .map_err(|e| OidcError::Key(e.to_string()))?,
            master_key_id: self.master.current().id().to_owned(),
            created_at: 0,
            retired_at: None,
            publish_until: None,
        };
        let now = self.store.now_unix();
        self.store
            .add_signing_key(&stored, now + RETIRED_KEY_PUBLISHED_FOR)
            .await?;
        tracing::info!(kid = %material.kid, alg = alg.as_str(), "new signing key");
        Ok(material.kid)
    }
}

fn label(kid: &str) -> String {
    format!("signing-key:{kid}")
}

/// What a user's TOTP secret is sealed to.
pub fn totp_label(user: Uuid) -> String {
    totp_label_of(&user.to_string())
}

fn totp_label_of(user: &str) -> String {
    format!("totp:{user}")
}

fn owner_label(owner: &SealedOwner) -> String {
    match owner {
        SealedOwner::SigningKey(kid) => label(kid),
        SealedOwner::Totp(user) => totp_label_of(user),
    }
}

/// Opens a base64 value sealed by the master key `master_key_id` under `label`.
fn open_sealed(
    master: &MasterKeys,
    master_key_id: &str,
    label: &str,
    sealed: &str,
) -> Result<Vec<u8>, OidcError> {
    let sealed = STANDARD
        .decode(sealed)
        .map_err(|_| OidcError::Key(format!("{label} is not valid base64")))?;
    master.open(master_key_id, label, &sealed)
}

/// Reseals, in one transaction, every value still under a previous master key. A value sealed
/// under a key that is not configured stops the start with a message naming that key: starting
/// anyway would leave sign-ins failing one by one.
async fn reseal(store: &Store, master: &MasterKeys) -> Result<(), KeyringError> {
    let current = master.current();
    let stale = store.sealed_secrets_not_under(current.id()).await?;
    if stale.is_empty() {
        return Ok(());
    }
    let mut resealed = Vec::with_capacity(stale.len());
    for old in stale {
        let aad = owner_label(&old.owner);
        let plaintext = open_sealed(master, &old.master_key_id, &aad, &old.sealed)?;
        let sealed = STANDARD.encode(current.seal(&aad, &plaintext)?);
        resealed.push(Resealed { old, sealed });
    }
    let audit =
        Actor::system("master-key").entry("master_key.reseal", stackgate_identity::Target::System);
    let count = store.reseal(&resealed, current.id(), &audit).await?;
    tracing::info!(
        resealed = count,
        master_key_id = current.id(),
        "resealed secrets under the current master key; previous keys are no longer needed for this database"
    );
    Ok(())
}

async fn load(store: &Store, master: &MasterKeys) -> Result<Keys, KeyringError> {
    let mut signers = HashMap::new();
    let mut jwks = Jwks::default();
    for stored in store.signing_keys().await? {
        let alg = SigningAlg::parse(&stored.alg).ok_or_else(|| {
            OidcError::Key(format!(
                "unknown algorithm {} for key {}",
                stored.alg, stored.kid
            ))
        })?;
        let jwk: Jwk =
            serde_json::from_str(&stored.public_jwk).map_err(|e| OidcError::Key(e.to_string()))?;
        if stored.retired_at.is_none() {
            let pkcs8 = open_sealed(
                master,
                &stored.master_key_id,
                &label(&stored.kid),
                &stored.private_key,
            )?;
            signers.insert(alg, Arc::new(SigningKey::from_pkcs8(alg, &pkcs8)?));
        }
        jwks.keys.push(jwk);
    }
    Ok(Keys {
        signers,
        keyset: KeySet::from_jwks(&jwks)?,
        jwks,
    })
}
