//! How a `KEYWARD_*` variable names a setting and how its text becomes a value of the
//! setting's type: the environment's rules, kept out of `Config::load`, which applies them.

use super::ConfigError;

/// Environment variables with the prefix that are not settings.
pub(super) const NOT_SETTINGS: &[&str] = &["KEYWARD_CONFIG"];

/// Prefixes reserved for the test suite and tools around keyward.
pub(super) const RESERVED_PREFIXES: &[&str] = &["KEYWARD_TEST_", "KEYWARD_BENCH_"];

pub fn env_name(path: &str) -> String {
    format!("KEYWARD_{}", path.replace('.', "_").to_uppercase())
}

pub(super) fn set_path(root: &mut toml::Table, path: &str, value: toml::Value) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut table = root;
    for p in parts {
        let entry = table
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(t) = entry else { return };
        table = t;
    }
    table.insert(last.to_string(), value);
}

/// Parses an environment value as the type the setting has.
pub(super) fn env_value(
    var: &str,
    raw: &str,
    like: &toml::Value,
) -> Result<toml::Value, ConfigError> {
    let bad = |m: &str| ConfigError::EnvValue {
        var: var.to_string(),
        message: m.to_string(),
    };
    Ok(match like {
        toml::Value::Integer(_) => toml::Value::Integer(
            raw.trim()
                .parse()
                .map_err(|_| bad(&format!("expected a whole number, got {raw:?}")))?,
        ),
        toml::Value::Boolean(_) => toml::Value::Boolean(match raw.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => return Err(bad(&format!("expected true or false, got {raw:?}"))),
        }),
        toml::Value::Array(_) => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        ),
        _ => toml::Value::String(raw.to_string()),
    })
}
