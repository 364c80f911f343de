//! The sample configuration file, generated from the defaults and docs/configuration.md, and
//! the tests that keep that page and packaging/keyward.toml in step with the code.

use super::keys;

/// The sample configuration file (`keyward config sample`, packaging/keyward.toml): every key
/// with its default, under the first sentence of its meaning in docs/configuration.md, so the
/// two cannot drift apart.
pub fn sample() -> String {
    const DOC: &str = include_str!("../../docs/configuration.md");
    let meaning = |path: &str| -> String {
        let row = DOC
            .lines()
            .find(|l| l.starts_with(&format!("| `{path}` |")))
            .unwrap_or_default();
        let cell = row.split(" | ").nth(3).unwrap_or_default();
        let cell = cell.trim_end_matches(" |").trim();
        match cell.find(". ") {
            Some(end) => cell[..=end].to_string(),
            None => cell.to_string(),
        }
    };
    let mut out = String::from(
        "# keyward's configuration: every key with its default value, under what it means\n\
         # (docs/configuration.md explains each). Use it with `keyward --config FILE` or\n\
         # KEYWARD_CONFIG=FILE; every key also has an environment variable, KEYWARD_ and the\n\
         # dotted path in capitals (mail.smtp.host: KEYWARD_MAIL_SMTP_HOST), which wins over the\n\
         # file. Printed by `keyward config sample`.\n",
    );
    // In the documentation's order, which puts the top-level key before every table.
    let mut keys = keys();
    let place = |path: &str| DOC.find(&format!("| `{path}` |")).unwrap_or(usize::MAX);
    keys.sort_by_key(|(path, _)| place(path));
    let mut table = String::new();
    for (path, value) in keys {
        let (section, key) = path.rsplit_once('.').unwrap_or(("", &path));
        if section != table {
            out.push_str(&format!("\n[{section}]\n"));
            table = section.to_string();
        }
        out.push('\n');
        out.push_str(&wrap_comment(&meaning(&path)));
        out.push_str(&format!("{key} = {value}\n"));
    }
    out
}

/// `# text` in lines of at most 96 characters.
fn wrap_comment(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > 96 && line.len() > 1 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, env_name};
    use std::collections::BTreeMap;

    #[test]
    fn every_key_is_documented() {
        let doc = include_str!("../../docs/configuration.md");
        for (path, _) in keys() {
            assert!(
                doc.contains(&format!("`{path}`")),
                "docs/configuration.md lacks `{path}`"
            );
            assert!(
                doc.contains(&env_name(&path)),
                "docs/configuration.md lacks {}",
                env_name(&path)
            );
        }
    }

    #[test]
    fn the_packaged_sample_is_the_generated_one_and_holds_the_defaults() {
        let packaged = include_str!("../../packaging/keyward.toml");
        assert!(
            packaged == sample(),
            "packaging/keyward.toml is stale: `cargo run -q -- config sample > packaging/keyward.toml`"
        );
        for (path, _) in keys() {
            let line = sample()
                .lines()
                .skip_while(|l| !l.starts_with(&format!("{} = ", path.rsplit('.').next().unwrap())))
                .count();
            assert!(line > 0, "the sample lacks {path}");
        }
        // Every key has its one-line meaning, and the file as it stands is the defaults.
        assert!(!sample().contains("\n#\n"), "a key without a meaning");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keyward.toml");
        std::fs::write(&file, packaged).unwrap();
        let loaded = Config::load(Some(&file), &BTreeMap::new()).unwrap();
        assert_eq!(
            toml::Value::try_from(&loaded).unwrap(),
            toml::Value::try_from(Config::default()).unwrap()
        );
    }
}
