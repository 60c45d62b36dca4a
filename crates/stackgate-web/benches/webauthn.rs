//! WebAuthn assertion verifications per second, with webauthn-rs configured as Stackgate
//! configures it. Run: `cargo bench -p stackgate-web --bench webauthn`.
//!
//! A software authenticator (webauthn-authenticator-rs's SoftPasskey: P-256, as platform
//! authenticators use) registers one passkey and signs one assertion; the server side then
//! verifies that assertion over and over. Each verification parses the client data and
//! authenticator data, checks origin, RP id hash, flags and counter, and verifies the ES256
//! signature: the work of one passkey sign-in or security-key second step.

use std::time::Instant;
use url::Url;
use webauthn_authenticator_rs::{WebauthnAuthenticator, softpasskey::SoftPasskey};
use webauthn_rs::WebauthnBuilder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let origin = Url::parse("https://id.example.org")?;
    let webauthn = WebauthnBuilder::new("id.example.org", &origin)?
        .rp_name("Stackgate bench")
        .build()?;
    let mut authenticator = WebauthnAuthenticator::new(SoftPasskey::new(true));
    let user = uuid::Uuid::new_v4();
    let (options, registration) =
        webauthn.start_passkey_registration(user, "bench", "Bench", None)?;
    let credential = authenticator.do_registration(origin.clone(), options)?;
    let passkey = webauthn.finish_passkey_registration(&credential, &registration)?;

    let (options, authentication) = webauthn.start_passkey_authentication(&[passkey])?;
    let assertion = authenticator.do_authentication(origin, options)?;
    // Warm up, and prove the assertion verifies before timing it.
    webauthn.finish_passkey_authentication(&assertion, &authentication)?;

    let n = 20_000u32;
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(webauthn.finish_passkey_authentication(&assertion, &authentication)?);
    }
    let elapsed = started.elapsed();
    println!(
        "WebAuthn assertion verification (ES256, webauthn-rs), one thread\n  n={n}  {:.1} µs each  rate={:.0}/s",
        elapsed.as_secs_f64() * 1e6 / f64::from(n),
        f64::from(n) / elapsed.as_secs_f64()
    );
    Ok(())
}
