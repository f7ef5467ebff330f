//! `bake images`: the local images as `docker images` shows them.
//!
//! Columns, widths and the humanised CREATED/SIZE follow Docker (go-units'
//! `HumanDuration` and decimal `HumanSizeWithPrecision(…, 3)`), so scripts
//! and eyes used to Docker read it the same way.

use std::io::Write;

use anyhow::{Context, Result};
use bake_store::images::ImageSummary;
use bake_store::reference::Reference;
use chrono::{DateTime, Utc};

use crate::app::{Global, ImagesArgs};

/// Lists images on stdout.
pub fn run(global: &Global, args: &ImagesArgs) -> Result<()> {
    let store = super::open_store(global)?;
    let mut images = store.list_images().context("listing images")?;
    if let Some(filter) = &args.repository {
        images.retain(|i| matches_filter(i.reference.as_ref(), filter));
    }
    // Newest first, like docker; untagged images after tagged ones of the same age.
    images.sort_by(|a, b| {
        b.created
            .cmp(&a.created)
            .then_with(|| a.reference.is_none().cmp(&b.reference.is_none()))
            .then_with(|| familiar(a).cmp(&familiar(b)))
    });
    let mut out = std::io::stdout().lock();
    if args.quiet {
        let mut seen = Vec::new();
        for image in &images {
            if !seen.contains(&image.id) {
                writeln!(out, "{}", short_id(&image.id, args.no_trunc))?;
                seen.push(image.id.clone());
            }
        }
        return Ok(());
    }
    let now = Utc::now();
    let mut rows = vec![[
        "REPOSITORY".to_string(),
        "TAG".to_string(),
        "IMAGE ID".to_string(),
        "CREATED".to_string(),
        "SIZE".to_string(),
    ]];
    for image in &images {
        let (repository, tag) = split_name(image.reference.as_ref());
        let created = image
            .created
            .as_deref()
            .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
            .map_or_else(
                || "N/A".to_string(),
                |c| human_ago(now.signed_duration_since(c).num_seconds()),
            );
        rows.push([
            repository,
            tag,
            short_id(&image.id, args.no_trunc),
            created,
            human_size(image.size),
        ]);
    }
    out.write_all(table(&rows).as_bytes())?;
    Ok(())
}

fn familiar(image: &ImageSummary) -> String {
    image
        .reference
        .as_ref()
        .map(Reference::familiar)
        .unwrap_or_default()
}

/// `docker images NAME[:TAG]`: a repository, optionally with its tag.
fn matches_filter(reference: Option<&Reference>, filter: &str) -> bool {
    let (repository, tag) = split_name(reference);
    match filter.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
        Some((repo, t)) => repository == repo && tag == t,
        None => repository == filter,
    }
}

/// REPOSITORY and TAG columns: the familiar name and the tag, or `<none>`.
fn split_name(reference: Option<&Reference>) -> (String, String) {
    match reference {
        Some(r) => (
            r.familiar_name(),
            r.tag.clone().unwrap_or_else(|| "<none>".to_string()),
        ),
        None => ("<none>".into(), "<none>".into()),
    }
}

/// The IMAGE ID column: 12 hex digits, or the full digest with `--no-trunc`.
fn short_id(id: &bake_store::oci::Digest, no_trunc: bool) -> String {
    if no_trunc {
        id.to_string()
    } else {
        id.short().to_string()
    }
}

/// Left-aligned columns separated by at least three spaces (Docker's
/// tabwriter settings), no trailing spaces.
pub fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < N {
                let pad = widths[i] - cell.chars().count() + 3;
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Docker's CREATED column: go-units `HumanDuration` plus " ago".
pub fn human_ago(seconds: i64) -> String {
    let s = seconds.max(0);
    let minutes = s / 60;
    // go-units rounds hours to the nearest one.
    let hours = (s as f64 / 3600.0 + 0.5) as i64;
    let text = if s < 1 {
        "Less than a second".to_string()
    } else if s == 1 {
        "1 second".to_string()
    } else if s < 60 {
        format!("{s} seconds")
    } else if minutes == 1 {
        "About a minute".to_string()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".to_string()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours / 24 / 365)
    };
    format!("{text} ago")
}

/// Docker's SIZE column: decimal units with three significant digits
/// (`7.8kB`, `4.26MB`, `1.24GB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    loop {
        while value >= 1000.0 && unit + 1 < UNITS.len() {
            value /= 1000.0;
            unit += 1;
        }
        let text = significant(value, 3);
        // 999.95kB rounds to "1000": show it as 1MB instead.
        if text == "1000" && unit + 1 < UNITS.len() {
            value = 1000.0;
            continue;
        }
        return format!("{text}{}", UNITS[unit]);
    }
}

/// `%.3g` without exponents for values below 1000: `4.26`, `77.8`, `123`,
/// `7.8` (trailing zeros dropped).
fn significant(value: f64, digits: i32) -> String {
    if value == 0.0 {
        return "0".into();
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = (digits - 1 - magnitude).max(0) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(7_800), "7.8kB");
        assert_eq!(human_size(1_200_000), "1.2MB");
        assert_eq!(human_size(4_261_234), "4.26MB");
        assert_eq!(human_size(77_812_345), "77.8MB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(human_size(1_240_000_000), "1.24GB");
        assert_eq!(human_size(999_999), "1MB");
    }

    #[test]
    fn ages_read_like_docker() {
        assert_eq!(human_ago(0), "Less than a second ago");
        assert_eq!(human_ago(1), "1 second ago");
        assert_eq!(human_ago(59), "59 seconds ago");
        assert_eq!(human_ago(60), "About a minute ago");
        assert_eq!(human_ago(150), "2 minutes ago");
        assert_eq!(human_ago(3600), "About an hour ago");
        assert_eq!(human_ago(3 * 3600), "3 hours ago");
        assert_eq!(human_ago(3 * 86400), "3 days ago");
        assert_eq!(human_ago(20 * 86400), "2 weeks ago");
        assert_eq!(human_ago(90 * 86400), "3 months ago");
        assert_eq!(human_ago(800 * 86400), "2 years ago");
        assert_eq!(human_ago(-5), "Less than a second ago");
    }

    #[test]
    fn table_pads_columns_by_three_spaces() {
        let rows = [
            ["REPOSITORY".to_string(), "TAG".to_string()],
            ["app".to_string(), "1".to_string()],
        ];
        assert_eq!(table(&rows), "REPOSITORY   TAG\napp          1\n");
    }

    #[test]
    fn names_split_at_the_tag_not_the_port() {
        let r: Reference = "localhost:5000/team/app:1".parse().unwrap();
        assert_eq!(
            split_name(Some(&r)),
            ("localhost:5000/team/app".into(), "1".into())
        );
        let r: Reference = "app:1".parse().unwrap();
        assert_eq!(split_name(Some(&r)), ("app".into(), "1".into()));
        assert_eq!(split_name(None), ("<none>".into(), "<none>".into()));
    }
}
