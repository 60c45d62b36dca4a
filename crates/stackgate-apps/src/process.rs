//! The process driver: apps as local processes on this machine, for a single server and for
//! development. Each app's settings (with its client secret) live in an env file only its owner
//! can read; the process gets those and nothing of Stackgate's own environment. It runs in its
//! data folder, as a user of its own when Stackgate runs as root (see [`crate::app_users`]).

use crate::{AppsError, app_users::AppUser, pid_file};
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Stdio,
    sync::Mutex,
    time::{Duration, Instant},
};
use tokio::process::{Child, Command};

/// What a process is started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Where its output goes (appended).
    pub log: PathBuf,
    /// Where its process is recorded while it runs (see [`pid_file`]).
    pub pid_file: PathBuf,
    /// Its working directory: its data folder.
    pub dir: PathBuf,
    /// Who it runs as; `None`: Stackgate's own user.
    pub user: Option<AppUser>,
}

/// One supervised process.
#[derive(Debug)]
struct Supervised {
    launch: Launch,
    child: Child,
    started: Instant,
    /// Restarts in a row without a calm minute between them; sets the backoff.
    failures: u32,
    /// When the process ended (or was found unhealthy): the time of the next start.
    next_start: Option<Instant>,
    /// A URL that answers 2xx while the app is well.
    health: Option<String>,
    health_failures: u32,
    last_health: Instant,
    restarts: u32,
}

/// What an admin sees of a supervised process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessState {
    pub pid: Option<u32>,
    pub restarts: u32,
}

/// The processes this Stackgate started, by app id, and what keeps them running: a process
/// that ends or stops answering its health check is started again, after a pause that doubles
/// with each failure in a row (1 s up to a minute).
#[derive(Debug, Default)]
pub struct ProcessDriver {
    children: Mutex<HashMap<String, Supervised>>,
}

/// Variables a process needs to run at all; nothing else of Stackgate's environment is passed on
/// (it holds the master key and the database URL).
const PASSED_THROUGH: &[&str] = &["PATH", "HOME", "LANG", "TZ", "TMPDIR"];
/// A process that ran this long has recovered: its failures are forgotten.
const CALM: Duration = Duration::from_secs(60);
const HEALTH_EVERY: Duration = Duration::from_secs(10);
/// Health checks failed in a row before the process is started again.
const HEALTH_FAILURES: u32 = 3;

fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(6)).min(Duration::from_secs(60))
}

fn spawn(launch: &Launch) -> Result<Child, AppsError> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let log = options.open(&launch.log)?;
    // An app's output may hold what it was told; an older log may have been made 0644.
    #[cfg(unix)]
    log.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let mut command = Command::new(&launch.program);
    command.args(&launch.args).env_clear().envs(
        PASSED_THROUGH
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (*k, v))),
    );
    if let Some(user) = launch.user {
        // Stackgate's home is not the app's to write in. With a uid set, the child also drops
        // every supplementary group before it changes user (std does `setgroups(0)` as root).
        command.uid(user.uid).gid(user.gid).env("HOME", &launch.dir);
    }
    command
        .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(&launch.dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // If Stackgate stops, its apps stop with it rather than run unsupervised. A Stackgate
        // killed outright cannot: the pid file lets the next one end them.
        .kill_on_drop(true);
    // A group of its own: what the app forks is ended with it.
    #[cfg(unix)]
    command.process_group(0);
    let child = command.spawn().map_err(|e| {
        let who = launch
            .user
            .map(|u| {
                format!(
                    " as uid {} (the program and every folder above it must let that user in)",
                    u.uid
                )
            })
            .unwrap_or_default();
        AppsError::Process(format!(
            "cannot start {}{who}: {e}",
            launch.program.display()
        ))
    })?;
    if let Some(pid) = child.id() {
        pid_file::record(&launch.pid_file, pid);
        // std ignores a refused `setgroups` (as in a user namespace that denies it): then the
        // app would keep root's groups. The process has exec'd by now, with what it will keep.
        #[cfg(target_os = "linux")]
        if launch.user.is_some()
            && let Some(groups) = crate::app_users::supplementary_groups(pid)
            && !groups.is_empty()
        {
            let mut child = child;
            kill(&mut child);
            pid_file::forget(&launch.pid_file);
            return Err(AppsError::Process(format!(
                "{} kept Stackgate's groups {groups:?}: this system did not let them be dropped; \
                 set apps_uids = \"off\" or run Stackgate where setgroups is allowed",
                launch.program.display()
            )));
        }
    }
    Ok(child)
}

/// Ends an app's process and what it forked; `wait` reaps it.
fn kill(child: &mut Child) {
    if let Some(pid) = child.id() {
        pid_file::kill_group(pid);
    }
    let _ = child.start_kill();
}

impl ProcessDriver {
    fn children(&self) -> std::sync::MutexGuard<'_, HashMap<String, Supervised>> {
        self.children
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts `id`'s process and supervises it; `health` is checked every 10 s.
    pub fn start(
        &self,
        id: &str,
        launch: &Launch,
        health: Option<String>,
    ) -> Result<(), AppsError> {
        let child = spawn(launch)?;
        let now = Instant::now();
        let supervised = Supervised {
            launch: launch.clone(),
            child,
            started: now,
            failures: 0,
            next_start: None,
            health,
            health_failures: 0,
            last_health: now,
            restarts: 0,
        };
        if let Some(mut old) = self.children().insert(id.to_owned(), supervised) {
            kill(&mut old.child);
        }
        Ok(())
    }

    /// Whether `id`'s process is still running; `Err` with its exit status when it ended.
    pub fn check(&self, id: &str) -> Result<(), String> {
        let mut children = self.children();
        let Some(supervised) = children.get_mut(id) else {
            return Err("not running".into());
        };
        match supervised.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("exited ({status})")),
            Err(e) => Err(e.to_string()),
        }
    }

    pub fn state(&self, id: &str) -> Option<ProcessState> {
        self.children().get(id).map(|s| ProcessState {
            pid: s.child.id(),
            restarts: s.restarts,
        })
    }

    /// Stops `id`'s process (no longer supervised) and waits until it is gone.
    pub async fn stop(&self, id: &str) {
        let supervised = self.children().remove(id);
        if let Some(supervised) = supervised {
            end(supervised).await;
        }
    }

    /// Stops every process (at shutdown).
    pub async fn stop_all(&self) {
        let all: Vec<Supervised> = self.children().drain().map(|(_, s)| s).collect();
        for supervised in all {
            end(supervised).await;
        }
    }

    /// One round of supervision: ended processes are started again when their pause is over,
    /// and health checks are made (through `http`).
    pub async fn supervise(&self, http: &reqwest::Client) {
        let now = Instant::now();
        let mut due = Vec::new();
        {
            let mut children = self.children();
            for (id, s) in children.iter_mut() {
                if let Ok(Some(status)) = s.child.try_wait()
                    && s.next_start.is_none()
                {
                    let pause = backoff(s.failures);
                    tracing::warn!(app = %id, %status, pause = ?pause, "app process ended; starting it again");
                    s.failures += 1;
                    s.next_start = Some(now + pause);
                }
                if s.next_start.is_some_and(|at| now >= at) {
                    match spawn(&s.launch) {
                        Ok(child) => {
                            s.child = child;
                            s.started = now;
                            s.next_start = None;
                            s.health_failures = 0;
                            s.last_health = now;
                            s.restarts += 1;
                        }
                        Err(e) => {
                            tracing::error!(app = %id, error = %e, "app process cannot start");
                            s.failures += 1;
                            s.next_start = Some(now + backoff(s.failures));
                        }
                    }
                }
                if s.next_start.is_none() && now.duration_since(s.started) >= CALM {
                    s.failures = 0;
                }
                if let Some(url) = &s.health
                    && s.next_start.is_none()
                    && now.duration_since(s.last_health) >= HEALTH_EVERY
                {
                    s.last_health = now;
                    due.push((id.clone(), url.clone()));
                }
            }
        }
        for (id, url) in due {
            let healthy = http
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            let mut children = self.children();
            let Some(s) = children.get_mut(&id) else {
                continue;
            };
            if healthy {
                s.health_failures = 0;
                continue;
            }
            s.health_failures += 1;
            if s.health_failures >= HEALTH_FAILURES {
                tracing::warn!(app = %id, %url, "app process stopped answering its health check; starting it again");
                // Ended here, it is started again by the next round, with the backoff.
                kill(&mut s.child);
                s.health_failures = 0;
            }
        }
    }
}

async fn end(mut supervised: Supervised) {
    kill(&mut supervised.child);
    let _ = supervised.child.wait().await;
    pid_file::forget(&supervised.launch.pid_file);
}

/// Finds a program: an absolute path as it is; a name beside the running binary first (where
/// `cargo build` and packages put `stackgate-demo`), then on `PATH`.
pub fn find_program(command: &str, beside: Option<&Path>) -> Result<PathBuf, AppsError> {
    let path = Path::new(command);
    if path.is_absolute() {
        return if path.is_file() {
            Ok(path.to_owned())
        } else {
            Err(AppsError::Process(format!("{command} does not exist")))
        };
    }
    let mut places: Vec<PathBuf> = beside.map(Path::to_owned).into_iter().collect();
    if let Some(paths) = std::env::var_os("PATH") {
        places.extend(std::env::split_paths(&paths));
    }
    places
        .into_iter()
        .map(|dir| dir.join(command))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            AppsError::Process(format!(
                "{command} is neither beside the stackgate binary nor on PATH"
            ))
        })
}

/// Writes the app's settings readable by this user only (0600), replacing any earlier file.
pub fn write_env_file(path: &Path, vars: &[(String, String)]) -> Result<(), AppsError> {
    use std::io::Write;
    let mut text = String::new();
    for (key, value) in vars {
        if value.contains('\n') || value.contains('\0') {
            return Err(AppsError::Refused(format!(
                "the value of {key} has a line break"
            )));
        }
        text.push_str(key);
        text.push('=');
        text.push_str(value);
        text.push('\n');
    }
    let tmp = path.with_extension("env.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Reads an env file written by [`write_env_file`].
pub fn read_env_file(path: &Path) -> Result<Vec<(String, String)>, AppsError> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

/// A free port on 127.0.0.1 for a new app. The app binds it only once it has started, and
/// meanwhile any outgoing connection on this machine may be given a port of the kernel's
/// ephemeral range as its own: under load (as clients reconnect after a restart) that took the
/// port of an app being installed, which then failed to start. So the port is chosen below that
/// range, where only another listener could take it. Elsewhere (not Linux, a range that starts
/// at 10000 or lower, or nothing free after 64 tries) the kernel picks one, as before.
pub fn free_port() -> Result<u16, AppsError> {
    use std::hash::{BuildHasher, Hasher};
    if let Some(ephemeral) = ephemeral_ports_start().filter(|start| *start > FIRST_APP_PORT) {
        let span = u64::from(ephemeral - FIRST_APP_PORT);
        for _ in 0..64 {
            // A random start, so apps installed together do not race for one port.
            let random = std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish();
            let port = FIRST_APP_PORT + u16::try_from(random % span).unwrap_or(0);
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// Apps' ports are chosen from here up to the start of the ephemeral range.
const FIRST_APP_PORT: u16 = 10_000;

/// Where the kernel's range of ports for outgoing connections starts (Linux).
fn ephemeral_ports_start() -> Option<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
impl ProcessDriver {
    /// Waits, 5 s at most, for `id`'s process to end.
    pub(crate) async fn ended(&self, id: &str) {
        for _ in 0..250 {
            if self.check(id).is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_from_a_second_to_a_minute() {
        let pauses: Vec<u64> = (0..9).map(|f| backoff(f).as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn env_file_is_private_and_round_trips() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("app.env");
        let vars = vec![
            ("A".to_owned(), "1".to_owned()),
            ("SECRET".to_owned(), "x=y".to_owned()),
        ];
        write_env_file(&path, &vars).expect("write");
        assert_eq!(read_env_file(&path).expect("read"), vars);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let bad = vec![("A".to_owned(), "two\nlines".to_owned())];
        assert!(write_env_file(&path, &bad).is_err());
        assert_eq!(
            read_env_file(&path).expect("kept"),
            vars,
            "a refused write changes nothing"
        );
    }

    #[tokio::test]
    async fn a_process_gets_only_what_it_is_given() {
        let dir = tempfile::tempdir().expect("dir");
        let out = dir.path().join("out.log");
        // Cargo runs tests with CARGO_MANIFEST_DIR set: it stands for Stackgate's own settings.
        assert!(std::env::var("CARGO_MANIFEST_DIR").is_ok());
        let driver = ProcessDriver::default();
        let launch = Launch {
            program: find_program("sh", None).expect("sh"),
            args: vec![
                "-c".into(),
                "echo \"given=$GIVEN parent=$CARGO_MANIFEST_DIR\"".into(),
            ],
            env: vec![("GIVEN".into(), "yes".into())],
            log: out.clone(),
            pid_file: dir.path().join(pid_file::PID_FILE),
            dir: dir.path().to_owned(),
            user: None,
        };
        driver.start("t", &launch, None).expect("start");
        driver.ended("t").await;
        driver.stop("t").await;
        let text = std::fs::read_to_string(out).expect("log");
        assert_eq!(text.trim(), "given=yes parent=");
        assert!(
            !dir.path().join(pid_file::PID_FILE).exists(),
            "a stopped process's pid file is left"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn apps_ports_are_free_and_outside_the_range_outgoing_connections_take() {
        let ephemeral = ephemeral_ports_start().expect("the kernel's range");
        if ephemeral <= FIRST_APP_PORT {
            return; // no room below the range on this host: the kernel picks
        }
        for _ in 0..20 {
            let port = free_port().expect("a port");
            assert!(
                (FIRST_APP_PORT..ephemeral).contains(&port),
                "{port} is in the ephemeral range from {ephemeral}"
            );
            std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
        }
    }
}
