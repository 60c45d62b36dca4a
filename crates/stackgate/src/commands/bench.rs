//! `stackgate bench`: what password hashing and the admin API cost on this machine, with the
//! configured parameters. Operators use it to tune argon2; developers to catch regressions.

use crate::{CliError, cli::BenchArgs, config::Config, server};
use http_body_util::{BodyExt, Empty};
use hyper::{Request, StatusCode, body::Bytes};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use stackgate_identity::{
    ADMINS_GROUP_ID, Actor, NewUser, PasswordHasher, SecretToken, SystemClock, Target, Uuid,
};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

pub(crate) async fn run(args: BenchArgs, config: Config) -> Result<(), CliError> {
    let part = |name: &str| args.only.as_deref().is_none_or(|only| only == name);
    if part("hash") {
        hashing(&args, &config).await?;
    }
    if part("list") {
        listing(&args, config.clone()).await?;
    }
    if part("login") {
        super::bench_login::run(&args, config.clone()).await?;
    }
    if part("oidc") {
        super::bench_oidc::run(&args, config).await?;
    }
    Ok(())
}

async fn hashing(args: &BenchArgs, config: &Config) -> Result<(), CliError> {
    let hasher = PasswordHasher::new(config.argon2, config.password)?;
    let rounds = args.hashes.max(1);
    let samples = tokio::task::spawn_blocking(move || {
        let mut samples = Vec::with_capacity(rounds as usize);
        for _ in 0..rounds {
            let started = Instant::now();
            hasher.hash_now(b"correct horse battery staple")?;
            samples.push(started.elapsed());
        }
        Ok::<_, CliError>(samples)
    })
    .await
    .map_err(|e| CliError::Runtime(e.to_string()))??;
    let p = config.argon2;
    report(
        &format!(
            "argon2id hash (m={} KiB, t={}, p={}), one thread",
            p.memory_kib, p.iterations, p.parallelism
        ),
        samples,
        None,
    );
    Ok(())
}

/// A server on a free port over a temporary SQLite file, or over `--database-url`.
pub(crate) async fn bench_server(
    args: &BenchArgs,
    mut config: Config,
    dir: &std::path::Path,
) -> Result<server::Running, CliError> {
    config.data_dir = dir.to_path_buf();
    config.database_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.join("bench.db").display()));
    config.listen = "127.0.0.1:0"
        .parse()
        .map_err(|_| CliError::Runtime("address".into()))?;
    config.log = "warn".into();
    server::start(&config, Arc::new(SystemClock)).await
}

async fn listing(args: &BenchArgs, config: Config) -> Result<(), CliError> {
    let dir = tempfile::tempdir()?;
    let running = bench_server(args, config, dir.path()).await?;
    let store = running.store.clone();

    let existing = store.count_users().await?;
    let wanted = i64::from(args.users);
    let seeding = Instant::now();
    let actor = Actor::system("bench");
    for i in existing..wanted {
        let user = NewUser::parse(
            &format!("user{i:06}"),
            Some(&format!("user{i:06}@bench.example")),
            None,
        )?;
        let entry = actor.entry(
            "user.create",
            Target::User {
                id: user.id,
                name: user.username.clone(),
            },
        );
        store.create_user(&user, None, &[], &entry).await?;
    }
    eprintln!(
        "seeded {} users in {:.1} s ({} database)",
        (wanted - existing).max(0),
        seeding.elapsed().as_secs_f64(),
        store.backend().name()
    );
    let admin = NewUser::parse(
        &format!("bench-admin-{}", Uuid::new_v4().simple()),
        None,
        None,
    )?;
    let entry = actor.entry(
        "user.create",
        Target::User {
            id: admin.id,
            name: admin.username.clone(),
        },
    );
    store
        .create_user(&admin, None, &[ADMINS_GROUP_ID], &entry)
        .await?;
    let token = SecretToken::generate("sgt_")?;
    store
        .create_api_token(Uuid::new_v4(), admin.id, "bench", &token.hash, None, &entry)
        .await?;

    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let url = format!("http://{}/api/v1/users?limit=50", running.local_addr);
    let authorization = format!("Bearer {}", token.plaintext);
    let get = |client: Client<_, Empty<Bytes>>, url: String, authorization: String| async move {
        let request = Request::get(url)
            .header("authorization", authorization)
            .body(Empty::new())
            .map_err(|e| CliError::Runtime(e.to_string()))?;
        let started = Instant::now();
        let response = client
            .request(request)
            .await
            .map_err(|e| CliError::Runtime(e.to_string()))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| CliError::Runtime(e.to_string()))?;
        let elapsed = started.elapsed();
        if status != StatusCode::OK {
            return Err(CliError::Runtime(format!("list answered {status}")));
        }
        Ok::<_, CliError>((elapsed, body.to_bytes().len()))
    };

    // Warm up connections and caches, and check the page is what we think it is.
    let (_, bytes) = get(client.clone(), url.clone(), authorization.clone()).await?;
    for _ in 0..50 {
        get(client.clone(), url.clone(), authorization.clone()).await?;
    }
    let mut samples = Vec::with_capacity(args.requests as usize);
    for _ in 0..args.requests {
        samples.push(
            get(client.clone(), url.clone(), authorization.clone())
                .await?
                .0,
        );
    }
    report(
        &format!(
            "GET /api/v1/users?limit=50, page 1 of {wanted} users ({bytes} bytes), sequential"
        ),
        samples,
        None,
    );

    let concurrency = args.concurrency.max(1);
    let per_client = (args.requests / concurrency).max(1);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, authorization) = (client.clone(), url.clone(), authorization.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(per_client as usize);
            for _ in 0..per_client {
                samples.push(
                    get(client.clone(), url.clone(), authorization.clone())
                        .await?
                        .0,
                );
            }
            Ok::<_, CliError>(samples)
        }));
    }
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.map_err(|e| CliError::Runtime(e.to_string()))??);
    }
    let wall = started.elapsed();
    report(
        &format!("GET /api/v1/users?limit=50, {concurrency} concurrent clients"),
        samples,
        Some(wall),
    );
    running.shutdown().await
}

pub(crate) fn report(what: &str, mut samples: Vec<Duration>, wall: Option<Duration>) {
    samples.sort();
    let n = samples.len().max(1);
    let at = |q: f64| {
        let index = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
        samples.get(index).copied().unwrap_or_default()
    };
    let total: Duration = samples.iter().sum();
    let mean = total / u32::try_from(n).unwrap_or(u32::MAX);
    let rate = match wall {
        Some(wall) => n as f64 / wall.as_secs_f64(),
        None => n as f64 / total.as_secs_f64().max(f64::EPSILON),
    };
    println!("{what}");
    println!(
        "  n={n}  mean={:.3} ms  p50={:.3} ms  p99={:.3} ms  max={:.3} ms  rate={rate:.0}/s",
        ms(mean),
        ms(at(0.50)),
        ms(at(0.99)),
        ms(samples.last().copied().unwrap_or_default()),
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
