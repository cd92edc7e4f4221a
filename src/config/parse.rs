//! Reading the layers into [`Settings`] so that every problem is found in one run: config-rs
//! stops at the first value it cannot read, so a section that fails is read again key by key
//! (each key on its own over the built-in defaults, which are complete), every bad key is
//! reported with where its value came from, and the section's defaults stand in for it so the
//! rest of start-up can still be checked.

use serde::de::DeserializeOwned;

use super::{DEFAULT_TOML, DEV_TOML, Settings};
use crate::env::EnvVars;

/// The top-level sections, in the order they are reported.
const SECTIONS: [&str; 11] =
    ["server", "token", "log", "trace", "cors", "rate_limit", "reload", "accounts", "auth", "policy", "audit"];

/// The environment variables' prefix and separator: `TOKENMINT__SERVER__LISTEN`.
const ENV_PREFIX: &str = "TOKENMINT";
const ENV_SEPARATOR: &str = "__";

/// The settings (defaults standing in for what could not be read; none when not even the
/// file's syntax could be) and every problem found.
pub struct Parsed {
    pub settings: Option<Settings>,
    pub problems: Vec<String>,
    /// The sections whose defaults stand in: what start-up says of them is about the defaults,
    /// not the operator's values, and is left out.
    pub stand_ins: Vec<&'static str>,
}

/// Reads the built-in defaults, `--dev`'s additions, the operator's file (`file`: its text and
/// how to name it) and the `TOKENMINT__…` variables.
pub fn parse(file: Option<(&str, &str)>, dev: bool, env: &EnvVars) -> Parsed {
    let failed = |problem: String| Parsed { settings: None, problems: vec![problem], stand_ins: Vec::new() };
    let Ok(defaults) = builder(dev, None, None).build().and_then(|d| whole(&d)) else {
        return failed("configuration: the built-in defaults do not read; this build is broken".to_owned());
    };
    let merged = match builder(dev, file.map(|(text, _)| text), Some(env)).build() {
        Ok(merged) => merged,
        Err(e) => {
            let origin = file.map_or("the TOKENMINT__ variables", |(_, name)| name);
            return failed(format!("configuration: {origin} cannot be read: {e}"));
        }
    };
    if let Ok(settings) = whole(&merged) {
        return Parsed { settings: Some(settings), problems: Vec::new(), stand_ins: Vec::new() };
    }
    let origin = Origin { file: file.map(|(_, name)| name), env };
    let mut problems = Vec::new();
    if let Ok(table) = merged.clone().try_deserialize::<std::collections::BTreeMap<String, config::Value>>() {
        for name in table.keys().filter(|name| !SECTIONS.contains(&name.as_str())) {
            problems.push(format!(
                "{name}: there is no such section (the sections are {}){}",
                SECTIONS.join(", "),
                origin.of(name)
            ));
        }
    }
    let mut stand_ins = Vec::new();
    let mut read = Reader { merged: &merged, origin: &origin, problems: &mut problems, stand_ins: &mut stand_ins };
    let settings = Settings {
        server: read.section("server", defaults.server),
        token: read.section("token", defaults.token),
        log: read.section("log", defaults.log),
        trace: read.section("trace", defaults.trace),
        cors: read.section("cors", defaults.cors),
        rate_limit: read.section("rate_limit", defaults.rate_limit),
        reload: read.section("reload", defaults.reload),
        accounts: read.section("accounts", defaults.accounts),
        auth: read.section("auth", defaults.auth),
        policy: read.section("policy", defaults.policy),
        audit: read.section("audit", defaults.audit),
    };
    if problems.is_empty() {
        // Each section reads on its own but not all together: say so rather than nothing.
        if let Err(e) = whole(&merged) {
            problems.push(format!("configuration: {e}"));
        }
    }
    Parsed { settings: Some(settings), problems, stand_ins }
}

fn builder(
    dev: bool,
    file: Option<&str>,
    env: Option<&EnvVars>,
) -> config::ConfigBuilder<config::builder::DefaultState> {
    let mut builder =
        config::Config::builder().add_source(config::File::from_str(DEFAULT_TOML, config::FileFormat::Toml));
    if dev {
        builder = builder.add_source(config::File::from_str(DEV_TOML, config::FileFormat::Toml));
    }
    if let Some(text) = file {
        builder = builder.add_source(config::File::from_str(text, config::FileFormat::Toml));
    }
    if let Some(env) = env {
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .separator(ENV_SEPARATOR)
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("server.trusted_proxies")
                .with_list_parse_key("cors.allowed_origins")
                .with_list_parse_key("token.products")
                .source(Some(env.as_map().clone())),
        );
    }
    builder
}

fn whole(config: &config::Config) -> Result<Settings, config::ConfigError> {
    config.clone().try_deserialize()
}

/// Where a key's value came from, to name it in a problem.
struct Origin<'a> {
    file: Option<&'a str>,
    env: &'a EnvVars,
}

impl Origin<'_> {
    /// ` (set by TOKENMINT__SERVER__LISTEN)`, ` (in /etc/tokenmint.toml)` or nothing.
    fn of(&self, key: &str) -> String {
        let mut variable = String::from(ENV_PREFIX);
        for part in key.split('.') {
            variable.push_str(ENV_SEPARATOR);
            variable.push_str(&part.to_ascii_uppercase());
        }
        let set_by = self.env.as_map().keys().find(|name| {
            name.eq_ignore_ascii_case(&variable)
                || name.to_ascii_uppercase().starts_with(&format!("{variable}{ENV_SEPARATOR}"))
        });
        match (set_by, self.file) {
            (Some(name), _) => format!(" (set by {name})"),
            (None, Some(file)) => format!(" (in {file})"),
            (None, None) => String::new(),
        }
    }
}

/// Reads sections, collecting the problems.
struct Reader<'a> {
    merged: &'a config::Config,
    origin: &'a Origin<'a>,
    problems: &'a mut Vec<String>,
    stand_ins: &'a mut Vec<&'static str>,
}

impl Reader<'_> {
    /// One section, read from the merged layers; when it cannot be, each of its keys is tried
    /// alone over the defaults, every bad one is reported, and `fallback` (the defaults) stands
    /// in.
    fn section<T: DeserializeOwned>(&mut self, name: &'static str, fallback: T) -> T {
        let table = match self.merged.get_table(name) {
            Ok(table) => table,
            Err(config::ConfigError::NotFound(_)) => return fallback,
            Err(e) => {
                self.problems.push(format!("{name}: {}{}", reason(&e), self.origin.of(name)));
                self.stand_ins.push(name);
                return fallback;
            }
        };
        let error = match self.merged.get::<T>(name) {
            Ok(value) => return value,
            Err(e) => e,
        };
        let before = self.problems.len();
        let table: std::collections::BTreeMap<_, _> = table.into_iter().collect();
        for (key, value) in &table {
            let path = format!("{name}.{key}");
            let alone = builder(false, None, None).set_override(&path, value.clone()).and_then(|b| b.build());
            // Over the defaults, which read, a key that fails alone is at fault itself.
            if let Err(e) = alone.and_then(|config| config.get::<T>(name)) {
                self.problems.push(format!("{path}: {}{}", reason(&e), self.origin.of(&path)));
            }
        }
        if self.problems.len() == before {
            let key = key_of(&error).unwrap_or_else(|| name.to_owned());
            self.problems.push(format!("{key}: {}{}", reason(&error), self.origin.of(&key)));
        }
        self.stand_ins.push(name);
        fallback
    }
}

/// The key an error names (`for key \`server.listen\``), if it names one.
fn key_of(error: &config::ConfigError) -> Option<String> {
    let text = error.to_string();
    let start = text.find("for key `")? + "for key `".len();
    let end = text[start..].find('`')? + start;
    Some(text[start..end].to_owned())
}

/// The error without the key it names (the problem starts with the key already).
fn reason(error: &config::ConfigError) -> String {
    let text = error.to_string();
    match text.find(" for key `") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}
