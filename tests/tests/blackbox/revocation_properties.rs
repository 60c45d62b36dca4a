//! Property: a session that has ended is never accepted again, by any path. Random sequences of
//! sign-ins, sign-outs (here, everywhere, by an admin) and account disabling and re-enabling run
//! against a real server; after every step each sign-in ever made is checked at the portal, at
//! the edge proxy, and through its OpenID Connect tokens (userinfo and refresh), against a model
//! in which an ended session stays ended — re-enabling an account brings nothing back.

use crate::mfa::signed_in;
use crate::proxy::{PASSWORD, add_route, api, open_signed_in, user};
use crate::sign_off::{App, refresh, register, sign_out_page, tokens, userinfo};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stackgate_testkit::{AdminClient, Backend, EchoUpstream, TestServer};

const USERS: [&str; 2] = ["ana", "ivo"];

#[derive(Debug, Clone, Copy)]
enum Step {
    /// A new device of this user signs in (at the edge, then in the app).
    SignIn(usize),
    /// One of the user's signed-in devices signs out (`/logout`).
    SignOut(usize, prop::sample::Index),
    /// One of the user's devices signs out everywhere (`/logout/everywhere`).
    SignOutEverywhere(usize, prop::sample::Index),
    /// An admin signs the user out (API).
    AdminSignsOut(usize),
    /// An admin disables the account (API) ...
    Disable(usize),
    /// ... and enables it again.
    Enable(usize),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let user = 0..USERS.len();
    let step = prop_oneof![
        4 => user.clone().prop_map(Step::SignIn),
        2 => (user.clone(), any::<prop::sample::Index>()).prop_map(|(u, i)| Step::SignOut(u, i)),
        1 => (user.clone(), any::<prop::sample::Index>()).prop_map(|(u, i)| Step::SignOutEverywhere(u, i)),
        1 => user.clone().prop_map(Step::AdminSignsOut),
        1 => user.clone().prop_map(Step::Disable),
        1 => user.prop_map(Step::Enable),
    ];
    prop::collection::vec(step, 2..9)
}

/// One sign-in: the browser that holds its cookies (login host and app host) and its tokens.
struct Device {
    user: usize,
    browser: reqwest::Client,
    tokens: Value,
    live: bool,
}

struct World<'a> {
    server: &'a TestServer,
    admin: &'a AdminClient,
    app: &'a App,
}

impl World<'_> {
    async fn sign_in(&self, user: usize) -> Device {
        let browser = self.server.edge_browser(&["wiki.localhost"]);
        let page = open_signed_in(
            self.server,
            &browser,
            &self.server.app_url("wiki.localhost", "/"),
            USERS[user],
        )
        .await;
        assert_eq!(page.status(), StatusCode::OK);
        let tokens = tokens(self.server, &browser, self.app, USERS[user], PASSWORD).await;
        assert!(tokens["refresh_token"].is_string(), "{tokens}");
        Device {
            user,
            browser,
            tokens,
            live: true,
        }
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) {
        let (status, answer) = api(self.server, self.admin, method, path, body).await;
        assert_eq!(status, StatusCode::OK, "{path}: {answer}");
    }

    /// What each path says about `device`; `Err` names the first path that disagrees with the
    /// model.
    async fn check(&self, device: &mut Device, index: usize) -> Result<(), TestCaseError> {
        let who = format!("sign-in {index} of {}", USERS[device.user]);
        let portal = signed_in(self.server, &device.browser).await;
        prop_assert_eq!(portal, device.live, "portal, {}", who);
        let edge = device
            .browser
            .get(self.server.app_url("wiki.localhost", "/"))
            .send()
            .await
            .unwrap()
            .status();
        prop_assert_eq!(
            edge == StatusCode::OK,
            device.live,
            "edge answered {} for {}",
            edge,
            who
        );
        let info = userinfo(self.server, &device.tokens).await;
        prop_assert_eq!(
            info == StatusCode::OK,
            device.live,
            "userinfo answered {} for {}",
            info,
            who
        );
        let refreshed = refresh(self.server, self.app, &device.tokens).await;
        let accepted = refreshed["refresh_token"].is_string();
        prop_assert_eq!(accepted, device.live, "refresh for {}: {}", who, refreshed);
        if accepted {
            device.tokens = refreshed;
        }
        Ok(())
    }

    async fn run(&self, steps: Vec<Step>) -> Result<(), TestCaseError> {
        // Every case starts from enabled accounts with no session.
        for name in USERS {
            self.admin(
                Method::PATCH,
                &format!("/users/{name}"),
                Some(json!({ "disabled": false })),
            )
            .await;
            self.admin(Method::POST, &format!("/users/{name}/sign-out"), None)
                .await;
        }
        let mut devices: Vec<Device> = Vec::new();
        let mut disabled = [false; USERS.len()];
        for step in steps {
            let live_of = |devices: &[Device], user: usize| -> Vec<usize> {
                (0..devices.len())
                    .filter(|&i| devices[i].user == user && devices[i].live)
                    .collect()
            };
            match step {
                Step::SignIn(user) if !disabled[user] => devices.push(self.sign_in(user).await),
                Step::SignIn(_) => {}
                Step::SignOut(user, pick) | Step::SignOutEverywhere(user, pick) => {
                    let live = live_of(&devices, user);
                    if live.is_empty() {
                        continue;
                    }
                    let chosen = live[pick.index(live.len())];
                    if matches!(step, Step::SignOut(..)) {
                        let done = sign_out_page(self.server, &devices[chosen].browser).await;
                        prop_assert!(done.status().is_redirection() || done.status().is_success());
                        devices[chosen].live = false;
                    } else {
                        let home =
                            crate::mfa::get(&devices[chosen].browser, self.server.url("/")).await;
                        let done = devices[chosen]
                            .browser
                            .post(self.server.url("/logout/everywhere"))
                            .header("origin", self.server.base_url.as_str())
                            .form(&[("csrf", stackgate_testkit::hidden_field(&home, "csrf"))])
                            .send()
                            .await
                            .unwrap();
                        prop_assert!(done.status().is_redirection() || done.status().is_success());
                        for i in live {
                            devices[i].live = false;
                        }
                    }
                }
                Step::AdminSignsOut(user) | Step::Disable(user) => {
                    if matches!(step, Step::Disable(_)) {
                        self.admin(
                            Method::PATCH,
                            &format!("/users/{}", USERS[user]),
                            Some(json!({ "disabled": true })),
                        )
                        .await;
                        disabled[user] = true;
                    } else {
                        self.admin(
                            Method::POST,
                            &format!("/users/{}/sign-out", USERS[user]),
                            None,
                        )
                        .await;
                    }
                    for i in live_of(&devices, user) {
                        devices[i].live = false;
                    }
                }
                Step::Enable(user) => {
                    self.admin(
                        Method::PATCH,
                        &format!("/users/{}", USERS[user]),
                        Some(json!({ "disabled": false })),
                    )
                    .await;
                    disabled[user] = false;
                }
            }
            for (index, device) in devices.iter_mut().enumerate() {
                self.check(device, index).await?;
            }
        }
        Ok(())
    }
}

async fn ended_sessions_stay_ended(backend: Backend) {
    let Some(server) =
        TestServer::start_with(backend, &[("STACKGATE_PROXY_LISTEN", "127.0.0.1:0")]).await
    else {
        return;
    };
    let admin = server.bootstrap_admin().await;
    let upstream = EchoUpstream::start().await;
    add_route(&server, &admin, json!({ "host": "wiki.localhost", "upstream": upstream.url(), "app": "wiki", "groups": ["staff"] })).await;
    for name in USERS {
        user(&server, &admin, name, &["staff"]).await;
    }
    let app = register(&server, &admin, "notes", json!({})).await;
    let world = World {
        server: &server,
        admin: &admin,
        app: &app,
    };
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 32,
        max_shrink_iters: 30,
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = tokio::task::block_in_place(|| {
        runner.run(&steps(), |steps| handle.block_on(world.run(steps)))
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_sessions_stay_ended_on_sqlite() {
    ended_sessions_stay_ended(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_sessions_stay_ended_on_postgres() {
    ended_sessions_stay_ended(Backend::Postgres).await;
}
