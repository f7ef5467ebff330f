//! Layer compression: the media types, sniffing, and streaming
//! encoders/decoders.

use std::io::{self, BufRead, BufReader, Read, Write};

use serde::{Deserialize, Serialize};

use crate::oci::media_types;

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip: what every registry and runtime reads; the default for push.
    Gzip,
    /// zstd: smaller and much faster to decompress; needs a recent runtime.
    Zstd,
    /// The plain tar (docker-archive, OCI layouts for local use).
    Uncompressed,
}

/// gzip's magic bytes.
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
/// zstd's frame magic (little-endian 0xFD2FB528).
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// flate2's default; what docker and BuildKit use.
const GZIP_LEVEL: u32 = 6;
/// zstd's default level; what BuildKit uses.
const ZSTD_LEVEL: i32 = 3;

impl Compression {
    /// The OCI layer media type bake writes for this compression.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => media_types::OCI_LAYER_GZIP,
            Compression::Zstd => media_types::OCI_LAYER_ZSTD,
            Compression::Uncompressed => media_types::OCI_LAYER_TAR,
        }
    }

    /// The compression a layer media type (OCI or Docker, distributable or
    /// not) names; `None` for anything that is not a layer tar.
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        if media_type.ends_with("+gzip") || media_type.ends_with(".tar.gzip") {
            Some(Compression::Gzip)
        } else if media_type.ends_with("+zstd") || media_type.ends_with(".tar.zstd") {
            Some(Compression::Zstd)
        } else if media_type.ends_with(".tar") {
            Some(Compression::Uncompressed)
        } else {
            None
        }
    }

    /// The compression the first bytes of a stream reveal (plain tar when
    /// neither magic matches).
    pub fn sniff(prefix: &[u8]) -> Compression {
        if prefix.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if prefix.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::Uncompressed
        }
    }
}

/// Wraps `input` in the decoder its media type names; for plain-tar or
/// unknown media types (`None` included), the magic bytes decide, so a
/// mislabelled or foreign blob still unpacks.
///
/// # Errors
/// When the first bytes cannot be read or the zstd decoder cannot start.
pub fn decompress<'a>(
    input: impl Read + 'a,
    media_type: Option<&str>,
) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut input = BufReader::with_capacity(256 * 1024, input);
    let declared = media_type.and_then(Compression::from_media_type);
    let compression = match declared {
        Some(c @ (Compression::Gzip | Compression::Zstd)) => c,
        _ => Compression::sniff(input.fill_buf()?),
    };
    let reader: Box<dyn Read + 'a> = match compression {
        // Multi-member: pigz and parallel gzip writers emit several members.
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
        Compression::Uncompressed => Box::new(input),
    };
    Ok((compression, reader))
}

/// A streaming compressor; [`Encoder::finish`] writes the trailer.
pub enum Encoder<W: Write> {
    /// gzip.
    Gzip(flate2::write::GzEncoder<W>),
    /// zstd.
    Zstd(zstd::stream::write::Encoder<'static, W>),
    /// Pass-through.
    Plain(W),
}

impl<W: Write> Encoder<W> {
    /// Starts compressing into `out`.
    ///
    /// # Errors
    /// When the zstd encoder cannot be created.
    pub fn new(out: W, compression: Compression) -> io::Result<Encoder<W>> {
        Ok(match compression {
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::new(GZIP_LEVEL),
            )),
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?),
            Compression::Uncompressed => Encoder::Plain(out),
        })
    }

    /// Flushes the compressed trailer and returns the inner writer.
    ///
    /// # Errors
    /// When the trailer cannot be written.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
            Encoder::Plain(w) => Ok(w),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Plain(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
            Encoder::Plain(w) => w.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(c: Compression, media_type: Option<&str>) {
        let data = b"some layer bytes ".repeat(1000);
        let mut enc = Encoder::new(Vec::new(), c).unwrap();
        enc.write_all(&data).unwrap();
        let blob = enc.finish().unwrap();
        let (found, mut r) = decompress(&blob[..], media_type).unwrap();
        assert_eq!(found, c);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn every_compression_round_trips_by_media_type_and_by_magic() {
        for c in [
            Compression::Gzip,
            Compression::Zstd,
            Compression::Uncompressed,
        ] {
            round_trip(c, Some(c.media_type()));
            round_trip(c, None);
            // A blob labelled as a plain tar is still sniffed.
            round_trip(c, Some(media_types::OCI_LAYER_TAR));
        }
    }

    #[test]
    fn media_types_map_both_ways() {
        assert_eq!(
            Compression::from_media_type(media_types::DOCKER_LAYER_GZIP),
            Some(Compression::Gzip)
        );
        assert_eq!(
            Compression::from_media_type("application/vnd.docker.image.rootfs.diff.tar"),
            Some(Compression::Uncompressed)
        );
        assert_eq!(Compression::from_media_type(media_types::OCI_CONFIG), None);
        for c in [
            Compression::Gzip,
            Compression::Zstd,
            Compression::Uncompressed,
        ] {
            assert_eq!(Compression::from_media_type(c.media_type()), Some(c));
        }
    }
}
