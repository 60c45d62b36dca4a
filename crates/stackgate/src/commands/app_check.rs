//! `stackgate app check ID`: a functional test of an installed app in headless Chromium, for an
//! app's own CI. It opens the app, signs in through Stackgate as a real person would, sees the
//! app signed in, signs out in Stackgate and sees the app signed out; each step passes or fails
//! with what the browser saw. Chromium is driven over the DevTools protocol directly.

use crate::CliError;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    net::TcpStream,
    process::{Child, Command},
};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async, tungstenite::Message};

/// How long one step may take.
const STEP: Duration = Duration::from_secs(20);

/// A headless Chromium with one page, driven over the DevTools protocol.
struct Browser {
    _child: Child,
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

/// Where Debian and most distributions put Chromium.
pub(crate) fn default_chromium() -> PathBuf {
    [
        "/usr/bin/chromium",
        "/usr/lib/chromium/chromium",
        "/usr/bin/chromium-browser",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .unwrap_or_else(|| PathBuf::from("chromium"))
}

impl Browser {
    async fn launch(chromium: &Path) -> Result<Self, String> {
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut child = Command::new(chromium)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                // Apps' hosts under .localhost resolve to this machine, as in browsers.
                "--host-resolver-rules=MAP localhost 127.0.0.1, MAP *.localhost 127.0.0.1",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", chromium.display()))?;
        let stderr = child.stderr.take().ok_or("no stderr from Chromium")?;
        let mut lines = BufReader::new(stderr).lines();
        let endpoint = tokio::time::timeout(STEP, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return Some(url.trim().to_owned());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or("Chromium did not open its DevTools endpoint")?;
        // The page opened at start is the one to drive.
        let http = endpoint
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .ok_or("unexpected DevTools endpoint")?
            .to_owned();
        let targets: Value = reqwest::get(format!("http://{http}/json/list"))
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let page = targets
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .ok_or("Chromium has no page")?
            .to_owned();
        let (socket, _) = connect_async(page).await.map_err(|e| e.to_string())?;
        let mut browser = Self {
            _child: child,
            socket,
            next_id: 0,
            _profile: profile,
        };
        browser.call("Page.enable", json!({})).await?;
        Ok(browser)
    }

    async fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({ "id": id, "method": method, "params": params }).to_string();
        self.socket
            .send(Message::text(message))
            .await
            .map_err(|e| e.to_string())?;
        let answer = tokio::time::timeout(STEP, async {
            while let Some(message) = self.socket.next().await {
                let Ok(Message::Text(text)) = message else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                // Events carry no id; answers to other calls are not waited for.
                if value["id"].as_u64() == Some(id) {
                    return Some(value);
                }
            }
            None
        })
        .await
        .map_err(|_| format!("{method}: no answer from Chromium"))?
        .ok_or("Chromium closed the connection")?;
        if let Some(error) = answer.get("error") {
            return Err(format!("{method}: {}", error["message"]));
        }
        Ok(answer["result"].clone())
    }

    async fn eval(&mut self, expression: &str) -> Result<Value, String> {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await?;
        if let Some(details) = result.get("exceptionDetails") {
            return Err(details["text"]
                .as_str()
                .unwrap_or("script error")
                .to_owned());
        }
        Ok(result["result"]["value"].clone())
    }

    async fn navigate(&mut self, url: &str) -> Result<(), String> {
        let result = self.call("Page.navigate", json!({ "url": url })).await?;
        match result["errorText"].as_str() {
            Some(error) if !error.is_empty() => Err(format!("{url}: {error}")),
            _ => Ok(()),
        }
    }

    /// Waits until `condition` (JavaScript) is true on a loaded page; returns what the page
    /// showed when it gave up otherwise.
    async fn wait_for(&mut self, condition: &str) -> Result<(), String> {
        self.wait_within(condition, STEP).await
    }

    async fn wait_within(&mut self, condition: &str, limit: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + limit;
        let check = format!("document.readyState === 'complete' && ({condition})");
        loop {
            // During a navigation the page's context is replaced; that is "not yet".
            if self.eval(&check).await.ok() == Some(Value::Bool(true)) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let seen = self
                    .eval("location.href + ': ' + (document.body ? document.body.innerText.slice(0, 300) : '')")
                    .await
                    .unwrap_or_default();
                return Err(format!("the page did not get there; it shows {seen}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// What the check needs to know.
pub(crate) struct Target {
    pub base_url: String,
    pub issuer: String,
    /// `oidc` or `proxy`.
    pub sign_in: String,
    pub sign_in_path: Option<String>,
    pub signed_in_text: Option<String>,
    pub signed_out_text: Option<String>,
    pub username: String,
    pub password: String,
}

/// A JavaScript string literal.
fn js(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

/// Runs the check; prints each step; fails when any step did.
pub(crate) async fn run(target: Target, chromium: &Path) -> Result<(), CliError> {
    let mut browser = Browser::launch(chromium)
        .await
        .map_err(|e| CliError::Runtime(format!("Chromium: {e}")))?;
    let steps = [
        "open the app",
        "reach Stackgate's sign-in",
        "sign in",
        "see the app signed in",
        "sign out in Stackgate",
        "see the app signed out",
    ];
    let mut passed = 0;
    let mut failed = 0;
    let mut skip = false;
    for (index, name) in steps.iter().enumerate() {
        if skip {
            println!("SKIP  {name}");
            continue;
        }
        match step(&mut browser, &target, index).await {
            Ok(detail) => {
                println!("PASS  {name}: {detail}");
                passed += 1;
            }
            Err(why) => {
                println!("FAIL  {name}: {why}");
                failed += 1;
                // Later steps build on this one.
                skip = true;
            }
        }
    }
    if failed == 0 {
        println!("all {} steps passed", steps.len());
        Ok(())
    } else {
        Err(CliError::Runtime(format!(
            "the check failed: {passed} passed, {failed} failed, {} skipped",
            steps.len() - passed - failed
        )))
    }
}

async fn step(browser: &mut Browser, t: &Target, index: usize) -> Result<String, String> {
    let app = t.base_url.trim_end_matches('/');
    let on_issuer = format!("location.href.startsWith({})", js(&t.issuer));
    let on_app = format!("location.href.startsWith({})", js(app));
    match index {
        0 => {
            browser.navigate(&format!("{app}/")).await?;
            browser.wait_for("true").await?;
            Ok(format!("{app}/ answered"))
        }
        1 => {
            if let Some(path) = &t.sign_in_path {
                browser.navigate(&format!("{app}{path}")).await?;
            }
            browser
                .wait_for(&format!(
                    "{on_issuer} && document.querySelector('#username, #password') !== null"
                ))
                .await?;
            Ok("the sign-in page of Stackgate".into())
        }
        2 => {
            // Username first (unless the app's login_hint skipped that step), then the password.
            let identify = format!(
                "(() => {{ const step = document.querySelector('form[action=\"/login/identify\"]'); \
                 if (step) {{ document.querySelector('#username').value = {}; step.submit(); }} \
                 return true; }})()",
                js(&t.username)
            );
            browser.eval(&identify).await?;
            browser
                .wait_for(&format!(
                    "{on_issuer} && document.querySelector('#password') !== null"
                ))
                .await
                .map_err(|e| format!("no password field for {} ({e})", t.username))?;
            let fill = format!(
                "document.querySelector('#password').value = {}; \
                 document.querySelector('form[action=\"/login\"]').submit(); true",
                js(&t.password)
            );
            browser.eval(&fill).await?;
            // Back at the app, or Stackgate says why not.
            let refused = format!("{on_issuer} && document.querySelector('#form-error') !== null");
            browser
                .wait_for(&format!("({on_app}) || ({refused})"))
                .await
                .map_err(|e| format!("not sent back to the app ({e})"))?;
            if browser.eval(&on_app).await? != Value::Bool(true) {
                let why = browser
                    .eval("document.querySelector('#form-error').innerText")
                    .await?;
                return Err(format!(
                    "not sent back to the app: Stackgate says {}",
                    why.as_str().unwrap_or_default()
                ));
            }
            Ok(format!("back at {app}"))
        }
        3 => {
            let text = t
                .signed_in_text
                .clone()
                .unwrap_or_else(|| t.username.clone());
            browser
                .wait_for(&format!("document.body.innerText.includes({})", js(&text)))
                .await?;
            Ok(format!("the page says {text:?}"))
        }
        4 => {
            browser.navigate(&format!("{}/", t.issuer)).await?;
            browser
                .wait_for("document.querySelector('form[action=\"/logout\"]') !== null")
                .await?;
            browser
                .eval("document.querySelector('form[action=\"/logout\"]').submit(); true")
                .await?;
            browser.wait_for("location.pathname !== '/'").await?;
            Ok("signed out".into())
        }
        _ => {
            // The app hears of it on its back channel; give it a moment.
            let signed_out = match (&t.signed_out_text, t.sign_in.as_str()) {
                (Some(text), _) => {
                    format!("{on_app} && document.body.innerText.includes({})", js(text))
                }
                (None, "proxy") => on_issuer.clone(),
                (None, _) => format!(
                    "{on_issuer} || !document.body.innerText.includes({})",
                    js(t.signed_in_text.as_deref().unwrap_or(&t.username))
                ),
            };
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                browser.navigate(&format!("{app}/")).await?;
                match browser
                    .wait_within(&signed_out, Duration::from_secs(2))
                    .await
                {
                    Ok(()) => return Ok("the app no longer has the session".into()),
                    Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        }
    }
}
