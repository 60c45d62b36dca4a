//! The Helm chart in `charts/stackgate` follows the binary: its settings are configuration keys,
//! its defaults load, and its templates name only settings that exist.

use crate::config::{Config, is_key};

const VALUES: &str = include_str!("../../../charts/stackgate/values.yaml");
const TEMPLATES: &[(&str, &str)] = &[
    (
        "configmap.yaml",
        include_str!("../../../charts/stackgate/templates/configmap.yaml"),
    ),
    (
        "deployment.yaml",
        include_str!("../../../charts/stackgate/templates/deployment.yaml"),
    ),
    (
        "service.yaml",
        include_str!("../../../charts/stackgate/templates/service.yaml"),
    ),
    (
        "ingress.yaml",
        include_str!("../../../charts/stackgate/templates/ingress.yaml"),
    ),
    (
        "rbac.yaml",
        include_str!("../../../charts/stackgate/templates/rbac.yaml"),
    ),
    (
        "pdb.yaml",
        include_str!("../../../charts/stackgate/templates/pdb.yaml"),
    ),
    (
        "serviceaccount.yaml",
        include_str!("../../../charts/stackgate/templates/serviceaccount.yaml"),
    ),
];

/// Settings that must come from a Secret, never from the chart's ConfigMap.
const SECRETS: &[&str] = &["database_url", "master_key", "previous_master_keys"];

fn values() -> serde_json::Value {
    serde_saphyr::from_str(VALUES).expect("values.yaml is YAML")
}

#[test]
fn the_charts_defaults_are_settings_the_binary_accepts() {
    let values = values();
    let config = values["config"].as_object().expect("a config map");
    let mut env = Vec::new();
    for (key, value) in config {
        assert!(
            is_key(key),
            "values.yaml config.{key} is not a configuration key"
        );
        assert!(
            !SECRETS.contains(&key.as_str()),
            "config.{key} belongs in the Secret"
        );
        let text = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_owned);
        env.push((format!("STACKGATE_{}", key.to_uppercase()), text));
    }
    env.push((
        "STACKGATE_DATABASE_URL".into(),
        "postgres://stackgate@db/stackgate".into(),
    ));
    env.push((
        "STACKGATE_MASTER_KEY".into(),
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]),
    ));
    let loaded = Config::load(None, env).expect("the chart's defaults load");
    let port = loaded.listen.port().to_string();
    let deployment = TEMPLATES[1].1;
    assert!(
        deployment.contains(&format!("containerPort: {port}")),
        "the container port follows config.listen"
    );
}

#[test]
fn the_templates_name_only_settings_that_exist() {
    for (file, text) in TEMPLATES {
        for (at, _) in text.match_indices("STACKGATE_") {
            let name: String = text[at + "STACKGATE_".len()..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if name.is_empty() {
                // The ConfigMap builds names from `config` keys, checked above.
                continue;
            }
            assert!(
                is_key(&name.to_lowercase()),
                "{file} sets STACKGATE_{name}, which is no setting"
            );
        }
    }
    let deployment = TEMPLATES[1].1;
    for key in SECRETS {
        assert!(
            deployment.contains(&format!("STACKGATE_{}", key.to_uppercase())),
            "the Deployment takes {key} from the Secret"
        );
    }
    for probe in ["path: /healthz", "path: /readyz"] {
        assert!(deployment.contains(probe), "the Deployment probes {probe}");
    }
}

#[test]
fn the_cluster_role_grants_what_the_kubernetes_driver_manages() {
    let rbac = TEMPLATES[4].1;
    for (group, _, plural) in stackgate_apps::kubernetes::MANAGED {
        let rule = rbac
            .split("  - apiGroups:")
            .find(|rule| rule.contains(&format!("[\"{group}\"]")))
            .unwrap_or_else(|| panic!("rbac.yaml has no rule for the API group {group:?}"));
        assert!(
            rule.contains(&format!("\"{plural}\"")),
            "rbac.yaml does not grant {plural}"
        );
        for verb in ["get", "create", "patch", "delete"] {
            assert!(
                rule.contains(&format!("\"{verb}\"")),
                "rbac.yaml does not allow {verb} on {plural}"
            );
        }
    }
}
