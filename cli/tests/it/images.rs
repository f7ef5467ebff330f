//! images, tag, rmi and inspect: the local store as a user sees it.

use crate::harness::{build_case, setup};

#[test]
fn images_tag_rmi_and_inspect() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    build_case(&bake, "two-stage", "app:1", &base, &[]);

    let images = bake.ok(&["images"]);
    let header = images.stdout.lines().next().unwrap_or("");
    for col in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(col), "no {col} column:\n{images}");
    }
    let row = images
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some("app"))
        .unwrap_or_else(|| panic!("app:1 not listed:\n{images}"));
    assert_eq!(row.split_whitespace().nth(1), Some("1"), "{row}");

    bake.ok(&["tag", "app:1", "app:latest"]);
    let images = bake.ok(&["images"]);
    assert!(
        images
            .stdout
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["app", "latest"])),
        "{images}"
    );
    assert_eq!(
        bake.ok(&["run", "--rm", "app:latest"]).stdout,
        "built by RUN\nhello from the context\n"
    );

    bake.ok(&["rmi", "app:latest"]);
    let images = bake.ok(&["images"]);
    assert!(
        !images
            .stdout
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["app", "latest"])),
        "{images}"
    );
    assert_ne!(bake.run(&["run", "--rm", "app:latest"]).code, 0);

    let inspect = bake.ok(&["inspect", "app:1"]);
    let v: serde_json::Value = serde_json::from_str(&inspect.stdout)
        .unwrap_or_else(|e| panic!("inspect is not JSON ({e}):\n{inspect}"));
    let img = &v[0];
    assert!(
        img["Id"].as_str().unwrap_or("").starts_with("sha256:"),
        "{inspect}"
    );
    let config = &img["Config"];
    assert_eq!(config["Cmd"], serde_json::json!(["cat", "/app/result.txt"]));
    assert_eq!(config["WorkingDir"], "/app");
    assert!(
        config["ExposedPorts"].get("8080/tcp").is_some(),
        "{inspect}"
    );
    assert_eq!(config["Labels"]["org.example.case"], "two-stage");
    let env: Vec<&str> = config["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    assert!(env.contains(&"GREETING=hello"), "{env:?}");
    assert!(env.iter().any(|e| e.starts_with("PATH=")), "{env:?}");
    let diff_ids = img["RootFS"]["Layers"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    assert!(
        diff_ids >= 2,
        "base layer plus COPY/WORKDIR layers expected:\n{inspect}"
    );
}
