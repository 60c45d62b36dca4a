//! The words on the pages, in the reader's language. Messages are Fluent resources
//! (`locales/<lang>/stackgate.ftl`) compiled into the binary. Each request's language is chosen
//! once, from `Accept-Language`, by [`layer`], and kept in a task-local: templates (through their
//! `t()` function) and handlers (through [`t`] and [`t_args`]) find it without a parameter.
//! English is the default, and every message missing from another locale falls back to it.

use axum::{
    extract::Request,
    http::{HeaderValue, header},
    middleware::Next,
    response::Response,
};
use fluent_bundle::{FluentArgs, FluentResource, FluentValue, concurrent::FluentBundle};
use minijinja::value::{Kwargs, Value};
use std::{
    borrow::Cow,
    sync::{Arc, LazyLock},
};
use unic_langid::LanguageIdentifier;

/// The locales shipped. English comes first: it is the default and the fallback.
const SOURCES: [(&str, &str); 2] = [
    ("en", include_str!("../locales/en/stackgate.ftl")),
    ("de", include_str!("../locales/de/stackgate.ftl")),
];

/// A locale of [`SOURCES`], by position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Lang(usize);

impl Lang {
    pub(crate) const ENGLISH: Lang = Lang(0);

    /// The BCP 47 tag, for `<html lang>`.
    pub(crate) fn tag(self) -> &'static str {
        SOURCES.get(self.0).map_or("en", |(tag, _)| tag)
    }
}

tokio::task_local! {
    static LANG: Lang;
}

/// The language of the request being served; English outside one (tests, background tasks).
pub(crate) fn current() -> Lang {
    LANG.try_with(|lang| *lang).unwrap_or(Lang::ENGLISH)
}

/// Runs `f` as if a request had asked for `lang`.
#[cfg(test)]
pub(crate) fn sync_within<R>(lang: Lang, f: impl FnOnce() -> R) -> R {
    LANG.sync_scope(lang, f)
}

type Bundle = FluentBundle<Arc<FluentResource>>;

struct Locale {
    id: LanguageIdentifier,
    /// For Rust: plain text, escaped later by whatever shows it.
    text: Bundle,
    /// For templates: the message's own words escaped for HTML as they are formatted. Arguments
    /// are escaped before they go in, so the two never mix.
    html: Bundle,
}

static LOCALES: LazyLock<Vec<Locale>> = LazyLock::new(|| {
    SOURCES
        .iter()
        .map(|(tag, source)| {
            let resource = match FluentResource::try_new((*source).to_owned()) {
                Ok(resource) => resource,
                // The entries that did parse still serve; a test keeps this from shipping.
                Err((resource, errors)) => {
                    tracing::error!(tag, ?errors, "a Fluent resource does not parse");
                    resource
                }
            };
            let resource = Arc::new(resource);
            let id: LanguageIdentifier = tag.parse().unwrap_or_default();
            let bundle = |transform: Option<fn(&str) -> Cow<'_, str>>| {
                let mut bundle = Bundle::new_concurrent(vec![id.clone()]);
                // No FSI/PDI marks around arguments: the English pages stay byte for byte what
                // they were, and our scripts are all left to right.
                bundle.set_use_isolating(false);
                bundle.set_transform(transform);
                if let Err(errors) = bundle.add_resource(Arc::clone(&resource)) {
                    tracing::error!(tag, ?errors, "a Fluent resource defines a message twice");
                }
                bundle
            };
            Locale {
                text: bundle(None),
                html: bundle(Some(escape_text)),
                id,
            }
        })
        .collect()
});

/// The language to answer in, from an `Accept-Language` header.
pub(crate) fn negotiate(accept_language: Option<&str>) -> Lang {
    let available: Vec<&LanguageIdentifier> = LOCALES.iter().map(|l| &l.id).collect();
    let Some(default) = available.first().copied() else {
        return Lang::ENGLISH;
    };
    let requested = requested_languages(accept_language.unwrap_or_default());
    let chosen = fluent_langneg::negotiate_languages(
        &requested,
        &available,
        Some(&default),
        fluent_langneg::NegotiationStrategy::Lookup,
    );
    chosen
        .first()
        .and_then(|id| available.iter().position(|a| a == *id))
        .map_or(Lang::ENGLISH, Lang)
}

/// The languages of an `Accept-Language` header, most wanted first. fluent-langneg reads the
/// order only, and browsers send their list in order, but a hand-written header may not.
fn requested_languages(header: &str) -> Vec<LanguageIdentifier> {
    let mut weighted: Vec<(f32, LanguageIdentifier)> = header
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let id = parts.next()?.trim().parse().ok()?;
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (q > 0.0).then_some((q, id))
        })
        .collect();
    weighted.sort_by(|a, b| b.0.total_cmp(&a.0));
    weighted.into_iter().map(|(_, id)| id).collect()
}

/// Serves the request in the language it asked for.
pub(crate) async fn layer(request: Request, next: Next) -> Response {
    let lang = negotiate(
        request
            .headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let mut response = LANG.scope(lang, next.run(request)).await;
    let is_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if is_page {
        // A cache must not hand one reader's language to another.
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("accept-language"));
    }
    response
}

/// A message as plain text, in the request's language.
pub(crate) fn t(id: &str) -> String {
    format(|l| &l.text, id, None)
}

/// A message with arguments: `t_args("admin-user-confirm", &[("name", name.into())])`. A
/// number (`count.into()`) selects plural forms.
pub(crate) fn t_args(id: &str, args: &[(&str, FluentValue<'_>)]) -> String {
    let mut fluent = FluentArgs::with_capacity(args.len());
    for (name, value) in args {
        fluent.set(*name, value.clone());
    }
    format(|l| &l.text, id, Some(&fluent))
}

/// Why a password was refused, in the request's language (the end of "Password …").
pub(crate) fn weakness(weakness: &stackgate_identity::Weakness) -> String {
    use stackgate_identity::Weakness;
    match weakness {
        Weakness::TooShort { min, found } => t_args(
            "password-too-short",
            &[("min", (*min).into()), ("found", (*found).into())],
        ),
        Weakness::TooLong { max_bytes } => {
            t_args("password-too-long", &[("max", (*max_bytes).into())])
        }
        Weakness::SameAsUsername => t("password-same-as-username"),
    }
}

/// The templates' `t(id, name=value, …)`. Its result is HTML: the message's words escaped
/// like any text (`&`, `<`, `>`, `"`), its arguments escaped as `{{ value }}` would be. It is
/// safe in element content and in double-quoted attributes.
pub(crate) fn template_t(id: &str, kwargs: Kwargs) -> Result<Value, minijinja::Error> {
    let mut args = FluentArgs::new();
    for name in kwargs.args() {
        let value: Value = kwargs.get(name)?;
        args.set(name.to_owned(), html_argument(&value));
    }
    kwargs.assert_all_used()?;
    Ok(Value::from_safe_string(format(
        |l| &l.html,
        id,
        Some(&args),
    )))
}

fn html_argument(value: &Value) -> FluentValue<'static> {
    if let Ok(n) = i64::try_from(value.clone()) {
        return n.into();
    }
    if let Ok(n) = f64::try_from(value.clone()) {
        return n.into();
    }
    if value.is_safe() {
        return value.to_string().into();
    }
    minijinja::HtmlEscape(&value.to_string()).to_string().into()
}

/// Escapes a message's own words. Unlike minijinja's escaper it leaves `'` and `/` alone:
/// neither needs it in content or double-quoted attributes, and the English pages stay byte
/// for byte what they were before their words moved here.
fn escape_text(text: &str) -> Cow<'_, str> {
    if !text.contains(['&', '<', '>', '"']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn format(bundle: fn(&Locale) -> &Bundle, id: &str, args: Option<&FluentArgs<'_>>) -> String {
    for lang in [current(), Lang::ENGLISH] {
        let Some(locale) = LOCALES.get(lang.0) else {
            continue;
        };
        let bundle = bundle(locale);
        let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) else {
            continue;
        };
        let mut errors = Vec::new();
        let text = bundle
            .format_pattern(pattern, args, &mut errors)
            .into_owned();
        if !errors.is_empty() {
            tracing::warn!(
                id,
                lang = lang.tag(),
                ?errors,
                "a message formatted with errors"
            );
        }
        return text;
    }
    // A test checks every id the templates use; this is a bug, but the page still renders.
    tracing::error!(id, "no such message");
    id.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn german() -> Lang {
        Lang(SOURCES.iter().position(|(tag, _)| *tag == "de").unwrap())
    }

    /// The message ids a locale defines (terms, `-name`, are not for pages).
    fn ids(source: &str) -> BTreeSet<String> {
        let id = regex::Regex::new(r"(?m)^([a-zA-Z][a-zA-Z0-9_-]*)\s*=").unwrap();
        id.captures_iter(source).map(|c| c[1].to_owned()).collect()
    }

    #[test]
    fn every_resource_parses_and_defines_each_message_once() {
        for (tag, source) in SOURCES {
            let resource = FluentResource::try_new(source.to_owned())
                .unwrap_or_else(|(_, errors)| panic!("{tag}: {errors:?}"));
            let mut bundle = Bundle::new_concurrent(vec![tag.parse().unwrap()]);
            bundle
                .add_resource(Arc::new(resource))
                .unwrap_or_else(|errors| panic!("{tag}: {errors:?}"));
        }
    }

    #[test]
    fn every_message_a_template_uses_is_in_english() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
        let call = regex::Regex::new(r#"\bt\(\s*["']([^"']+)["']"#).unwrap();
        let english = ids(SOURCES[0].1);
        let mut used = 0;
        let mut missing = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let source = std::fs::read_to_string(&path).unwrap();
            for id in call.captures_iter(&source).map(|c| c[1].to_owned()) {
                used += 1;
                if !english.contains(&id) {
                    missing.push(format!("{}: {id}", path.display()));
                }
            }
        }
        assert!(used > 100, "the scan found only {used} calls");
        assert!(missing.is_empty(), "not in locales/en: {missing:#?}");
    }

    #[test]
    fn every_translated_message_exists_in_english() {
        let english = ids(SOURCES[0].1);
        for (tag, source) in &SOURCES[1..] {
            let extra: Vec<_> = ids(source).difference(&english).cloned().collect();
            assert!(
                extra.is_empty(),
                "{tag} has messages English lacks: {extra:?}"
            );
        }
    }

    #[test]
    fn the_reader_language_is_negotiated_with_english_as_default() {
        assert_eq!(negotiate(Some("de-CH, de;q=0.9")), german());
        assert_eq!(negotiate(Some("fr-FR, fr;q=0.9, de;q=0.5")), german());
        assert_eq!(negotiate(Some("en;q=0.2, de;q=0.8")), german());
        assert_eq!(negotiate(Some("en-GB, de;q=0.5")), Lang::ENGLISH);
        assert_eq!(negotiate(Some("fr, ja;q=0.5")), Lang::ENGLISH);
        assert_eq!(negotiate(Some("de;q=0")), Lang::ENGLISH);
        assert_eq!(negotiate(Some("*, ;;, x-!!")), Lang::ENGLISH);
        assert_eq!(negotiate(None), Lang::ENGLISH);
        assert_eq!(german().tag(), "de");
    }

    #[test]
    fn a_message_missing_in_german_falls_back_to_english() {
        let english = ids(SOURCES[0].1);
        let german_ids = ids(SOURCES[german().0].1);
        let untranslated = english.difference(&german_ids).next().unwrap().clone();
        assert_eq!(
            sync_within(german(), || t("nav-people")),
            "Personen",
            "a translated message"
        );
        assert_eq!(
            sync_within(german(), || t(&untranslated)),
            t(&untranslated),
            "{untranslated}"
        );
        assert_ne!(t(&untranslated), untranslated, "English, never the id");
        assert_eq!(t("nav-people"), "People", "English outside a request");
    }

    #[test]
    fn password_weaknesses_read_in_the_readers_language() {
        use stackgate_identity::Weakness;
        let all = [
            Weakness::TooShort { min: 12, found: 5 },
            Weakness::TooLong { max_bytes: 1024 },
            Weakness::SameAsUsername,
        ];
        for refused in &all {
            // The English page says exactly what the API and the CLI say.
            assert_eq!(weakness(refused), refused.to_string());
        }
        let german = sync_within(german(), || weakness(&all[0]));
        assert!(german.contains("mindestens 12 Zeichen"), "{german}");
        assert!(german.contains("dieses hat 5"), "{german}");
    }

    #[test]
    fn plurals_follow_the_language_rules() {
        let wait = |seconds: u64| t_args("login-throttled", &[("seconds", seconds.into())]);
        assert_eq!(
            wait(1),
            "Too many failed attempts. Wait 1 second, then try again."
        );
        assert_eq!(
            wait(2),
            "Too many failed attempts. Wait 2 seconds, then try again."
        );
        assert_eq!(
            sync_within(german(), || wait(1)),
            "Zu viele Fehlversuche. Warten Sie 1 Sekunde und versuchen Sie es dann noch einmal."
        );
        assert_eq!(
            sync_within(german(), || wait(2)),
            "Zu viele Fehlversuche. Warten Sie 2 Sekunden und versuchen Sie es dann noch einmal."
        );
    }

    #[test]
    fn templates_escape_arguments_but_keep_english_words_as_they_were() {
        let mut env = minijinja::Environment::new();
        env.add_function("t", template_t);
        env.add_template(
            "x.html",
            r#"<p title="{{ t('admin-apps-uninstall-label', name=name) }}">{{ t("admin-clients-first-party") }} {{ t("admin-group-members", count=3) }}</p>"#,
        )
        .unwrap();
        let html = env
            .get_template("x.html")
            .unwrap()
            .render(minijinja::context! { name => "<b>\"Bob's\"</b>" })
            .unwrap();
        assert_eq!(
            html,
            "<p title=\"Uninstall &lt;b&gt;&quot;Bob&#x27;s&quot;&lt;&#x2f;b&gt;\">\
             Your organisation's own app: skip the consent page Members (3)</p>"
        );
        assert_eq!(
            escape_text(r#"a & <b> "c" 'd'/"#),
            "a &amp; &lt;b&gt; &quot;c&quot; 'd'/"
        );
    }
}
