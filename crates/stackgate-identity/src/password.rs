//! Password hashing with argon2id, and the policy a new password must meet.

use crate::IdentityError;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use std::sync::Arc;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Argon2Params {
    /// OWASP's minimum recommendation for argon2id (m=19 MiB, t=2, p=1); nothing weaker is accepted.
    pub const OWASP_MINIMUM: Self = Self {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    /// Explains why parameters are refused, naming the config key.
    pub fn check(&self) -> Result<(), IdentityError> {
        let min = Self::OWASP_MINIMUM;
        if self.memory_kib < min.memory_kib {
            return Err(IdentityError::invalid(
                "argon2_memory_kib",
                format!("must be at least {} (OWASP minimum)", min.memory_kib),
            ));
        }
        if self.memory_kib > 4 * 1024 * 1024 {
            return Err(IdentityError::invalid(
                "argon2_memory_kib",
                "must be at most 4194304 (4 GiB)",
            ));
        }
        if !(min.iterations..=64).contains(&self.iterations) {
            return Err(IdentityError::invalid(
                "argon2_iterations",
                format!("must be between {} and 64", min.iterations),
            ));
        }
        if !(1..=16).contains(&self.parallelism) {
            return Err(IdentityError::invalid(
                "argon2_parallelism",
                "must be between 1 and 16",
            ));
        }
        Ok(())
    }
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self::OWASP_MINIMUM
    }
}

/// What a new password must satisfy. Length is what matters (NIST SP 800-63B); composition
/// rules only push people toward predictable patterns, so there are none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub min_length: usize,
}

impl PasswordPolicy {
    /// Bytes, not characters: bounds the work an attacker can make one hash cost.
    pub const MAX_BYTES: usize = 1024;
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self { min_length: 12 }
    }
}

/// An argon2id hash in PHC string format, as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a hash read back from the store.
    pub fn from_stored(phc: String) -> Self {
        Self(phc)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

/// Why the password policy refused a password. Each variant says what to do; the pages show it
/// in the reader's language, the API and the CLI in English (`Display`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Weakness {
    TooShort { min: usize, found: usize },
    TooLong { max_bytes: usize },
    SameAsUsername,
}

impl std::fmt::Display for Weakness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Weakness::TooShort { min, found } => write!(
                f,
                "must be at least {min} characters long (this one has {found}); a few unrelated words make a strong one"
            ),
            Weakness::TooLong { max_bytes } => write!(f, "must be at most {max_bytes} bytes long"),
            Weakness::SameAsUsername => f.write_str("must not be the same as the username"),
        }
    }
}

/// Hashes and verifies passwords. Cheap to clone; hashing runs on a few threads of its own so
/// that a burst of logins cannot stall the async runtime.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    /// Bounds concurrent hashes: each holds `memory_kib` of memory, and a flood of sign-in
    /// attempts must queue rather than exhaust memory.
    permits: tokio::sync::Semaphore,
    /// The threads hashes run on: always the same few, so the allocator reuses the memory one
    /// hash freed for the next. On tokio's blocking pool every hash could land on another
    /// thread with its own malloc arena, each keeping its last 19 MiB block: a login burst left
    /// the process at 800 MiB instead of under 100.
    workers: HashWorkers,
    params: Params,
    policy: PasswordPolicy,
    /// Verified against when the user does not exist, so that an unknown username costs the
    /// same time as a wrong password.
    dummy: PasswordHash,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    pub fn new(params: Argon2Params, policy: PasswordPolicy) -> Result<Self, IdentityError> {
        params.check()?;
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| IdentityError::Hashing(e.to_string()))?;
        let dummy = hash_with(&params, b"stackgate timing equaliser")?;
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Self {
            inner: Arc::new(Inner {
                permits: tokio::sync::Semaphore::new(threads),
                workers: HashWorkers::start(threads)?,
                params,
                policy,
                dummy,
            }),
        })
    }

    pub fn policy(&self) -> PasswordPolicy {
        self.inner.policy
    }

    /// Checks a new password against the policy, saying what a person can do about it.
    pub fn check_policy(&self, password: &str, username: &str) -> Result<(), IdentityError> {
        let chars = password.chars().count();
        let min = self.inner.policy.min_length;
        if chars < min {
            return Err(IdentityError::WeakPassword(Weakness::TooShort {
                min,
                found: chars,
            }));
        }
        if password.len() > PasswordPolicy::MAX_BYTES {
            return Err(IdentityError::WeakPassword(Weakness::TooLong {
                max_bytes: PasswordPolicy::MAX_BYTES,
            }));
        }
        if !username.is_empty() && password.trim().eq_ignore_ascii_case(username) {
            return Err(IdentityError::WeakPassword(Weakness::SameAsUsername));
        }
        Ok(())
    }

    /// Checks the policy, then hashes on the blocking pool.
    pub async fn hash(
        &self,
        password: String,
        username: &str,
    ) -> Result<PasswordHash, IdentityError> {
        self.check_policy(&password, username)?;
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|e| IdentityError::Hashing(e.to_string()))?;
        let params = self.inner.params.clone();
        self.inner
            .workers
            .run(move || hash_with(&params, password.as_bytes()))
            .await
            .ok_or_else(|| IdentityError::Hashing("the hashing threads stopped".into()))?
    }

    /// Hashes on the calling thread, without the policy check; for benchmarks and bulk tools.
    pub fn hash_now(&self, password: &[u8]) -> Result<PasswordHash, IdentityError> {
        hash_with(&self.inner.params, password)
    }

    /// Verifies a password. With no stored hash (unknown user, or a user without a password)
    /// it still does the full work and answers `false`.
    pub async fn verify(&self, password: String, stored: Option<PasswordHash>) -> bool {
        let Ok(_permit) = self.inner.permits.acquire().await else {
            return false;
        };
        let dummy = self.inner.dummy.clone();
        self.inner
            .workers
            .run(move || {
                let (hash, real) = match &stored {
                    Some(hash) => (hash, true),
                    None => (&dummy, false),
                };
                let ok = Argon2::default()
                    .verify_password(password.as_bytes(), hash.as_str())
                    .is_ok();
                ok && real
            })
            .await
            .unwrap_or(false)
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads taking jobs from one queue; they end when the hasher is dropped.
struct HashWorkers {
    queue: std::sync::mpsc::Sender<Job>,
}

impl HashWorkers {
    fn start(threads: usize) -> Result<Self, IdentityError> {
        let (queue, jobs) = std::sync::mpsc::channel::<Job>();
        let jobs = Arc::new(std::sync::Mutex::new(jobs));
        for i in 0..threads {
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for a job, never while hashing.
                        let job = match jobs.lock() {
                            Ok(jobs) => jobs.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|e| {
                    IdentityError::Hashing(format!("cannot start a hashing thread: {e}"))
                })?;
        }
        Ok(Self { queue })
    }

    /// Runs `work` on a hashing thread; `None` if the threads are gone.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        self.queue.send(job).ok()?;
        result.await.ok()
    }
}

fn hash_with(params: &Params, password: &[u8]) -> Result<PasswordHash, IdentityError> {
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    argon2
        .hash_password(password)
        .map(|h| PasswordHash(h.to_string()))
        .map_err(|e| IdentityError::Hashing(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> PasswordHasher {
        PasswordHasher::new(Argon2Params::default(), PasswordPolicy::default()).unwrap()
    }

    #[tokio::test]
    async fn hashes_with_argon2id_and_verifies() {
        let hasher = hasher();
        let hash = hasher
            .hash("correct horse battery".into(), "ana")
            .await
            .unwrap();
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            hasher
                .verify("correct horse battery".into(), Some(hash.clone()))
                .await
        );
        assert!(
            !hasher
                .verify("correct horse batterz".into(), Some(hash))
                .await
        );
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        let hasher = hasher();
        assert!(
            !hasher
                .verify("stackgate timing equaliser".into(), None)
                .await
        );
    }

    #[test]
    fn weak_passwords_get_a_clear_message() {
        let hasher = hasher();
        let err = hasher.check_policy("short", "ana").unwrap_err().to_string();
        assert!(err.contains("at least 12 characters"), "{err}");
        assert!(
            hasher
                .check_policy("anastasia-bell", "anastasia-bell")
                .is_err()
        );
        assert!(hasher.check_policy(&"x".repeat(2000), "ana").is_err());
    }

    #[test]
    fn parameters_below_owasp_are_refused() {
        let weak = Argon2Params {
            memory_kib: 4096,
            ..Argon2Params::default()
        };
        let err = PasswordHasher::new(weak, PasswordPolicy::default()).unwrap_err();
        assert!(err.to_string().starts_with("argon2_memory_kib:"), "{err}");
    }
}
