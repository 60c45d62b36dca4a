//! Records of the app processes a Stackgate runs, kept beside each app (Linux), so that a
//! Stackgate killed outright (SIGKILL, the OOM killer), which had no chance to stop its apps,
//! can end them at its next start: an app must not run twice, nor outlive its uninstall with its
//! port and its client secret.
//!
//! A record names the boot, the app process and the Stackgate that started it, each process by
//! its number and start time, so that a process given a recorded number later is never touched,
//! and the apps of a Stackgate still running (another one on the same data directory) are left
//! alone. Apps run in process groups of their own, so what an app forked goes with it.

use std::path::Path;
use std::time::Duration;

/// The name of the record in an app's folder.
pub const PID_FILE: &str = "pid";

/// A process, told apart from any later one given the same number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    pid: u32,
    /// Clock ticks after boot.
    started: u64,
}

/// Process `pid` while it runs: a process (not a thread of one) and not a zombie.
pub(crate) fn identity(pid: u32) -> Option<Identity> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let stat = String::from_utf8_lossy(&stat);
    // The command name (field 2) may hold spaces and parentheses: count after its last ')'.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    if fields.next()? == "Z" {
        return None;
    }
    let started = fields.nth(18)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let tgid: u32 = status
        .lines()
        .find_map(|line| line.strip_prefix("Tgid:"))?
        .trim()
        .parse()
        .ok()?;
    (tgid == pid).then_some(Identity { pid, started })
}

fn boot_id() -> Option<String> {
    Some(
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()?
            .trim()
            .to_owned(),
    )
}

fn line(boot: &str, app: Identity, owner: Identity) -> String {
    format!(
        "{boot} {} {} {} {}\n",
        app.pid, app.started, owner.pid, owner.started
    )
}

/// Records app process `pid`, just started by this Stackgate, in `file`. Best effort: an app
/// not recorded is at risk only if this Stackgate is later killed, so it still starts (on a
/// full disk, say), with a warning.
pub(crate) fn record(file: &Path, pid: u32) {
    let (Some(boot), Some(app), Some(owner)) =
        (boot_id(), identity(pid), identity(std::process::id()))
    else {
        return;
    };
    let tmp = file.with_extension("tmp");
    let written =
        std::fs::write(&tmp, line(&boot, app, owner)).and_then(|()| std::fs::rename(&tmp, file));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        tracing::warn!(file = %file.display(), error = %e, "cannot record an app process: if Stackgate is killed, it will not be ended at the next start");
    }
}

/// Forgets the record of an app process that has been stopped.
pub(crate) fn forget(file: &Path) {
    let _ = std::fs::remove_file(file);
}

/// Ends the app processes a killed Stackgate left running, as recorded under `apps_dir`. Called
/// at start, before apps are started again or half-done installs undone.
pub async fn end_orphans(apps_dir: &Path) {
    let (Ok(dirs), Some(boot)) = (std::fs::read_dir(apps_dir), boot_id()) else {
        return;
    };
    for dir in dirs.flatten() {
        let file = dir.path().join(PID_FILE);
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let Some((recorded_boot, app, owner)) = parse(&text) else {
            forget(&file);
            continue;
        };
        if recorded_boot == boot {
            if identity(owner.pid) == Some(owner) {
                // Its Stackgate still runs: the app is not left over.
                continue;
            }
            if identity(app.pid) == Some(app) {
                tracing::warn!(app = %dir.file_name().to_string_lossy(), pid = app.pid, "ending an app process left running by a Stackgate that was killed");
                kill_group(app.pid);
                if !gone(app).await {
                    tracing::error!(app = %dir.file_name().to_string_lossy(), pid = app.pid, "an app process left running by a killed Stackgate does not end");
                    continue;
                }
            }
        }
        forget(&file);
    }
}

fn parse(text: &str) -> Option<(&str, Identity, Identity)> {
    let mut fields = text.split_whitespace();
    let boot = fields.next()?;
    let mut number = || fields.next()?.parse::<u64>().ok();
    let app = Identity {
        pid: u32::try_from(number()?).ok()?,
        started: number()?,
    };
    let owner = Identity {
        pid: u32::try_from(number()?).ok()?,
        started: number()?,
    };
    Some((boot, app, owner))
}

async fn gone(process: Identity) -> bool {
    for _ in 0..250 {
        if identity(process.pid) != Some(process) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Kills the process group `leader` leads (an app and what it forked), and `leader` itself
/// should it have left the group.
#[cfg(unix)]
pub(crate) fn kill_group(leader: u32) {
    use rustix::process::{Pid, Signal, kill_process, kill_process_group};
    if let Some(pid) = i32::try_from(leader).ok().and_then(Pid::from_raw) {
        let _ = kill_process_group(pid, Signal::KILL);
        let _ = kill_process(pid, Signal::KILL);
    }
}

#[cfg(not(unix))]
pub(crate) fn kill_group(_leader: u32) {}

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use super::*;
    use std::process::{Child, Command};

    fn sleeper() -> Child {
        let mut command = Command::new("sleep");
        command.arg("300");
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command.spawn().expect("sleep")
    }

    fn write(apps: &Path, id: &str, text: String) -> std::path::PathBuf {
        let dir = apps.join(id);
        std::fs::create_dir(&dir).expect("app dir");
        let file = dir.join(PID_FILE);
        std::fs::write(&file, text).expect("record");
        file
    }

    #[tokio::test]
    async fn what_a_killed_stackgate_left_running_is_ended_and_nothing_else() {
        let apps = tempfile::tempdir().expect("dir");
        let boot = boot_id().expect("boot id");
        let me = identity(std::process::id()).expect("this process");
        // The Stackgate before this one, killed: this process's number, another start time.
        let killed = Identity {
            started: me.started + 1,
            ..me
        };
        let mut processes: Vec<Child> = (0..3).map(|_| sleeper()).collect();
        let of = |child: &Child| identity(child.id()).expect("running");
        // An app that forked: a shell with a child of its own.
        let mut shell = Command::new("sh");
        shell
            .args(["-c", "sleep 300 & echo $!; wait"])
            .stdout(std::process::Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut shell, 0);
        let mut forked = shell.spawn().expect("sh");
        let mut said = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(forked.stdout.take().expect("stdout")),
            &mut said,
        )
        .expect("its child's number");
        let its_child = identity(said.trim().parse().expect("a number")).expect("running");
        let left = of(&forked);
        processes.push(forked);
        let left_file = write(apps.path(), "left", line(&boot, left, killed));
        // A running process given a recorded number after the recorded one ended.
        let reused = of(&processes[0]);
        let reused_file = write(
            apps.path(),
            "reused",
            line(
                &boot,
                Identity {
                    started: reused.started + 1,
                    ..reused
                },
                killed,
            ),
        );
        // Recorded in an earlier boot.
        let earlier = of(&processes[1]);
        let earlier_file = write(
            apps.path(),
            "earlier",
            line("another-boot", earlier, killed),
        );
        // An app of a Stackgate that still runs.
        let others = of(&processes[2]);
        let others_file = write(apps.path(), "others", line(&boot, others, me));

        end_orphans(apps.path()).await;

        assert_eq!(identity(left.pid), None, "the app left running still runs");
        // Killed with its group, it may take a moment to be scheduled and die.
        assert!(gone(its_child).await, "what the app forked still runs");
        assert!(!left_file.exists());
        for (kept, what) in [
            (reused, "a process that was not the app"),
            (earlier, "a process recorded in another boot"),
            (others, "an app of a Stackgate that still runs"),
        ] {
            assert_eq!(identity(kept.pid), Some(kept), "{what} was ended");
        }
        assert!(
            !reused_file.exists() && !earlier_file.exists(),
            "stale records are left"
        );
        assert!(
            others_file.exists(),
            "a running Stackgate's record was taken"
        );
        for process in &mut processes {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    #[test]
    fn a_thread_is_not_taken_for_a_process() {
        let (said, number) = std::sync::mpsc::channel();
        let (done, end) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
            let tid: u32 = stat
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .expect("its number");
            said.send(tid).expect("sent");
            // Running while it is looked at.
            let _ = end.recv();
        });
        let tid = number.recv().expect("the thread's number");
        assert_ne!(tid, std::process::id());
        assert!(std::fs::metadata(format!("/proc/{tid}/stat")).is_ok());
        assert_eq!(identity(tid), None);
        assert!(identity(std::process::id()).is_some());
        drop(done);
        thread.join().expect("thread");
    }
}
