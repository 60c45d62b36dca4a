//! `stackgate bench --only login`: what a password sign-in costs beyond its argon2id hash.
//!
//! In one run, on the same machine and the same hasher (same parameters, same concurrency
//! bound): raw verifications of a correct password, then full sign-ins over loopback HTTP
//! (`POST /login`: CSRF check, throttle, user lookup, hash verification, session and audit
//! writes, cookie). Stackgate's overhead is the difference in throughput. Then TOTP
//! verifications per second, which need no hashing at all.

use super::bench::{bench_server, report};
use crate::{CliError, cli::BenchArgs, config::Config};
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode, body::Bytes};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use stackgate_identity::{
    Actor, Clock, NewUser, PasswordHasher, SystemClock, Target, new_totp_secret, totp_step,
};
use std::time::Instant;

const PASSWORD: &str = "correct horse battery staple";

pub(crate) async fn run(args: &BenchArgs, config: Config) -> Result<(), CliError> {
    let concurrency = args.concurrency.max(1) as usize;
    let rounds = (args.hashes.max(1) as usize) * 4;
    let hasher = PasswordHasher::new(config.argon2, config.password)?;
    let hash = hasher.hash(PASSWORD.into(), "bench").await?;

    // 1. The floor: verifications alone, as many in flight as sign-ins will have. Measured
    // before and after the sign-ins, so drift in the machine's speed shows and averages out.
    let raw_before = bare_verifications(&hasher, &hash, concurrency, rounds).await?;

    // 2. Full sign-ins over HTTP, one user per client (as real sign-ins are).
    let dir = tempfile::tempdir()?;
    let running = bench_server(args, config, dir.path()).await?;
    let store = running.store.clone();
    let actor = Actor::system("bench");
    let mut users = Vec::new();
    for i in 0..concurrency {
        let user = NewUser::parse(&format!("login{i:03}-{}", uuid_tail()), None, None)?;
        let entry = actor.entry(
            "user.create",
            Target::User {
                id: user.id,
                name: user.username.clone(),
            },
        );
        store.create_user(&user, Some(&hash), &[], &entry).await?;
        users.push(user.username);
    }
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let base = format!("http://{}", running.local_addr);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (worker, username) in users.into_iter().enumerate() {
        let (client, base) = (client.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let (cookie, csrf) = login_form(&client, &base).await?;
            let body = format!(
                "csrf={csrf}&username={username}&password={}&return_to=%2F",
                PASSWORD.replace(' ', "+")
            );
            let mut samples = Vec::new();
            for _ in (worker..rounds).step_by(concurrency) {
                let request = Request::post(format!("{base}/login"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    // No Origin header, as from a non-browser client: the bench server's issuer
                    // is not the address it listens on.
                    .header("cookie", &cookie)
                    .body(Full::new(Bytes::from(body.clone())))
                    .map_err(|e| CliError::Runtime(e.to_string()))?;
                let t = Instant::now();
                let response = client
                    .request(request)
                    .await
                    .map_err(|e| CliError::Runtime(e.to_string()))?;
                let status = response.status();
                response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| CliError::Runtime(e.to_string()))?;
                if status != StatusCode::SEE_OTHER {
                    return Err(CliError::Runtime(format!("sign-in answered {status}")));
                }
                samples.push(t.elapsed());
            }
            Ok::<_, CliError>(samples)
        }));
    }
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.map_err(|e| CliError::Runtime(e.to_string()))??);
    }
    let wall = started.elapsed();
    let login_rate = samples.len() as f64 / wall.as_secs_f64();
    report(
        &format!(
            "POST /login (password, new session), {concurrency} clients, {} database",
            store.backend().name()
        ),
        samples,
        Some(wall),
    );
    running.shutdown().await?;
    let raw_after = bare_verifications(&hasher, &hash, concurrency, rounds).await?;
    let raw_rate = (raw_before + raw_after) / 2.0;
    println!(
        "sign-ins {login_rate:.1}/s against bare verifications {raw_before:.1}/s before and \
         {raw_after:.1}/s after: {:.1}% of their mean, an overhead of {:.1}%",
        100.0 * login_rate / raw_rate,
        100.0 * (1.0 - login_rate / raw_rate)
    );

    // 3. TOTP: one thread, a code checked against the current step and one either side.
    let secret = new_totp_secret()?;
    let now = SystemClock.unix();
    let n = 200_000u32;
    let started = Instant::now();
    let mut matched = 0u32;
    for i in 0..n {
        // A different wrong-or-right code each time, so nothing is hoisted out of the loop.
        let code = format!("{:06}", i % 1_000_000);
        if totp_step(&secret, &code, now).is_some() {
            matched += 1;
        }
    }
    let elapsed = started.elapsed();
    println!(
        "TOTP verification (SHA-1, 6 digits, ±1 step), one thread\n  n={n}  {:.2} µs each  rate={:.0}/s  ({matched} codes happened to match)",
        elapsed.as_secs_f64() * 1e6 / f64::from(n),
        f64::from(n) / elapsed.as_secs_f64().max(f64::EPSILON)
    );
    Ok(())
}

/// Verifies a correct password `rounds` times with `concurrency` in flight; returns the rate.
async fn bare_verifications(
    hasher: &PasswordHasher,
    hash: &stackgate_identity::PasswordHash,
    concurrency: usize,
    rounds: usize,
) -> Result<f64, CliError> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (hasher, hash) = (hasher.clone(), hash.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            for _ in (worker..rounds).step_by(concurrency) {
                let t = Instant::now();
                if !hasher.verify(PASSWORD.into(), Some(hash.clone())).await {
                    return Err(CliError::Runtime("the password did not verify".into()));
                }
                samples.push(t.elapsed());
            }
            Ok(samples)
        }));
    }
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.map_err(|e| CliError::Runtime(e.to_string()))??);
    }
    let wall = started.elapsed();
    let rate = samples.len() as f64 / wall.as_secs_f64();
    report(
        &format!("argon2id verify alone, {concurrency} in flight"),
        samples,
        Some(wall),
    );
    Ok(rate)
}

fn uuid_tail() -> String {
    let id = stackgate_identity::Uuid::new_v4().simple().to_string();
    id[..8].to_owned()
}

/// The CSRF cookie and token of a fresh sign-in page.
async fn login_form(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    base: &str,
) -> Result<(String, String), CliError> {
    let request = Request::get(format!("{base}/login"))
        .body(Full::new(Bytes::new()))
        .map_err(|e| CliError::Runtime(e.to_string()))?;
    let response = client
        .request(request)
        .await
        .map_err(|e| CliError::Runtime(e.to_string()))?;
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("stackgate_csrf="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
        .ok_or_else(|| CliError::Runtime("no CSRF cookie on the sign-in page".into()))?;
    let csrf = cookie
        .split_once('=')
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default();
    Ok((cookie, csrf))
}
