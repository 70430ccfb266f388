//! Finding, reading and merging config files, then resolving every option.
//!
//! Precedence, as in oslo.config: the `--config-file` files in argument order, then the
//! `*.conf` files of each `--config-dir` sorted by name; a later file overrides an earlier
//! one. Within one file the last assignment of a key wins, and an option's current name wins
//! over its deprecated names. Options no file sets take their default. Then `$option` and
//! `${group.option}` references are substituted (`$$` is a literal `$`) and the text is
//! converted to the option's type.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::error::{ConfigError, ConfigWarning, WarningKind};
use crate::groups::Config;
use crate::ini::{normalize_group, IniFile};
use crate::meta::{Dflt, OptMeta};
use crate::types::OptValue;

/// The config file read when no `--config-file`/`--config-dir` is given (if it exists).
pub const DEFAULT_CONFIG_FILE: &str = "/etc/trove/trove.conf";

/// Source name used in errors about built-in defaults.
const BUILTIN: &str = "built-in default";

/// Datastore groups of Trove that Trove-rs does not model: warned about, never fatal.
const UNSUPPORTED_DATASTORES: &[&str] = &[
    "percona",
    "pxc",
    "redis",
    "cassandra",
    "couchbase",
    "mongodb",
    "couchdb",
    "vertica",
    "db2",
];

/// Command-line flags selecting config files, as oslo.config's.
///
/// Flatten it into a binary's clap parser: `#[command(flatten)] config: ConfigArgs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct ConfigArgs {
    /// Path to a config file to use. Repeatable; values in later files take precedence.
    /// Defaults to /etc/trove/trove.conf when it exists and no --config-dir is given.
    #[arg(long = "config-file", value_name = "PATH", global = true)]
    pub config_file: Vec<PathBuf>,
    /// Directory whose *.conf files are read, sorted by name, after all --config-file
    /// files. Repeatable.
    #[arg(long = "config-dir", value_name = "DIR", global = true)]
    pub config_dir: Vec<PathBuf>,
}

impl ConfigArgs {
    /// Loads the configuration the flags select: `load(&self.sources())`.
    pub fn load(&self) -> Result<Loaded, ConfigError> {
        load(&self.sources())
    }

    /// The files to read: the ones given, or the default file when none is given.
    pub fn sources(&self) -> ConfigSources {
        if self.config_file.is_empty() && self.config_dir.is_empty() {
            ConfigSources::default_files()
        } else {
            ConfigSources {
                files: self.config_file.clone(),
                dirs: self.config_dir.clone(),
            }
        }
    }
}

/// Which files make up the configuration, in precedence order (later wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSources {
    /// Files, read in order; each must exist.
    pub files: Vec<PathBuf>,
    /// Directories whose `*.conf` files are read (sorted by name) after `files`.
    pub dirs: Vec<PathBuf>,
}

impl ConfigSources {
    /// No files at all: every option at its default.
    pub fn none() -> Self {
        ConfigSources::default()
    }

    /// [`DEFAULT_CONFIG_FILE`] if it exists, else nothing.
    pub fn default_files() -> Self {
        let path = Path::new(DEFAULT_CONFIG_FILE);
        ConfigSources {
            files: if path.is_file() {
                vec![path.to_path_buf()]
            } else {
                Vec::new()
            },
            dirs: Vec::new(),
        }
    }

    /// Adds a file (read after those already added).
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.push(path.into());
        self
    }

    /// Adds a directory (read after all files and the directories already added).
    pub fn dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.dirs.push(path.into());
        self
    }

    /// The files that will be read, in order, listing the directories now.
    pub fn paths(&self) -> Result<Vec<PathBuf>, ConfigError> {
        let mut paths = self.files.clone();
        for dir in &self.dirs {
            let entries = std::fs::read_dir(dir).map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    ConfigError::DirNotFound { path: dir.clone() }
                } else {
                    ConfigError::Unreadable {
                        path: dir.clone(),
                        source,
                    }
                }
            })?;
            let mut found = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|source| ConfigError::Unreadable {
                    path: dir.clone(),
                    source,
                })?;
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "conf") && path.is_file() {
                    found.push(path);
                }
            }
            found.sort();
            paths.extend(found);
        }
        Ok(paths)
    }
}

/// A loaded configuration and the warnings found while loading it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Unknown options and groups, deprecated names; already logged.
    pub warnings: Vec<ConfigWarning>,
}

/// Reads the files of `sources` and builds the configuration.
///
/// Fails on a missing or unreadable file, a malformed line, a value of the wrong type, a
/// bad `$reference` or an unset required option; warns (and logs) about the rest.
pub fn load(sources: &ConfigSources) -> Result<Loaded, ConfigError> {
    let mut files = Vec::new();
    for path in sources.paths()? {
        let text = std::fs::read_to_string(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ConfigError::FileNotFound { path: path.clone() }
            } else {
                ConfigError::Unreadable {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        files.push(IniFile::parse(&path.display().to_string(), &text)?);
    }
    build(files)
}

/// Builds the configuration from in-memory files `(name, text)`, later overriding earlier.
pub(crate) fn load_strs(sources: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    let files = sources
        .iter()
        .map(|(name, text)| IniFile::parse(name, text))
        .collect::<Result<Vec<_>, _>>()?;
    build(files)
}

fn build(files: Vec<IniFile>) -> Result<Loaded, ConfigError> {
    let schema = Schema::new(Config::schema());
    let warnings = scan_warnings(&files, &schema);
    let resolver = Resolver {
        files: &files,
        schema: &schema,
    };
    let config = Config::build(&resolver)?;
    for w in &warnings {
        tracing::warn!(
            config.file = %w.file,
            config.group = %w.group,
            config.option = w.option.as_deref().unwrap_or(""),
            "{w}"
        );
    }
    Ok(Loaded { config, warnings })
}

/// All known groups with their option tables.
pub(crate) struct Schema {
    groups: Vec<(&'static str, Vec<OptMeta>)>,
}

impl Schema {
    pub(crate) fn new(groups: Vec<(&'static str, Vec<OptMeta>)>) -> Self {
        Schema { groups }
    }

    fn group(&self, group: &str) -> Option<&[OptMeta]> {
        self.groups
            .iter()
            .find(|(g, _)| *g == group)
            .map(|(_, m)| m.as_slice())
    }

    fn meta(&self, group: &str, name: &str) -> Option<&OptMeta> {
        self.group(group)?.iter().find(|m| m.name == name)
    }

    /// `(deprecated group, deprecated name) -> (group, name)` over all options.
    fn deprecated_names(&self) -> HashMap<(&str, &str), (&str, &str)> {
        let mut map = HashMap::new();
        for (group, metas) in &self.groups {
            for m in metas {
                for (dg, dn) in &m.deprecated {
                    map.insert((dg.unwrap_or(group), *dn), (*group, m.name));
                }
            }
        }
        map
    }
}

/// Warnings for everything in the files that no option consumes as its current name.
fn scan_warnings(files: &[IniFile], schema: &Schema) -> Vec<ConfigWarning> {
    let deprecated = schema.deprecated_names();
    let mut out = Vec::new();
    for file in files {
        for section in &file.sections {
            let known_group = schema.group(&section.name).is_some();
            let mut seen = BTreeSet::new();
            let mut group_warned = false;
            for entry in &section.entries {
                if !seen.insert(entry.key.as_str()) {
                    continue;
                }
                let warn = |option: Option<&str>, line, kind| ConfigWarning {
                    file: file.source.clone(),
                    group: section.name.clone(),
                    option: option.map(String::from),
                    line,
                    kind,
                };
                if let Some(m) = schema.meta(&section.name, &entry.key) {
                    if m.removal {
                        out.push(warn(
                            Some(&entry.key),
                            entry.line,
                            WarningKind::DeprecatedForRemoval,
                        ));
                    }
                } else if let Some((g, n)) =
                    deprecated.get(&(section.name.as_str(), entry.key.as_str()))
                {
                    out.push(warn(
                        Some(&entry.key),
                        entry.line,
                        WarningKind::DeprecatedName {
                            group: g.to_string(),
                            option: n.to_string(),
                        },
                    ));
                } else if known_group {
                    out.push(warn(
                        Some(&entry.key),
                        entry.line,
                        WarningKind::UnknownOption,
                    ));
                } else if !group_warned {
                    group_warned = true;
                    let kind = if UNSUPPORTED_DATASTORES.contains(&section.name.as_str()) {
                        WarningKind::UnsupportedDatastore
                    } else {
                        WarningKind::UnknownGroup
                    };
                    out.push(warn(None, section.line, kind));
                }
            }
        }
    }
    out
}

/// Where a raw value comes from.
#[derive(Debug, Clone)]
struct Origin {
    file: String,
    group: String,
    option: String,
}

/// Result of looking an option up in the files and defaults.
enum Lookup {
    /// No such option.
    NoSuchOpt,
    /// Known, but neither set nor defaulted.
    Unset,
    /// Raw text (before interpolation) and where it came from.
    Value(String, Origin),
}

/// Looks options up across the files (newest first) and defaults.
pub(crate) struct Resolver<'a> {
    files: &'a [IniFile],
    schema: &'a Schema,
}

impl Resolver<'_> {
    fn lookup(&self, group: &str, name: &str) -> Lookup {
        let Some(meta) = self.schema.meta(group, name) else {
            return Lookup::NoSuchOpt;
        };
        let names = std::iter::once((group, name)).chain(
            meta.deprecated
                .iter()
                .map(|(g, n)| (g.unwrap_or(group), *n)),
        );
        let names: Vec<(&str, &str)> = names.collect();
        for file in self.files.iter().rev() {
            for (g, n) in &names {
                if let Some(entry) = file.get(g, n) {
                    return Lookup::Value(
                        entry.value.clone(),
                        Origin {
                            file: file.source.clone(),
                            group: g.to_string(),
                            option: n.to_string(),
                        },
                    );
                }
            }
        }
        let origin = Origin {
            file: BUILTIN.to_string(),
            group: group.to_string(),
            option: name.to_string(),
        };
        match meta.default {
            Dflt::Value(v) => Lookup::Value(v.to_string(), origin),
            Dflt::Cpus => {
                let n = std::thread::available_parallelism().map_or(1, |n| n.get());
                Lookup::Value(n.to_string(), origin)
            }
            Dflt::Unset | Dflt::Absent => Lookup::Unset,
        }
    }

    /// Substitutes `$name`, `${name}` and `${group.name}` in `text`, which belongs to
    /// `group`. `stack` holds the options being substituted (cycle detection).
    fn interpolate(
        &self,
        text: &str,
        group: &str,
        stack: &mut Vec<(String, String)>,
    ) -> Result<String, (String, String)> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
                continue;
            }
            let (reference, tail) = if let Some(inner) = after.strip_prefix('{') {
                match inner.find('}') {
                    Some(end) if is_identifier(&inner[..end]) => (&inner[..end], &inner[end + 1..]),
                    _ => {
                        out.push('$');
                        rest = after;
                        continue;
                    }
                }
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                    .unwrap_or(after.len());
                if !is_identifier(&after[..end]) {
                    out.push('$');
                    rest = after;
                    continue;
                }
                (&after[..end], &after[end..])
            };
            out.push_str(&self.substitute(reference, group, stack)?);
            rest = tail;
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The interpolated value of a reference, `""` for unset options.
    fn substitute(
        &self,
        reference: &str,
        group: &str,
        stack: &mut Vec<(String, String)>,
    ) -> Result<String, (String, String)> {
        let mut candidates = Vec::new();
        if let Some((g, n)) = reference.split_once('.') {
            candidates.push((normalize_group(g), n.to_string()));
        }
        candidates.push((group.to_string(), reference.to_string()));
        candidates.push(("DEFAULT".to_string(), reference.to_string()));
        for (g, n) in candidates {
            match self.lookup(&g, &n) {
                Lookup::NoSuchOpt => continue,
                Lookup::Unset => return Ok(String::new()),
                Lookup::Value(raw, _) => {
                    let key = (g.clone(), n.clone());
                    if stack.contains(&key) {
                        return Err((reference.to_string(), "circular reference".to_string()));
                    }
                    stack.push(key);
                    let value = self.interpolate(&raw, &g, stack);
                    stack.pop();
                    return value;
                }
            }
        }
        Err((reference.to_string(), "unknown option".to_string()))
    }

    /// The typed value of `[group] name`.
    pub(crate) fn get<T: OptValue>(&self, group: &str, name: &str) -> Result<T, ConfigError> {
        let meta = self.schema.meta(group, name);
        let (raw, origin) = match self.lookup(group, name) {
            Lookup::Value(raw, origin) => (raw, origin),
            Lookup::NoSuchOpt | Lookup::Unset => {
                return T::unset().ok_or_else(|| ConfigError::MissingRequired {
                    files: self.file_list(),
                    group: group.to_string(),
                    option: name.to_string(),
                })
            }
        };
        let meta = meta.expect("a looked-up value has metadata");
        let mut stack = vec![(group.to_string(), name.to_string())];
        let value = self
            .interpolate(&raw, group, &mut stack)
            .map_err(|(reference, reason)| ConfigError::Interpolation {
                file: origin.file.clone(),
                group: origin.group.clone(),
                option: origin.option.clone(),
                reference,
                reason,
            })?;
        T::parse(&value, meta).map_err(|reason| ConfigError::InvalidValue {
            file: origin.file,
            group: origin.group,
            option: origin.option,
            reason,
        })
    }

    fn file_list(&self) -> String {
        if self.files.is_empty() {
            "no config file".to_string()
        } else {
            self.files
                .iter()
                .map(|f| f.source.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{opt_group, UNSET};

    opt_group! {
        /// A group with a required option.
        pub struct NeedOpts("need") {
            needed: i64 = UNSET, "Required: no default and not optional.";
            optional: Option<i64> = UNSET, "Optional.";
        }
    }

    fn build(texts: &[(&str, &str)]) -> Result<NeedOpts, ConfigError> {
        let schema = Schema::new(vec![("need", NeedOpts::options(0))]);
        let files: Vec<IniFile> = texts
            .iter()
            .map(|(name, text)| IniFile::parse(name, text).unwrap())
            .collect();
        let resolver = Resolver {
            files: &files,
            schema: &schema,
        };
        NeedOpts::build(&resolver, "need")
    }

    #[test]
    fn required_options() {
        let metas = NeedOpts::options(0);
        assert!(metas[0].required && !metas[1].required);
        assert_eq!(
            build(&[("a.conf", "[need]\noptional = 1\n"), ("b.conf", "")])
                .unwrap_err()
                .to_string(),
            "a.conf, b.conf: [need] needed: required option is not set"
        );
        assert_eq!(
            build(&[]).unwrap_err().to_string(),
            "no config file: [need] needed: required option is not set"
        );
        let opts = build(&[("a.conf", "[need]\nneeded = 3\n")]).unwrap();
        assert_eq!((opts.needed, opts.optional), (3, None));
    }
}
