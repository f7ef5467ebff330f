//! The cache: a second identical build reruns nothing; a changed file reruns
//! exactly what depends on it.

use crate::harness::{build_case, layer_steps, rebuild, setup};

#[test]
fn a_second_identical_build_reports_every_step_cached() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let (ctx, first) = build_case(&bake, "two-stage", "app:1", &base, &[]);
    let steps = layer_steps(&first.stderr);
    assert!(steps.len() >= 4, "expected the RUN/COPY steps in:\n{first}");
    assert!(
        steps.iter().all(|s| !s.2),
        "a cold build reported CACHED:\n{first}"
    );

    let second = rebuild(&bake, &ctx, "app:1", &base);
    let steps = layer_steps(&second.stderr);
    assert!(
        steps.len() >= 4,
        "expected the RUN/COPY steps in:\n{second}"
    );
    for (num, instr, cached) in &steps {
        assert!(cached, "step #{num} {instr} was not CACHED:\n{second}");
    }
    // a RUN that ran would have printed output lines `#N 0.123 …`
    let ran: Vec<&str> = second
        .stderr
        .lines()
        .filter(|l| {
            let mut w = l.split_whitespace();
            w.next().is_some_and(|n| n.starts_with('#'))
                && w.next().is_some_and(|t| t.parse::<f64>().is_ok())
        })
        .collect();
    assert!(
        ran.is_empty(),
        "a step produced output again: {ran:?}\n{second}"
    );
    let run = bake.ok(&["run", "--rm", "app:1"]);
    assert_eq!(run.stdout, "built by RUN\nhello from the context\n");
}

#[test]
fn changing_a_context_file_reruns_its_copy_and_what_follows() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let (ctx, _) = build_case(&bake, "two-stage", "app:1", &base, &[]);
    std::fs::write(ctx.path().join("greeting.txt"), "changed\n").unwrap();
    let again = rebuild(&bake, &ctx, "app:1", &base);
    let steps = layer_steps(&again.stderr);
    let copy = steps
        .iter()
        .find(|s| s.1.starts_with("COPY greeting.txt"))
        .unwrap_or_else(|| panic!("no COPY greeting.txt step in:\n{again}"));
    assert!(!copy.2, "COPY of a changed file was CACHED:\n{again}");
    let run = bake.ok(&["run", "--rm", "app:1"]);
    assert_eq!(run.stdout, "built by RUN\nchanged\n");
}

#[test]
fn touching_a_file_without_changing_it_keeps_the_cache() {
    let Some((_reg, base, bake)) = setup() else {
        return;
    };
    let (ctx, _) = build_case(&bake, "two-stage", "app:1", &base, &[]);
    // same content, new mtime: content keys must not see it
    let f = ctx.path().join("greeting.txt");
    let body = std::fs::read(&f).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&f, body).unwrap();
    let again = rebuild(&bake, &ctx, "app:1", &base);
    for (num, instr, cached) in layer_steps(&again.stderr) {
        assert!(cached, "step #{num} {instr} reran after a touch:\n{again}");
    }
}
