//! The pages in the reader's language: chosen from `Accept-Language`, English by default,
//! English for whatever a translation lacks.

use reqwest::StatusCode;
use stackgate_testkit::{Backend, TestServer};

async fn page(
    server: &TestServer,
    path: &str,
    language: Option<&str>,
) -> (StatusCode, String, String) {
    let mut request = reqwest::Client::new().get(server.url(path));
    if let Some(language) = language {
        request = request.header("accept-language", language);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let vary = response
        .headers()
        .get("vary")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, vary, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_speak_the_readers_language_and_fall_back_to_english() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();

    let (status, vary, html) = page(&server, "/nowhere", Some("de-CH, de;q=0.9, en;q=0.5")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(vary.to_lowercase().contains("accept-language"), "{vary}");
    assert!(html.contains(r#"<html lang="de">"#), "{html}");
    assert!(html.contains("<h1>Seite nicht gefunden</h1>"), "{html}");
    assert!(html.contains("Geschützt durch Stackgate"), "{html}");

    // A message a handler builds; and one German lacks, shown in English under a German title.
    let (status, _, html) = page(&server, "/account/link?token=spent", Some("de")).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(
        html.contains("Dieser Link ist ungültig, abgelaufen oder schon benutzt."),
        "{html}"
    );
    let (status, _, html) = page(&server, "/setup?token=spent", Some("de")).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(
        html.contains("<h1>Dieser Link gilt nicht mehr</h1>"),
        "{html}"
    );
    assert!(
        html.contains("This setup link is invalid, expired or already used."),
        "{html}"
    );
    let (_, _, html) = page(&server, "/account/link?token=spent", Some("fr, ja;q=0.8")).await;
    assert!(html.contains(r#"<html lang="en">"#), "{html}");
    assert!(
        html.contains("This link is invalid, expired or already used."),
        "{html}"
    );

    // The sign-in page, username first, in German.
    let (status, _, html) = page(&server, "/login", Some("de")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<h1>Anmelden</h1>"), "{html}");
    assert!(html.contains(">Benutzername</label>"), "{html}");
    assert!(html.contains(">Weiter</button>"), "{html}");
    let (_, _, html) = page(&server, "/login?login_hint=ana", Some("de")).await;
    assert!(
        html.contains("Anmeldung als <strong id=\"signing-in-as\">ana</strong>"),
        "{html}"
    );
    assert!(html.contains(">Nicht Sie?</a>"), "{html}");

    for language in [None, Some("fr-FR"), Some("*")] {
        let (_, _, html) = page(&server, "/nowhere", language).await;
        assert!(html.contains(r#"<html lang="en">"#), "{language:?}: {html}");
        assert!(
            html.contains("<h1>Page not found</h1>"),
            "{language:?}: {html}"
        );
        assert!(
            html.contains("Secured by Stackgate"),
            "{language:?}: {html}"
        );
    }
}
