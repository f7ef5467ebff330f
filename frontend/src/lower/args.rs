//! ARG scoping.
//!
//! - Global ARGs (before the first FROM) are visible to FROM lines only,
//!   and inside a stage only when the stage redeclares them (`ARG NAME`
//!   without a default then takes the global value).
//! - `--build-arg` overrides any declared default; an undeclared build arg
//!   is invisible (and warned about), except the proxy variables, which
//!   reach RUN without a declaration, like BuildKit.
//! - The platform args (`TARGETPLATFORM`, `BUILDARCH`, …) are predefined:
//!   usable in FROM directly, in a stage after `ARG NAME`.
//! - Inside a stage, ENV beats ARG of the same name.

use std::collections::{BTreeMap, BTreeSet};

use bake_solver::ir::Platform;

use super::{lookup_args, platform_string, BuildOptions};
use crate::ast::ArgDecl;
use crate::error::{Error, ErrorKind, Source};
use crate::expand;

/// An ARG's value: `None` when declared without a value.
pub(crate) type ArgValue = Option<String>;

/// The platform args every stage may use without declaring them.
const PLATFORM_ARGS: &[&str] = &[
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
];

/// Build args that need no ARG declaration to be accepted: the platform args
/// and the proxy variables.
pub(crate) fn is_predefined(name: &str) -> bool {
    PLATFORM_ARGS.contains(&name) || PROXY_ARGS.contains(&name)
}

/// The proxy variables, passed to RUN when given as build args.
pub(crate) const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The values of the predefined platform args.
pub(crate) fn platform_args(target: &Platform) -> BTreeMap<String, String> {
    let build = Platform::host();
    let mut m = BTreeMap::new();
    for (prefix, p) in [("TARGET", target), ("BUILD", &build)] {
        m.insert(format!("{prefix}PLATFORM"), platform_string(p));
        m.insert(format!("{prefix}OS"), p.os.clone());
        m.insert(format!("{prefix}ARCH"), p.architecture.clone());
        m.insert(
            format!("{prefix}VARIANT"),
            p.variant.clone().unwrap_or_default(),
        );
    }
    m
}

/// The global scope: ARGs declared before the first FROM.
#[derive(Clone, Debug)]
pub(crate) struct MetaArgs {
    /// Declared global ARGs, in order.
    pub args: Vec<(String, ArgValue)>,
    /// Predefined platform args.
    pub platform: BTreeMap<String, String>,
    build_args: BTreeMap<String, String>,
}

impl MetaArgs {
    pub fn new(opts: &BuildOptions) -> MetaArgs {
        MetaArgs {
            args: Vec::new(),
            platform: platform_args(&opts.platform),
            build_args: opts.build_args.clone(),
        }
    }

    /// Value in FROM lines: declared global ARGs, then predefined ones.
    pub fn lookup(&self, name: &str) -> Option<String> {
        if self.args.iter().any(|(n, _)| n == name) {
            return lookup_args(&self.args, name);
        }
        self.platform.get(name).cloned()
    }

    /// Declares a global ARG.
    ///
    /// # Errors
    /// The default does not expand.
    pub fn declare(
        &mut self,
        src: &Source<'_>,
        escape: char,
        decl: &ArgDecl,
        consumed: &mut BTreeSet<String>,
    ) -> Result<(), Error> {
        let value = match self.build_args.get(&decl.name) {
            Some(v) => {
                consumed.insert(decl.name.clone());
                Some(v.clone())
            }
            None => match &decl.default {
                Some(d) => Some(expand::word(d, escape, &|n| self.lookup(n)).map_err(|e| {
                    src.error(ErrorKind::Expansion, decl.span.clone(), e.to_string())
                })?),
                // As BuildKit's `buildMetaArgs`: a declaration without a
                // value does not replace a value the name already has (an
                // earlier global ARG, or a predefined platform arg).
                None => self.lookup(&decl.name),
            },
        };
        self.args.retain(|(n, _)| n != &decl.name);
        self.args.push((decl.name.clone(), value));
        Ok(())
    }

    /// Value of `ARG name` inside a stage, given its expanded default.
    pub fn stage_value(&self, name: &str, default: Option<String>) -> ArgValue {
        if let Some(v) = self.build_args.get(name) {
            return Some(v.clone());
        }
        if default.is_some() {
            return default;
        }
        if self.args.iter().any(|(n, _)| n == name) {
            return lookup_args(&self.args, name);
        }
        self.platform.get(name).cloned()
    }

    /// Proxy variables given as build args.
    pub fn proxies(&self) -> impl Iterator<Item = (&String, &String)> {
        self.build_args
            .iter()
            .filter(|(k, _)| PROXY_ARGS.contains(&k.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(name: &str, default: Option<&str>) -> ArgDecl {
        ArgDecl {
            name: name.into(),
            default: default.map(Into::into),
            span: 0..1,
        }
    }

    #[test]
    fn scoping() {
        let mut opts = BuildOptions {
            platform: Platform {
                os: "linux".into(),
                architecture: "arm".into(),
                variant: Some("v7".into()),
            },
            ..BuildOptions::default()
        };
        opts.build_args.insert("OVR".into(), "cli".into());
        let mut meta = MetaArgs::new(&opts);
        let src = Source {
            file: "D",
            text: "x",
        };
        let mut consumed = BTreeSet::new();
        for d in [
            decl("A", Some("a")),
            decl("B", Some("${A}-b")),
            decl("OVR", Some("default")),
            decl("NODEF", None),
        ] {
            meta.declare(&src, '\\', &d, &mut consumed).unwrap();
        }
        assert_eq!(meta.lookup("B").as_deref(), Some("a-b"));
        assert_eq!(meta.lookup("OVR").as_deref(), Some("cli"));
        assert_eq!(meta.lookup("NODEF"), None);
        assert_eq!(
            meta.lookup("TARGETPLATFORM").as_deref(),
            Some("linux/arm/v7")
        );
        assert_eq!(meta.lookup("TARGETVARIANT").as_deref(), Some("v7"));
        assert!(consumed.contains("OVR"));
        // in a stage
        assert_eq!(meta.stage_value("A", None).as_deref(), Some("a"));
        assert_eq!(
            meta.stage_value("A", Some("own".into())).as_deref(),
            Some("own")
        );
        assert_eq!(
            meta.stage_value("OVR", Some("own".into())).as_deref(),
            Some("cli")
        );
        assert_eq!(meta.stage_value("TARGETARCH", None).as_deref(), Some("arm"));
        assert_eq!(meta.stage_value("OTHER", None), None);
    }

    #[test]
    fn global_arg_without_value_keeps_the_value_it_had() {
        let mut meta = MetaArgs::new(&BuildOptions::default());
        let src = Source {
            file: "D",
            text: "x",
        };
        let mut consumed = BTreeSet::new();
        for d in [
            decl("TARGETARCH", None),
            decl("A", Some("a")),
            decl("A", None),
        ] {
            meta.declare(&src, '\\', &d, &mut consumed).unwrap();
        }
        let arch = Platform::host().architecture;
        assert_eq!(meta.lookup("TARGETARCH"), Some(arch.clone()));
        assert_eq!(meta.stage_value("TARGETARCH", None), Some(arch));
        assert_eq!(meta.lookup("A").as_deref(), Some("a"));
        assert_eq!(meta.stage_value("A", None).as_deref(), Some("a"));
    }
}
