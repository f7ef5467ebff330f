//! `bake run --mount`: Docker's comma-separated `key=value` fields, parsed once
//! here for every type. Volumes go to the volume module (they must be created and
//! seeded); binds and tmpfs become sandbox mounts directly.

use anyhow::{anyhow, bail, Context, Result};
use bake_runner::MountSpec;

use super::volume::Wanted;

/// What one `--mount` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// `type=volume` (Docker's default type): named or anonymous.
    Volume(Wanted),
    /// `type=bind` or `type=tmpfs`.
    Sandbox(MountSpec),
}

/// Parses `--mount type=bind|volume|tmpfs,…` (pure, except that a bind's source
/// must exist, as [`super::run::volume`] checks for `-v`).
///
/// # Errors
/// An unknown type or field, a field of another type (`tmpfs-size` on a bind), a
/// missing or relative target, a bind without a source, an invalid volume name.
pub fn parse(spec: &str) -> Result<Mount> {
    let mut kind = "volume";
    let (mut source, mut target, mut readonly, mut nocopy, mut size) =
        (None, None, false, None, None);
    let flag = |key: &str, value: &str| -> Result<bool> {
        match value {
            "" | "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => bail!("invalid --mount {spec:?}: {key}={value:?} is not a boolean"),
        }
    };
    for field in spec.split(',') {
        let (key, value) = field.split_once('=').unwrap_or((field, ""));
        match key {
            "type" => kind = value,
            "source" | "src" => source = Some(value.to_string()),
            "target" | "destination" | "dst" => target = Some(value.to_string()),
            "readonly" | "ro" => readonly = flag(key, value)?,
            "volume-nocopy" => nocopy = Some(flag(key, value)?),
            "tmpfs-size" => size = Some(super::run::size_bytes(value)?),
            _ => bail!("invalid --mount {spec:?}: unsupported field {key:?}"),
        }
    }
    let only = |set: bool, field: &str, of: &str| -> Result<()> {
        if set && kind != of {
            bail!("invalid --mount {spec:?}: {field} is only for type={of}");
        }
        Ok(())
    };
    only(nocopy.is_some(), "volume-nocopy", "volume")?;
    only(size.is_some(), "tmpfs-size", "tmpfs")?;
    let target = target.ok_or_else(|| anyhow!("invalid --mount {spec:?}: no target"))?;
    match kind {
        "volume" => {
            if !target.starts_with('/') {
                bail!("invalid --mount {spec:?}: the target is not absolute");
            }
            let name = source.filter(|s| !s.is_empty());
            if let Some(n) = &name {
                if !bake_store::volumes::valid_name(n) {
                    bail!(
                        "invalid --mount {spec:?}: {n:?} is not a valid volume name \
                         ([a-zA-Z0-9][a-zA-Z0-9_.-]+)"
                    );
                }
            }
            Ok(Mount::Volume(Wanted {
                name,
                target,
                readonly,
                nocopy: nocopy.unwrap_or(false),
            }))
        }
        "bind" => {
            let source = source.ok_or_else(|| anyhow!("invalid --mount {spec:?}: no source"))?;
            let ro = if readonly { ":ro" } else { "" };
            super::run::volume(&format!("{source}:{target}{ro}"))
                .map(Mount::Sandbox)
                .with_context(|| format!("invalid --mount {spec:?}"))
        }
        "tmpfs" => {
            if source.is_some() {
                bail!("invalid --mount {spec:?}: a tmpfs has no source");
            }
            if !target.starts_with('/') {
                bail!("invalid --mount {spec:?}: the target is not absolute");
            }
            Ok(Mount::Sandbox(MountSpec::Tmpfs { target, size }))
        }
        other => {
            bail!("invalid --mount {spec:?}: type {other:?} is not supported (bind, tmpfs, volume)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str, target: &str, readonly: bool) -> Mount {
        Mount::Volume(Wanted {
            name: Some(name.into()),
            target: target.into(),
            readonly,
            nocopy: false,
        })
    }

    #[test]
    fn volumes_are_the_default_type() {
        assert_eq!(
            parse("type=volume,src=data,dst=/d,readonly").unwrap(),
            named("data", "/d", true)
        );
        assert_eq!(
            parse("source=data,target=/d").unwrap(),
            named("data", "/d", false)
        );
        let Mount::Volume(anon) = parse("type=volume,dst=/d,volume-nocopy").unwrap() else {
            panic!("not a volume");
        };
        assert!(anon.name.is_none() && anon.nocopy);
        assert!(parse("type=volume,src=../x,dst=/d").is_err());
        assert!(parse("type=volume,src=data").is_err());
        assert!(parse("type=volume,src=data,dst=/d,bogus=1").is_err());
    }

    #[test]
    fn binds_and_tmpfs() {
        assert_eq!(
            parse("type=tmpfs,dst=/t,tmpfs-size=4k").unwrap(),
            Mount::Sandbox(MountSpec::Tmpfs {
                target: "/t".into(),
                size: Some(4096)
            })
        );
        let tmp = std::env::temp_dir();
        let spec = format!("type=bind,src={},target=/m,readonly", tmp.display());
        assert_eq!(
            parse(&spec).unwrap(),
            Mount::Sandbox(MountSpec::Bind {
                source: tmp,
                target: "/m".into(),
                readonly: true
            })
        );
        assert!(parse("type=bind,target=/v").is_err());
        assert!(parse("type=tmpfs").is_err());
        assert!(parse("type=tmpfs,target=/t,bogus=1").is_err());
        assert!(parse("type=npipe,target=/t").is_err());
    }

    #[test]
    fn fields_of_another_type_are_refused() {
        let e = parse("type=bind,src=/tmp,dst=/d,tmpfs-size=1k").unwrap_err();
        assert!(
            e.to_string().contains("tmpfs-size is only for type=tmpfs"),
            "{e}"
        );
        let e = parse("type=tmpfs,dst=/d,volume-nocopy").unwrap_err();
        assert!(
            e.to_string()
                .contains("volume-nocopy is only for type=volume"),
            "{e}"
        );
    }
}
