//! Throughput of bake's layer encoders on a file: `cargo run --release -p
//! bake-store --example compress -- FILE [gzip|zstd] [level]`. Used to
//! compare with `pigz` / `zstd -T0` on the same bytes (bench/push.sh).
use std::io::{Read, Write};
use std::time::Instant;

use bake_store::layer::{Compression, Encoder};

struct Count(u64);
impl Write for Count {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut data = Vec::new();
    std::fs::File::open(&args[1])
        .and_then(|mut f| f.read_to_end(&mut data))
        .expect("read input");
    let c = match args.get(2).map(String::as_str) {
        Some("zstd") => Compression::Zstd,
        _ => Compression::Gzip,
    };
    let level = args.get(3).map(|l| l.parse().expect("level"));
    let t = Instant::now();
    let mut e = Encoder::with_level(Count(0), c, level).expect("encoder");
    for chunk in data.chunks(128 << 10) {
        e.write_all(chunk).expect("write");
    }
    let out = e.finish().expect("finish").0;
    let s = t.elapsed().as_secs_f64();
    println!(
        "{:?} {} -> {} bytes in {:.2} s: {:.0} MB/s",
        c,
        data.len(),
        out,
        s,
        data.len() as f64 / s / 1e6
    );
}
