//! trove.conf: oslo.config-style INI loading, Trove's option groups and defaults, and the
//! sample config generator.
//!
//! An operator's `trove.conf` carries over unchanged: groups and option names, types,
//! defaults and deprecated names are Trove's. Binaries flatten [`ConfigArgs`] into their
//! clap parser, call [`load`] once at start-up and pass the resulting [`Config`] down
//! (`Arc<Config>`); nothing else reads config files.
//!
//! ```no_run
//! # fn main() -> Result<(), trove_config::ConfigError> {
//! let sources = trove_config::ConfigSources::none().file("/etc/trove/trove.conf");
//! let loaded = trove_config::load(&sources)?;
//! let cfg = loaded.config;
//! assert_eq!(cfg.default.max_instances_per_tenant, 10);
//! let _url = cfg.database.connection.expose_secret();
//! let _mariadb = cfg.datastore("mariadb").expect("modelled datastore");
//! # Ok(()) }
//! ```
//!
//! Syntax and precedence follow oslo.config: `[group]` sections, `key = value` or
//! `key: value`, `#`/`;` comments, indented continuation lines, the last assignment winning.
//! Later `--config-file`s override earlier ones and `--config-dir` files (`*.conf`, sorted by
//! name) come after all of them. Values may refer to other options as `$option` or
//! `${group.option}` (write `$$` for a literal `$`, also in passwords). Deprecated option
//! names still work, with a warning; unknown options and groups are warned about and
//! ignored; a value of the wrong type stops start-up with a [`ConfigError`] naming the file,
//! group and option.
//!
//! Map of the crate:
//! * `groups`: the declaration of every group and option (the single source of truth) and
//!   [`Config`];
//! * `meta`: option metadata ([`OptMeta`]) and the declaration macros;
//! * `types`: value types ([`Secret`], [`PortRange`]) and text parsing ([`OptValue`]);
//! * `ini`: the INI dialect of oslo.config;
//! * `load`: file discovery ([`ConfigArgs`], [`ConfigSources`]), precedence, defaults,
//!   deprecated names, interpolation, warnings;
//! * `sample`: [`sample_config`];
//! * `error`: [`ConfigError`] (fatal) and [`ConfigWarning`].
//!
//! What it deliberately does not do: reload at run time, read environment variables, or
//! parse the paste file (`api_paste_config`).

mod error;
mod groups;
mod ini;
mod load;
mod meta;
mod sample;
mod types;

pub use error::{ConfigError, ConfigWarning, WarningKind};
pub use groups::{
    CacheOpts, Config, DatabaseOpts, DatastoreOpts, DefaultOpts, GuestAgentOpts,
    InstancePortsCacheOpts, KeystoneAuthtokenOpts, NetworkOpts, OsloMessagingNotificationsOpts,
    OsloMessagingRabbitOpts, OsloMiddlewareOpts, OsloPolicyOpts, ServiceCredentialsOpts,
    UpgradeLevelsOpts,
};
pub use load::{load, ConfigArgs, ConfigSources, Loaded, DEFAULT_CONFIG_FILE};
pub use meta::{Dflt, OptMeta};
pub use sample::sample_config;
pub use types::{OptValue, PortRange, Secret};
