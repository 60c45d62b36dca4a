//! The built `stackgate` binary: zero-config start, configuration errors, and the admin CLI
//! working directly on the configured database (SQLite and PostgreSQL).

use reqwest::StatusCode;
use serde_json::Value;
use stackgate_store::testing::TestDatabase;
use stackgate_testkit::{ADMIN_PASSWORD, Backend, binary};
use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    time::Duration,
};

/// A `stackgate` command with a clean environment: only what the test sets.
fn stackgate(dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(binary());
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

fn run(dir: &Path, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = stackgate(dir, env)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Starts `serve`, returning the process, its address and the setup link it printed.
fn serve(dir: &Path, env: &[(&str, &str)]) -> (Child, String, Option<String>) {
    let mut child = stackgate(dir, env)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut link = None;
    loop {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve did not print its address within 30 s");
        };
        if line.trim_start().contains("/setup?token=") {
            link = Some(line.trim().to_owned());
        }
        if let Some(rest) = line.strip_prefix("Stackgate is listening on http://") {
            let addr = rest.split(' ').next().unwrap().to_owned();
            return (child, addr, link);
        }
    }
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    panic!("stackgate did not stop within 10 s of SIGTERM");
}

#[test]
fn a_bad_config_value_exits_with_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(
        dir.path(),
        &[("STACKGATE_DATABASE_URL", "mysql://db/stackgate")],
        &["config", "check"],
        None,
    );
    assert_eq!(output.status.code(), Some(78));
    assert_eq!(
        stderr(&output),
        "error: database_url: unsupported scheme \"mysql\"; use sqlite:// or postgres://\n"
    );
    let output = run(
        dir.path(),
        &[("STACKGATE_LISTEN", "everywhere")],
        &["serve"],
        None,
    );
    assert_eq!(output.status.code(), Some(78));
    assert_eq!(stderr(&output).lines().count(), 1);
    assert!(
        !dir.path().join("stackgate-data").exists(),
        "nothing is created before the config is valid"
    );
    std::fs::write(
        dir.path().join("stackgate.toml"),
        "organisation_name = \"Newsroom\"\nsession_lifetime = \"a week\"\n",
    )
    .unwrap();
    let output = run(
        dir.path(),
        &[],
        &["--config", "stackgate.toml", "config", "check"],
        None,
    );
    assert_eq!(
        stderr(&output),
        "error: session_lifetime: expected a whole number, found string\n"
    );
    std::fs::write(
        dir.path().join("stackgate.toml"),
        "organisation_name = \"Newsroom\"\n",
    )
    .unwrap();
    let output = run(
        dir.path(),
        &[("STACKGATE_CONFIG", "stackgate.toml")],
        &["config", "check"],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("organisation_name = \"Newsroom\""));
}

#[test]
fn zero_config_serve_prints_a_setup_link_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // Everything default except the port, so the test never collides with a real 8080.
    let (mut child, addr, link) = serve(dir.path(), &[("STACKGATE_LISTEN", "127.0.0.1:0")]);
    assert!(
        dir.path().join("stackgate-data/stackgate.db").exists(),
        "SQLite in ./stackgate-data"
    );
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let mode = |path: &str| {
            std::fs::metadata(dir.path().join(path))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        // Run by root, Stackgate gives process apps users of their own, who pass through the
        // data directory (not list it) to their folders.
        let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
        assert_eq!(
            mode("stackgate-data"),
            if root { 0o711 } else { 0o700 },
            "the data directory is its owner's only"
        );
        // What Stackgate creates is its own alone (umask 077).
        assert_eq!(mode("stackgate-data/stackgate.db"), 0o600);
        assert_eq!(mode("stackgate-data/master.key"), 0o600);
    }
    let link = link.expect("a setup link is printed when no admin exists");
    let port = addr.rsplit(':').next().unwrap();
    let link = link.replace("localhost:0", &format!("127.0.0.1:{port}"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let ready = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
        assert_eq!(ready.status(), StatusCode::OK);
        let body: Value = ready.json().await.unwrap();
        assert_eq!(body["database"], "sqlite");
        assert_eq!(reqwest::get(&link).await.unwrap().status(), StatusCode::OK);
    });
    let status = terminate(&mut child);
    assert!(status.success(), "exit status {status}");
    // A second start with no admin yet replaces the link: the old one no longer works.
    let (mut child, addr, second) = serve(dir.path(), &[("STACKGATE_LISTEN", "127.0.0.1:0")]);
    let port = addr.rsplit(':').next().unwrap();
    assert_ne!(second.as_deref(), Some(link.as_str()));
    let old = link.replace(
        &link
            .split("127.0.0.1:")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string(),
        port,
    );
    runtime.block_on(async {
        assert_eq!(reqwest::get(&old).await.unwrap().status(), StatusCode::GONE);
    });
    assert!(terminate(&mut child).success());
}

fn cli_manages_users_groups_and_tokens(backend: Backend) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = runtime.block_on(TestDatabase::create(backend)).unwrap() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data").display().to_string();
    let env = [
        ("STACKGATE_DATA_DIR", data_dir.as_str()),
        ("STACKGATE_DATABASE_URL", db.url.as_str()),
        ("STACKGATE_LISTEN", "127.0.0.1:0"),
    ];
    let sg = |args: &[&str], stdin: Option<&str>| run(dir.path(), &env, args, stdin);

    let migrate = sg(&["migrate"], None);
    assert!(migrate.status.success(), "{}", stderr(&migrate));
    assert!(stdout(&migrate).contains(&format!("migrations applied ({})", backend.name())));

    let input = format!("{ADMIN_PASSWORD}\n");
    let add = sg(
        &[
            "user",
            "add",
            "ana",
            "--email",
            "ana@example.org",
            "--admin",
            "--password-stdin",
        ],
        Some(&input),
    );
    assert!(add.status.success(), "{}", stderr(&add));
    let again = sg(&["user", "add", "Ana", "--no-password"], None);
    assert_eq!(again.status.code(), Some(65));
    assert_eq!(
        stderr(&again),
        "error: username: a user with this username already exists\n"
    );
    let weak = sg(&["user", "add", "bob", "--password-stdin"], Some("short\n"));
    assert_eq!(weak.status.code(), Some(64));
    assert!(stderr(&weak).starts_with("error: password: must be at least 12 characters"));
    let no_tty = sg(&["user", "add", "bob"], None);
    assert_eq!(no_tty.status.code(), Some(64));
    assert!(stderr(&no_tty).contains("--password-stdin"));
    assert!(
        sg(&["user", "add", "bob", "--no-password"], None)
            .status
            .success()
    );

    assert!(
        sg(
            &[
                "group",
                "add",
                "editors",
                "--description",
                "Newsroom editors"
            ],
            None
        )
        .status
        .success()
    );
    assert!(
        sg(&["group", "add-member", "editors", "bob"], None)
            .status
            .success()
    );
    let missing = sg(&["group", "add-member", "nope", "bob"], None);
    assert_eq!(missing.status.code(), Some(64));
    assert_eq!(stderr(&missing), "error: no group named \"nope\"\n");
    let groups = stdout(&sg(&["group", "list"], None));
    assert!(
        groups
            .lines()
            .any(|l| l.starts_with("editors") && l.contains(" 1 ")),
        "{groups}"
    );

    let last = sg(&["user", "disable", "ana"], None);
    assert_eq!(
        last.status.code(),
        Some(65),
        "the last admin cannot be disabled"
    );
    assert!(sg(&["user", "disable", "bob"], None).status.success());
    let list = stdout(&sg(&["user", "list"], None));
    assert!(
        list.lines()
            .any(|l| l.starts_with("bob") && l.contains("disabled")),
        "{list}"
    );
    assert!(sg(&["user", "enable", "bob"], None).status.success());
    assert!(
        sg(
            &["user", "passwd", "bob", "--password-stdin"],
            Some("a brand new passphrase\n")
        )
        .status
        .success()
    );

    let created = sg(&["token", "create", "--user", "ana", "--name", "ci"], None);
    assert!(created.status.success(), "{}", stderr(&created));
    let token = stdout(&created).trim().to_owned();
    assert!(token.starts_with("sgt_"));
    let bob_token = stdout(&sg(
        &["token", "create", "--user", "bob", "--name", "bob"],
        None,
    ))
    .trim()
    .to_owned();

    // The server on the same database sees what the CLI did, and honours the tokens.
    let (mut child, addr, link) = serve(dir.path(), &env);
    assert!(link.is_none(), "an admin exists, so no setup link");
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let users: Value = client
            .get(format!("http://{addr}/api/v1/users"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(users["items"].as_array().unwrap().len(), 2);
        let bob = client
            .get(format!("http://{addr}/api/v1/users"))
            .bearer_auth(&bob_token)
            .send()
            .await
            .unwrap();
        assert_eq!(bob.status(), StatusCode::FORBIDDEN);
        let audit: Value = client
            .get(format!("http://{addr}/api/v1/audit?action=user."))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            audit["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["actor"].as_str().unwrap().starts_with("cli"))
        );
    });
    assert!(terminate(&mut child).success());

    let tokens = stdout(&sg(&["token", "list"], None));
    let id = tokens
        .lines()
        .find(|l| l.contains(" ci "))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(sg(&["token", "revoke", &id], None).status.success());
    assert_eq!(sg(&["token", "revoke", &id], None).status.code(), Some(65));
    drop(db);
}

#[test]
fn cli_manages_users_groups_and_tokens_on_sqlite() {
    cli_manages_users_groups_and_tokens(Backend::Sqlite);
}

#[test]
fn cli_manages_users_groups_and_tokens_on_postgres() {
    cli_manages_users_groups_and_tokens(Backend::Postgres);
}

/// Key-file mode: `master-key rotate` leaves a key beside the current one; the next start reseals
/// everything under it, makes it the key file and keeps the old key for older backups.
#[test]
fn master_key_rotation_in_key_file_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_dir = data.display().to_string();
    let env = [("STACKGATE_DATA_DIR", data_dir.as_str())];
    let sg = |args: &[&str]| run(dir.path(), &env, args, None);
    let kids = |output: Output| {
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };

    let before = kids(sg(&["keys", "list"]));
    let status = kids(sg(&["master-key", "status"]));
    let old_id = status
        .lines()
        .find_map(|l| l.strip_prefix("current master key: "))
        .unwrap()
        .to_owned();
    assert!(
        status.contains("every sealed secret is under the current key"),
        "{status}"
    );
    let old_key = std::fs::read_to_string(data.join("master.key")).unwrap();

    let rotate = sg(&["master-key", "rotate"]);
    assert!(rotate.status.success(), "{}", stderr(&rotate));
    let next_key = std::fs::read_to_string(data.join("master.key.next")).unwrap();
    assert_ne!(next_key, old_key);
    let again = sg(&["master-key", "rotate"]);
    assert_eq!(again.status.code(), Some(64), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("already waiting"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        std::fs::read_to_string(data.join("master.key.next")).unwrap(),
        next_key,
        "a second rotate never replaces the pending key"
    );

    // The next start: same signing keys, now sealed under the new key.
    assert_eq!(kids(sg(&["keys", "list"])), before);
    assert_eq!(
        std::fs::read_to_string(data.join("master.key")).unwrap(),
        next_key
    );
    assert!(!data.join("master.key.next").exists());
    let retired = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("master.key.retired-")
        })
        .expect("the old key is kept for older backups");
    assert_eq!(std::fs::read_to_string(&retired).unwrap(), old_key);
    assert_eq!(
        std::fs::metadata(&retired).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let status = kids(sg(&["master-key", "status"]));
    assert!(!status.contains(&old_id), "{status}");
    assert!(
        status.contains("every sealed secret is under the current key"),
        "{status}"
    );

    // With the key in the configuration, rotation is the admin's: the command says how.
    let configured = run(
        dir.path(),
        &[
            ("STACKGATE_DATA_DIR", data_dir.as_str()),
            ("STACKGATE_MASTER_KEY", next_key.trim()),
        ],
        &["master-key", "rotate"],
        None,
    );
    assert_eq!(configured.status.code(), Some(64));
    assert!(
        stderr(&configured).contains("previous_master_keys"),
        "{}",
        stderr(&configured)
    );
    // A key that opens nothing here stops the start and names the key it needs.
    let stranger = run(dir.path(), &[], &["master-key", "generate"], None);
    let stranger = stdout(&stranger);
    let wrong = run(
        dir.path(),
        &[
            ("STACKGATE_DATA_DIR", data_dir.as_str()),
            ("STACKGATE_MASTER_KEY", stranger.trim()),
        ],
        &["keys", "list"],
        None,
    );
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("previous_master_keys"),
        "{}",
        stderr(&wrong)
    );
}
