//! A registry that wants basic auth (htpasswd): push, pull and `FROM` use
//! the credentials of `$DOCKER_CONFIG/config.json`, which `bake login`
//! writes and `bake logout` removes.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use base64_like::encode;

use crate::harness::{
    base_arg, busybox_layout, context, missing_prerequisites, skip, Bake, Output, Registry,
    REGISTRY_PASSWORD,
};

/// Tiny base64 (the test crate has no base64 dependency).
mod base64_like {
    pub fn encode(input: &[u8]) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in input.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

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

#[test]
fn push_pull_and_from_with_basic_auth_and_login() {
    if skip(missing_prerequisites()) {
        return;
    }
    assert_eq!(encode(b"tester:secret"), "dGVzdGVyOnNlY3JldA==");
    let reg = Registry::start_with_basic_auth("tester");
    let config = tempfile::tempdir().unwrap();
    let cfg = config.path();
    let bake = Bake::new();
    let out = bake.ok(&["load", "-i", busybox_layout().to_str().unwrap()]);
    let id = out
        .stdout
        .trim()
        .trim_start_matches("Loaded image ID: ")
        .to_string();
    let name = format!("{}/team/bb:1", reg.addr);
    bake.ok(&["tag", &id, &name]);

    // No credentials: refused.
    let out = run(&bake, cfg, &["push", &name], None);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.to_lowercase().contains("unauthorized"), "{out}");

    // A config.json written by hand (docker's format) is used.
    std::fs::write(
        cfg.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            reg.addr,
            encode(format!("tester:{REGISTRY_PASSWORD}").as_bytes())
        ),
    )
    .unwrap();
    ok(&bake, cfg, &["push", &name]);
    let fresh = Bake::new();
    ok(&fresh, cfg, &["pull", &name]);
    assert_eq!(
        ok(&fresh, cfg, &["run", "--rm", &name, "echo", "in"]).stdout,
        "in\n"
    );

    // logout forgets; a wrong password does not log in; the right one does.
    let out = ok(&bake, cfg, &["logout", &reg.addr]);
    assert!(out.stdout.contains("Removing login credentials"), "{out}");
    let fresh = Bake::new();
    assert_ne!(run(&fresh, cfg, &["pull", &name], None).code, 0);
    let args = [
        "login",
        "-u",
        "tester",
        "--password-stdin",
        reg.addr.as_str(),
    ];
    let bad = run(&fresh, cfg, &args, Some("wrong\n"));
    assert_ne!(bad.code, 0, "{bad}");
    let good = run(&fresh, cfg, &args, Some(&format!("{REGISTRY_PASSWORD}\n")));
    assert_eq!(good.code, 0, "{good}");
    assert!(good.stdout.contains("Login Succeeded"), "{good}");
    let saved = std::fs::read_to_string(cfg.join("config.json")).unwrap();
    assert!(
        saved.contains(&reg.addr) && saved.contains("\"auth\""),
        "{saved}"
    );

    // FROM a private base builds with the saved credentials.
    let ctx = context("two-stage");
    let [a, b] = base_arg(&name);
    let out = ok(
        &fresh,
        cfg,
        &[
            "build",
            "--progress=plain",
            "-t",
            "app:auth",
            &a,
            &b,
            ctx.path().to_str().unwrap(),
        ],
    );
    let _ = out;
    assert_eq!(
        ok(&fresh, cfg, &["run", "--rm", "app:auth"]).stdout,
        "built by RUN\nhello from the context\n"
    );
}
