//! What a manifest must satisfy beyond its shape: names, paths, and settings that fit together.

use crate::manifest::{Deploy, Manifest, OidcNeeds, Problem, ProcessDeploy, SettingNames, at};
use serde_saphyr::Spanned;

/// Claims the provider sets itself; an app's role claim must not shadow one.
const PROTOCOL_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "nonce",
    "sid",
    "acr",
    "amr",
    "auth_time",
    "azp",
    "jti",
    "at_hash",
    "c_hash",
    "email",
    "email_verified",
    "name",
    "preferred_username",
];

/// Placeholders a process's environment may use.
const PLACEHOLDERS: &[&str] = &["issuer", "client_id", "base_url", "port"];

pub(crate) fn check(m: &Manifest) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut push = |p: Problem| problems.push(p);

    if !is_app_id(&m.id.value) {
        push(at(
            &m.id,
            "id",
            "must be 1 to 40 lower-case letters, digits or '-', starting with a letter or digit",
        ));
    }
    if !is_version(&m.version.value) {
        push(at(
            &m.version,
            "version",
            "must be MAJOR.MINOR.PATCH, e.g. 1.4.2",
        ));
    }
    for (field, value, max) in [
        ("name", &m.name, 80),
        ("category", &m.category, 40),
        ("description", &m.description, 1000),
    ] {
        if value.trim().is_empty()
            || value.chars().count() > max
            || value.chars().any(char::is_control) && field != "description"
        {
            push(Problem {
                field: field.into(),
                message: format!("must be 1 to {max} characters of text"),
                line: m.id.referenced.line(),
                column: 0,
            });
        }
    }
    if let Some(home) = &m.homepage
        && url::Url::parse(&home.value).map_or(true, |u| u.scheme() != "https")
    {
        push(at(home, "homepage", "must be an https URL"));
    }

    match &m.deploy {
        Deploy::Process(p) => check_process(p, m.oidc.as_ref(), &mut push),
        Deploy::Kubernetes(k) => {
            if k.workloads.is_empty() == k.helm.is_none() {
                push(Problem {
                    field: "deploy.kubernetes".into(),
                    message: "needs either workloads or a helm chart (one of the two)".into(),
                    line: 0,
                    column: 0,
                });
            }
            for (i, w) in k.workloads.iter().enumerate() {
                check_path(
                    &w.health_path,
                    &format!("deploy.kubernetes.workloads[{i}].health_path"),
                    &mut push,
                );
                if !is_dns_label(&w.name) {
                    push(at(
                        &w.health_path,
                        format!("deploy.kubernetes.workloads[{i}].name"),
                        "must be a DNS label (a-z, 0-9, '-')",
                    ));
                }
                for key in w.env.keys() {
                    if !is_env_name(key) {
                        push(at(
                            &w.health_path,
                            format!("deploy.kubernetes.workloads[{i}].env.{key}"),
                            "is not an environment variable name",
                        ));
                    }
                }
            }
            if let Some(oidc) = &m.oidc {
                let wanted = if k.helm.is_some() {
                    ("helm_values", oidc.deliver.helm_values.is_some())
                } else {
                    (
                        "env or secret_keys",
                        oidc.deliver.env.is_some() || oidc.deliver.secret_keys.is_some(),
                    )
                };
                if !wanted.1 {
                    push(first_path_problem(
                        oidc,
                        "oidc.deliver",
                        format!("a kubernetes app needs `{}`", wanted.0),
                    ));
                }
            }
        }
    }

    match &m.oidc {
        Some(oidc) => check_oidc(oidc, &mut push),
        None if !m.proxy.protect => push(Problem {
            field: "proxy.protect".into(),
            message: "an app that does not sign people in through OIDC must be protected by the edge proxy".into(),
            line: 0,
            column: 0,
        }),
        None => {}
    }
    if let Some(path) = m.check.as_ref().and_then(|c| c.sign_in_path.as_ref()) {
        check_path(path, "check.sign_in_path", &mut push);
    }
    if let Some(check) = &m.check
        && check.sign_in_path.is_none()
        && m.oidc.is_some()
    {
        push(Problem {
            field: "check.sign_in_path".into(),
            message: "an OIDC app needs the path where signing in starts".into(),
            line: 0,
            column: 0,
        });
    }
    for (i, path) in m.proxy.public_paths.iter().enumerate() {
        check_path(path, &format!("proxy.public_paths[{i}]"), &mut push);
    }

    for (i, group) in m.access.default_groups.iter().enumerate() {
        if stackgate_identity::group_name(&group.value).is_err() {
            push(at(
                group,
                format!("access.default_groups[{i}]"),
                "is not a group name (a-z, 0-9, '.', '_', '-')",
            ));
        }
    }
    let roles = &m.access.roles;
    for (field, value) in [("user", &roles.user), ("admin", &roles.admin)] {
        if value.value.trim().is_empty() || value.value.len() > 64 {
            push(at(
                value,
                format!("access.roles.{field}"),
                "must be 1 to 64 characters",
            ));
        }
    }
    if roles.user.value == roles.admin.value {
        push(at(
            &roles.admin,
            "access.roles.admin",
            "must differ from the user role's value",
        ));
    }
    if roles.claim.is_none() && roles.header.is_none() {
        push(at(
            &roles.user,
            "access.roles",
            "needs a `claim` or a `header` that carries the role",
        ));
    }
    if let Some(claim) = &roles.claim {
        if PROTOCOL_CLAIMS.contains(&claim.value.as_str()) {
            push(at(
                claim,
                "access.roles.claim",
                format!("`{}` is a claim Stackgate sets itself", claim.value),
            ));
        }
        if m.oidc.is_none() {
            push(at(
                claim,
                "access.roles.claim",
                "only an OIDC app reads claims; use `header`",
            ));
        }
    }
    if let Some(header) = &roles.header
        && !is_header_name(&header.value)
    {
        push(at(
            header,
            "access.roles.header",
            "is not an HTTP header name",
        ));
    }
    problems
}

fn check_process(p: &ProcessDeploy, oidc: Option<&OidcNeeds>, push: &mut impl FnMut(Problem)) {
    let command = &p.command.value;
    let absolute = std::path::Path::new(command).is_absolute();
    if command.is_empty() || command.contains('\0') || (!absolute && command.contains('/')) {
        push(at(
            &p.command,
            "deploy.process.command",
            "must be a program name or an absolute path",
        ));
    }
    check_path(&p.health_path, "deploy.process.health_path", push);
    if !is_env_name(&p.port_env) {
        push(at(
            &p.command,
            "deploy.process.port_env",
            "is not an environment variable name",
        ));
    }
    if !(1..=3600).contains(&p.ready_timeout_seconds) {
        push(at(
            &p.command,
            "deploy.process.ready_timeout_seconds",
            "must be 1 to 3600",
        ));
    }
    let delivered: Vec<&str> = oidc
        .and_then(|o| o.deliver.env.as_ref())
        .map(|n| {
            vec![
                n.issuer.as_str(),
                n.client_id.as_str(),
                n.client_secret.as_str(),
            ]
        })
        .unwrap_or_default();
    for (key, value) in &p.env {
        let field = format!("deploy.process.env.{key}");
        if !is_env_name(key) {
            push(at(value, &field, "is not an environment variable name"));
        }
        if key == &p.port_env || delivered.contains(&key.as_str()) {
            push(at(value, &field, "is set by Stackgate; remove it here"));
        }
        for name in placeholders(&value.value) {
            if !PLACEHOLDERS.contains(&name) {
                push(at(
                    value,
                    &field,
                    format!(
                        "`${{{name}}}` is not one of ${{issuer}}, ${{client_id}}, ${{base_url}}, ${{port}}"
                    ),
                ));
            }
        }
    }
    if let Some(oidc) = oidc
        && oidc.deliver.env.is_none()
    {
        push(first_path_problem(
            oidc,
            "oidc.deliver.env",
            "a process app reads its settings from the environment: name the variables",
        ));
    }
}

fn check_oidc(oidc: &OidcNeeds, push: &mut impl FnMut(Problem)) {
    if oidc.redirect_paths.is_empty() {
        push(Problem {
            field: "oidc.redirect_paths".into(),
            message: "needs at least one path".into(),
            line: 0,
            column: 0,
        });
    }
    for (i, path) in oidc.redirect_paths.iter().enumerate() {
        check_path(path, &format!("oidc.redirect_paths[{i}]"), push);
    }
    for (field, path) in [
        ("oidc.post_logout_path", &oidc.post_logout_path),
        (
            "oidc.backchannel_logout_path",
            &oidc.backchannel_logout_path,
        ),
        (
            "oidc.frontchannel_logout_path",
            &oidc.frontchannel_logout_path,
        ),
    ] {
        if let Some(path) = path {
            check_path(path, field, push);
        }
    }
    if !oidc.scopes.iter().any(|s| s.value == "openid") {
        push(first_path_problem(
            oidc,
            "oidc.scopes",
            "must include `openid`",
        ));
    }
    for (i, scope) in oidc.scopes.iter().enumerate() {
        if !stackgate_oidc::SUPPORTED_SCOPES.contains(&scope.value.as_str()) {
            push(at(
                scope,
                format!("oidc.scopes[{i}]"),
                format!(
                    "is not one of {}",
                    stackgate_oidc::SUPPORTED_SCOPES.join(", ")
                ),
            ));
        }
    }
    if let Some(alg) = &oidc.id_token_alg
        && stackgate_oidc::SigningAlg::parse(alg).is_none()
    {
        push(first_path_problem(
            oidc,
            "oidc.id_token_alg",
            "must be ES256, RS256 or EdDSA",
        ));
    }
    for (kind, names) in [
        ("env", &oidc.deliver.env),
        ("secret_keys", &oidc.deliver.secret_keys),
        ("helm_values", &oidc.deliver.helm_values),
    ] {
        if let Some(names) = names {
            check_names(oidc, kind, names, push);
        }
    }
}

fn check_names(oidc: &OidcNeeds, kind: &str, names: &SettingNames, push: &mut impl FnMut(Problem)) {
    let all = [&names.issuer, &names.client_id, &names.client_secret];
    let valid = |n: &str| match kind {
        "env" => is_env_name(n),
        "secret_keys" => {
            !n.is_empty()
                && n.len() <= 253
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        }
        _ => !n.is_empty() && n.split('.').all(|part| !part.is_empty()),
    };
    for name in all {
        if !valid(name) {
            push(first_path_problem(
                oidc,
                &format!("oidc.deliver.{kind}"),
                format!("`{name}` is not a valid name here"),
            ));
        }
    }
    if all[0] == all[1] || all[1] == all[2] || all[0] == all[2] {
        push(first_path_problem(
            oidc,
            &format!("oidc.deliver.{kind}"),
            "the three names must differ",
        ));
    }
}

/// For fields without their own span, the problem is placed at the first redirect path.
fn first_path_problem(oidc: &OidcNeeds, field: &str, message: impl Into<String>) -> Problem {
    match oidc.redirect_paths.first() {
        Some(first) => {
            let mut p = at(first, field, message);
            p.column = 0;
            p
        }
        None => Problem {
            field: field.into(),
            message: message.into(),
            line: 0,
            column: 0,
        },
    }
}

fn check_path(path: &Spanned<String>, field: &str, push: &mut impl FnMut(Problem)) {
    let p = &path.value;
    let ok = p.starts_with('/')
        && !p.starts_with("//")
        && p.len() <= 512
        && !p.contains('#')
        && !p
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
        && !p.split(['/', '?']).any(|seg| seg == ".." || seg == ".");
    if !ok {
        push(at(
            path,
            field,
            "must be an absolute path such as /callback (no '..', '#', spaces or '\\')",
        ));
    }
}

fn placeholders(value: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                found.push(&after[..end]);
                rest = &after[end + 1..];
            }
            None => {
                found.push(after);
                break;
            }
        }
    }
    found
}

pub(crate) fn is_app_id(id: &str) -> bool {
    (1..=40).contains(&id.len())
        && !id.starts_with('-')
        && !id.ends_with('-')
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_dns_label(name: &str) -> bool {
    is_app_id(name) && name.len() <= 63
}

fn is_version(v: &str) -> bool {
    let core = v.split_once('-').map_or(v, |(core, _)| core);
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 9 && p.chars().all(|c| c.is_ascii_digit()))
}

pub(crate) fn is_env_name(name: &str) -> bool {
    // Apps read mixed-case names with '-' and '.' (Rocket.Chat's `Accounts_OAuth_Custom-…`),
    // which Kubernetes and execve both allow.
    let mut chars = name.chars();
    name.len() <= 256
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !matches!(
            name.to_ascii_lowercase().as_str(),
            "host"
                | "connection"
                | "cookie"
                | "authorization"
                | "content-length"
                | "transfer-encoding"
        )
}

/// A version's numbers, for comparing catalog versions (a pre-release suffix is ignored).
pub(crate) fn version_numbers(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.split_once('-').map_or(v, |(core, _)| core);
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let numbers = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(numbers)
}
