//! The evidence that no secret reaches a log line, gathered over a whole test run.
//!
//! With `STACKGATE_TEST_LOG_DIR` set (`tests/run` sets it), each test process sends the logs of
//! every server it starts, at their most detailed, to `logs-PID.log` in that folder, and the
//! helpers that handle a secret (passwords typed, tokens and client secrets received, links
//! emailed) list it in `secrets-PID.txt`. `tests/scan-logs` then looks for every listed secret in
//! every log, once the run is over. Without the variable, nothing is written.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::PathBuf,
    sync::{Mutex, OnceLock},
};

/// Shorter values (six-digit TOTP codes, say) would match ports and timestamps by chance.
const SHORTEST: usize = 12;

struct Capture {
    secrets: Mutex<File>,
}

static CAPTURE: OnceLock<Option<Capture>> = OnceLock::new();

fn capture() -> Option<&'static Capture> {
    CAPTURE.get_or_init(start).as_ref()
}

fn start() -> Option<Capture> {
    let dir = PathBuf::from(std::env::var_os("STACKGATE_TEST_LOG_DIR")?);
    std::fs::create_dir_all(&dir).expect("log folder");
    let pid = std::process::id();
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("logs-{pid}.log")))
        .expect("log file");
    let secrets = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("secrets-{pid}.txt")))
        .expect("secrets file");
    // Everything Stackgate's crates say, down to trace; the libraries under them at debug
    // (request handling, SQL statements, TLS), where a careless field would show up too. The
    // tests' own HTTP clients are left out: their cookie jars are not Stackgate's logs.
    let filter = tracing_subscriber::EnvFilter::new(
        "debug,stackgate=trace,stackgate_web=trace,stackgate_store=trace,stackgate_oidc=trace,\
         stackgate_identity=trace,stackgate_proxy=trace,stackgate_apps=trace,stackgate_mail=trace,\
         reqwest=off,cookie_store=off,openidconnect=off,stackgate_testkit=off",
    );
    // Another subscriber may already be set (a test running the CLI in-process): its logs then
    // go there, this process's file stays empty, and `tests/scan-logs` refuses an empty file.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(Mutex::new(log))
        .try_init();
    Some(Capture {
        secrets: Mutex::new(secrets),
    })
}

/// Starts capturing this process's logs, if the run asks for it. Called by every test server.
pub fn capture_logs() {
    let _ = capture();
}

/// Lists a secret the tests used, for the scan at the end of the run.
pub fn used_secret(value: &str) {
    let value = value.trim();
    if value.len() < SHORTEST || value.contains('\n') {
        return;
    }
    if let Some(capture) = capture() {
        let mut file = capture.secrets.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(file, "{value}");
    }
}

/// Lists every secret in an API answer: the values of fields that name one.
pub fn used_secrets_in(json: &serde_json::Value) {
    const NAMES: [&str; 9] = [
        "secret",
        "client_secret",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "password",
        "url",
        "recovery_codes",
    ];
    match json {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                if NAMES.contains(&key.as_str()) {
                    match value {
                        serde_json::Value::String(s) => secret_or_link(key, s),
                        serde_json::Value::Array(items) => items
                            .iter()
                            .filter_map(|v| v.as_str())
                            .for_each(|s| secret_or_link(key, s)),
                        _ => used_secrets_in(value),
                    }
                } else {
                    used_secrets_in(value);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(used_secrets_in),
        _ => {}
    }
}

/// A `url` is a secret only for the part after `token=` (invitation and reset links).
fn secret_or_link(key: &str, value: &str) {
    if key == "url" {
        if let Some((_, token)) = value.split_once("token=") {
            used_secret(token);
        }
    } else {
        used_secret(value);
    }
}
