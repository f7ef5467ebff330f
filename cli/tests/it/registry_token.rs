//! A registry that wants bearer tokens (distribution's `auth: token`) from
//! the test [`TokenIssuer`]: login, push and pull with tokens scoped per
//! repository, a wrong password, a pull-only user, and tokens that the
//! registry rejects as expired.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::harness::{
    busybox_layout, missing_prerequisites, skip, Bake, Output, Registry, TokenIssuer,
    REGISTRY_PASSWORD,
};

/// `bake ARGS…` with `DOCKER_CONFIG=config` and `stdin` as input.
fn run(bake: &Bake, config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = bake
        .cmd()
        .env("DOCKER_CONFIG", config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(bake: &Bake, config: &Path, args: &[&str]) -> Output {
    let out = run(bake, config, args, None);
    assert_eq!(out.code, 0, "bake {args:?}:\n{out}");
    out
}

fn login(bake: &Bake, config: &Path, host: &str, user: &str, password: &str) -> Output {
    run(
        bake,
        config,
        &["login", "-u", user, "--password-stdin", host],
        Some(&format!("{password}\n")),
    )
}

/// A token registry, a store holding busybox tagged `ADDR/<repo>:1`, and an
/// empty docker config dir. `None`: skipped.
fn start(repo: &str) -> Option<(Registry, TokenIssuer, Bake, String, tempfile::TempDir)> {
    if skip(missing_prerequisites()) {
        return None;
    }
    let (reg, issuer) = Registry::start_with_token_auth("tester");
    let bake = Bake::new();
    let out = bake.ok(&["load", "-i", busybox_layout().to_str().unwrap()]);
    let id = out
        .stdout
        .trim()
        .trim_start_matches("Loaded image ID: ")
        .to_string();
    let name = format!("{}/{repo}:1", reg.addr);
    bake.ok(&["tag", &id, &name]);
    Some((reg, issuer, bake, name, tempfile::tempdir().unwrap()))
}

#[test]
fn login_push_and_pull_with_bearer_tokens_scoped_per_repository() {
    let Some((reg, issuer, bake, name, config)) = start("team/tok") else {
        return;
    };
    let cfg = config.path();

    // Anonymous: the issuer grants nothing, the registry refuses.
    let out = run(&bake, cfg, &["push", &name], None);
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.stderr.contains("denied") && out.stderr.contains("bake login"),
        "{out}"
    );

    // A wrong password is refused by the token service, and said so.
    let bad = login(&bake, cfg, &reg.addr, "tester", "wrong");
    assert_ne!(bad.code, 0, "{bad}");
    assert!(
        bad.stderr
            .contains("refused the credentials of user `tester`"),
        "{bad}"
    );
    assert!(!cfg.join("config.json").exists());

    let good = login(&bake, cfg, &reg.addr, "tester", REGISTRY_PASSWORD);
    assert_eq!(good.code, 0, "{good}");
    assert!(good.stdout.contains("Login Succeeded"), "{good}");

    ok(&bake, cfg, &["push", &name]);
    let fresh = Bake::new();
    ok(&fresh, cfg, &["pull", &name]);
    assert_eq!(
        ok(&fresh, cfg, &["run", "--rm", &name, "echo", "in"]).stdout,
        "in\n"
    );

    // The push asked for pull,push on its repository; the pull only for
    // pull; nothing asked for another repository.
    let requests = issuer.requests();
    let issued: Vec<_> = requests
        .iter()
        .filter(|r| r.issued && r.user.as_deref() == Some("tester"))
        .collect();
    assert!(
        issued.iter().any(|r| r
            .scopes
            .iter()
            .any(|s| s == "repository:team/tok:pull,push")),
        "{requests:?}"
    );
    assert!(
        issued
            .iter()
            .any(|r| r.scopes == ["repository:team/tok:pull"]),
        "{requests:?}"
    );
    assert!(
        issued
            .iter()
            .flat_map(|r| &r.scopes)
            .all(|s| s.starts_with("repository:team/tok:")),
        "{requests:?}"
    );

    // Another client trusts the same registry and issuer: the image bake
    // pushed is readable with skopeo's own token handling.
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--creds"])
        .arg(format!("tester:{REGISTRY_PASSWORD}"))
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_pull_only_user_pulls_but_a_push_is_denied() {
    let Some((reg, issuer, bake, name, config)) = start("team/ro") else {
        return;
    };
    let cfg = config.path();
    assert_eq!(
        login(&bake, cfg, &reg.addr, "tester", REGISTRY_PASSWORD).code,
        0
    );
    ok(&bake, cfg, &["push", &name]);

    issuer.add_user("reader", "readpw", &["pull"]);
    let reader_config = tempfile::tempdir().unwrap();
    let rcfg = reader_config.path();
    let fresh = Bake::new();
    let out = login(&fresh, rcfg, &reg.addr, "reader", "readpw");
    assert_eq!(out.code, 0, "{out}");
    ok(&fresh, rcfg, &["pull", &name]);

    let other = format!("{}/team/ro:2", reg.addr);
    ok(&fresh, rcfg, &["tag", &name, &other]);
    let out = run(&fresh, rcfg, &["push", &other], None);
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.stderr
            .contains("denied: requested access to the resource is denied"),
        "{out}"
    );
    assert!(out.stderr.contains("user `reader` may not"), "{out}");
}

#[test]
fn a_token_the_registry_rejects_as_expired_is_fetched_again() {
    let Some((reg, issuer, bake, name, config)) = start("team/exp") else {
        return;
    };
    let cfg = config.path();
    assert_eq!(
        login(&bake, cfg, &reg.addr, "tester", REGISTRY_PASSWORD).code,
        0
    );
    let before = issuer.requests().len();
    // The first token of the push is already expired: the registry answers
    // `invalid_token` and bake must ask again instead of failing.
    issuer.expire_next(1);
    ok(&bake, cfg, &["push", &name]);
    let during_push = issuer.requests().len() - before;
    assert!(during_push >= 2, "{:?}", issuer.requests());

    let before = issuer.requests().len();
    issuer.expire_next(1);
    let fresh = Bake::new();
    ok(&fresh, cfg, &["pull", &name]);
    assert!(
        issuer.requests().len() - before >= 2,
        "{:?}",
        issuer.requests()
    );
}

#[test]
fn a_mount_asks_for_pull_on_the_source_repository() {
    let Some((reg, issuer, bake, name, config)) = start("team/mnt-a") else {
        return;
    };
    let cfg = config.path();
    assert_eq!(
        login(&bake, cfg, &reg.addr, "tester", REGISTRY_PASSWORD).code,
        0
    );
    ok(&bake, cfg, &["push", &name]);
    let target = format!("{}/team/mnt-b:1", reg.addr);
    ok(&bake, cfg, &["tag", &name, &target]);
    let out = ok(&bake, cfg, &["push", &target]);
    assert!(out.stdout.contains("Mounted from team/mnt-a"), "{out}");
    assert!(!out.stdout.contains(": Pushed"), "{out}");
    let requests = issuer.requests();
    assert!(
        requests.iter().any(|r| r.issued
            && r.scopes
                .iter()
                .any(|s| s == "repository:team/mnt-b:pull,push")
            && r.scopes.iter().any(|s| s == "repository:team/mnt-a:pull")),
        "{requests:?}"
    );
}
