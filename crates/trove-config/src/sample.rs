//! The commented sample trove.conf, in the layout of oslo-config-generator.
//!
//! Every group and option appears with its help text (wrapped), type, bounds, allowed values,
//! deprecated names and a commented `#name = default` line. Secrets are shown with their
//! defaults, as oslo-config-generator does. Loading the sample unchanged gives exactly the
//! defaults, since every option line is commented out.

use crate::groups::Config;
use crate::meta::{Dflt, OptMeta};

/// Width of wrapped help text, comment marker included.
const WIDTH: usize = 70;

/// The sample configuration file.
pub fn sample_config() -> String {
    render(false)
}

/// Renders the sample; with `uncomment`, options whose sample value is their real default
/// are written as active `name = value` lines (used to test that defaults round-trip).
pub(crate) fn render(uncomment: bool) -> String {
    let mut groups = Config::schema();
    groups.sort_by_key(|(name, _)| (*name != "DEFAULT", *name));
    let mut out = String::new();
    for (i, (group, options)) in groups.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("[{group}]\n"));
        for meta in options {
            out.push('\n');
            render_option(&mut out, group, meta, uncomment);
        }
    }
    out
}

fn render_option(out: &mut String, group: &str, meta: &OptMeta, uncomment: bool) {
    for line in wrap(meta.help) {
        out.push_str(&format!("# {line}\n"));
    }
    out.push_str(&format!("# Type: {}\n", meta.type_name));
    let (min, max) = match meta.type_name {
        "port number" => (Some(1.0), Some(65535.0)),
        _ => (meta.min, meta.max),
    };
    if let Some(min) = min {
        out.push_str(&format!("# Minimum value: {min}\n"));
    }
    if let Some(max) = max {
        out.push_str(&format!("# Maximum value: {max}\n"));
    }
    if let Some(choices) = meta.choices {
        out.push_str(&format!("# Allowed values: {}\n", choices.join(", ")));
    }
    for (dg, dn) in &meta.deprecated {
        out.push_str(&format!(
            "# Deprecated group/name - [{}]/{}\n",
            dg.unwrap_or(group),
            dn
        ));
    }
    if meta.removal {
        out.push_str("# This option is deprecated for removal.\n");
    }
    if meta.required {
        out.push_str("# This option is required.\n");
    }
    let (value, is_default) = match (meta.sample, meta.default) {
        (Some(sample), _) => (sample.replace("<datastore>", group), false),
        (None, Dflt::Value(v)) => (quote(v), true),
        (None, Dflt::Cpus) => ("<number of CPUs>".to_string(), false),
        (None, Dflt::Unset | Dflt::Absent) => ("<None>".to_string(), false),
    };
    let marker = if uncomment && is_default { "" } else { "#" };
    if value.is_empty() {
        out.push_str(&format!("{marker}{} =\n", meta.name));
    } else {
        out.push_str(&format!("{marker}{} = {value}\n", meta.name));
    }
}

/// Quotes values whose surrounding whitespace would otherwise be lost.
fn quote(value: &str) -> String {
    if value.trim() != value {
        format!("\"{value}\"")
    } else {
        value.to_string()
    }
}

/// Greedy word wrap to `WIDTH` columns, counting the `# ` prefix.
fn wrap(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > WIDTH - 2 {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncommented_defaults_round_trip() {
        let text = render(true);
        let loaded = Config::from_ini_str("sample.conf", &text).unwrap();
        let unexpected: Vec<_> = loaded
            .warnings
            .iter()
            .filter(|w| w.kind != crate::WarningKind::DeprecatedForRemoval)
            .collect();
        assert!(unexpected.is_empty(), "{unexpected:?}");
        assert_eq!(loaded.config, Config::default());
        // The uncommented sample really sets values.
        assert!(text.contains("\nmax_instances_per_tenant = 10\n"));
    }

    #[test]
    fn wraps_at_seventy_columns() {
        let help = "word ".repeat(40);
        for line in wrap(&help) {
            assert!(line.len() + 2 <= WIDTH);
        }
    }
}
