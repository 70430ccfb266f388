//! Option metadata and the declaration macros.
//!
//! Each option group is declared once with [`opt_group!`] (or [`datastore_group!`] for the
//! per-datastore groups, which share one struct but have per-datastore defaults). A
//! declaration produces the typed struct, whose field docs name `[group] option`, and the
//! [`OptMeta`] table from which the loader (defaults, deprecated names, unknown-option
//! warnings) and the sample generator both work. Adding an option is adding one line.

/// The default of an option, in the text syntax of a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dflt {
    /// A default value written as in a config file (interpolation allowed).
    Value(&'static str),
    /// No default: the option is unset unless a file sets it.
    Unset,
    /// The number of CPUs of this host.
    Cpus,
    /// The option does not exist in this variant of a shared group (datastore groups).
    Absent,
}

impl From<&'static str> for Dflt {
    fn from(value: &'static str) -> Self {
        Dflt::Value(value)
    }
}

/// Shorthand for [`Dflt::Unset`] in declarations.
pub(crate) const UNSET: Dflt = Dflt::Unset;
/// Shorthand for [`Dflt::Cpus`] in declarations.
pub(crate) const CPUS: Dflt = Dflt::Cpus;
/// Shorthand for [`Dflt::Absent`] in declarations.
pub(crate) const ABSENT: Dflt = Dflt::Absent;

/// Everything known about one option: name, type, default, help, constraints and
/// deprecated names.
#[derive(Debug, Clone, PartialEq)]
pub struct OptMeta {
    /// Option name as written in the file.
    pub name: &'static str,
    /// Type name shown in the sample (`integer`, `string`, `list`...).
    pub type_name: &'static str,
    /// Values are secrets: never echoed in errors.
    pub secret: bool,
    /// The default.
    pub default: Dflt,
    /// Help text.
    pub help: &'static str,
    /// Inclusive minimum for numbers.
    pub min: Option<f64>,
    /// Inclusive maximum for numbers.
    pub max: Option<f64>,
    /// Allowed values for strings (each item, for lists).
    pub choices: Option<&'static [&'static str]>,
    /// Deprecated names: `(group, name)`, `None` meaning the option's own group.
    pub deprecated: Vec<(Option<&'static str>, &'static str)>,
    /// Value shown in the sample instead of the default (for computed defaults).
    pub sample: Option<&'static str>,
    /// The option is deprecated for removal; setting it draws a warning.
    pub removal: bool,
    /// The option has no default and its type cannot be unset: a file must set it.
    pub required: bool,
}

impl OptMeta {
    /// Metadata with no constraints and no deprecated names.
    pub fn new(
        name: &'static str,
        type_name: &'static str,
        secret: bool,
        default: Dflt,
        help: &'static str,
    ) -> Self {
        OptMeta {
            name,
            type_name,
            secret,
            default,
            help,
            min: None,
            max: None,
            choices: None,
            deprecated: Vec::new(),
            sample: None,
            removal: false,
            required: false,
        }
    }

    /// Sets the inclusive minimum.
    pub fn min(mut self, min: i64) -> Self {
        self.min = Some(min as f64);
        self
    }

    /// Sets the inclusive maximum.
    pub fn max(mut self, max: i64) -> Self {
        self.max = Some(max as f64);
        self
    }

    /// Restricts the value to one of `choices`.
    pub fn choices(mut self, choices: &'static [&'static str]) -> Self {
        self.choices = Some(choices);
        self
    }

    /// Adds a deprecated name in another group.
    pub fn deprecated(mut self, group: &'static str, name: &'static str) -> Self {
        self.deprecated.push((Some(group), name));
        self
    }

    /// Adds a deprecated name in the option's own group.
    pub fn deprecated_name(mut self, name: &'static str) -> Self {
        self.deprecated.push((None, name));
        self
    }

    /// Sets the value shown in the sample in place of the default.
    pub fn sample(mut self, sample: &'static str) -> Self {
        self.sample = Some(sample);
        self
    }

    /// Marks the option as deprecated for removal.
    pub fn removal(mut self) -> Self {
        self.removal = true;
        self
    }

    /// Sets whether a value is required.
    pub(crate) fn with_required(mut self, required: bool) -> Self {
        self.required = required;
        self
    }
}

/// Declares an option group: the struct and its option table.
///
/// ```text
/// opt_group! {
///     /// Doc of the struct.
///     pub struct DemoOpts("demo") {
///         name: Type = "default" or UNSET or CPUS, "help text" [, builder(args)]* ;
///     }
/// }
/// ```
macro_rules! opt_group {
    (@impl
        $(#[$attr:meta])*
        $name:ident ($docgroup:literal) {
            $( $field:ident : $ty:ty = [$($d:expr),+], $help:literal $(, $bk:ident ( $($bv:expr),* ))* ; )*
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub struct $name {
            $(
                #[doc = concat!("`[", $docgroup, "] ", stringify!($field), "`: ", $help)]
                pub $field: $ty,
            )*
        }

        impl $name {
            /// Option table of variant `variant` (datastore groups have one per datastore).
            #[allow(unused_mut, unused_variables)]
            pub(crate) fn options(variant: usize) -> Vec<$crate::meta::OptMeta> {
                let mut out = Vec::new();
                $(
                    let dflts: &[$crate::meta::Dflt] = &[$($crate::meta::Dflt::from($d)),+];
                    let d = dflts[variant.min(dflts.len() - 1)];
                    if d != $crate::meta::Dflt::Absent {
                        let required = d == $crate::meta::Dflt::Unset
                            && <$ty as $crate::types::OptValue>::unset().is_none();
                        out.push(
                            $crate::meta::OptMeta::new(
                                stringify!($field),
                                <$ty as $crate::types::OptValue>::TYPE_NAME,
                                <$ty as $crate::types::OptValue>::SECRET,
                                d,
                                $help,
                            )
                            $(.$bk($($bv),*))*
                            .with_required(required),
                        );
                    }
                )*
                out
            }

            /// Builds the group from resolved values.
            #[allow(unused_variables)]
            pub(crate) fn build(
                r: &$crate::load::Resolver<'_>,
                group: &str,
            ) -> Result<Self, $crate::error::ConfigError> {
                Ok(Self {
                    $( $field: r.get::<$ty>(group, stringify!($field))?, )*
                })
            }
        }
    };
    (
        $(#[$attr:meta])*
        pub struct $name:ident ($docgroup:literal) {
            $( $field:ident : $ty:ty = $d:expr, $help:literal $(, $bk:ident ( $($bv:expr),* ))* ; )*
        }
    ) => {
        opt_group! { @impl
            $(#[$attr])*
            $name ($docgroup) {
                $( $field : $ty = [$d], $help $(, $bk ( $($bv),* ))* ; )*
            }
        }
    };
}

/// Declares a group shared by several datastores: each option has one default per
/// datastore (in the order of the variants), `ABSENT` where a datastore lacks the option.
macro_rules! datastore_group {
    (
        $(#[$attr:meta])*
        pub struct $name:ident ($docgroup:literal) {
            $( $field:ident : $ty:ty = [$($d:expr),+], $help:literal $(, $bk:ident ( $($bv:expr),* ))* ; )*
        }
    ) => {
        opt_group! { @impl
            $(#[$attr])*
            $name ($docgroup) {
                $( $field : $ty = [$($d),+], $help $(, $bk ( $($bv),* ))* ; )*
            }
        }
    };
}

pub(crate) use datastore_group;
pub(crate) use opt_group;
