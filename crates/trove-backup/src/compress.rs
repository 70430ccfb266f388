//! zstd compression of backup streams (see the crate doc for the choice).

use async_compression::tokio::bufread::{ZstdDecoder, ZstdEncoder};
use async_compression::Level;
use tokio::io::{AsyncRead, BufReader};

/// Value of the `compression` metadata of zstd objects.
pub const ZSTD: &str = "zstd";

/// zstd level used for backups (zstd's default: fast, with a good ratio).
pub const ZSTD_LEVEL: i32 = 3;

/// Buffer between the source and the compressor.
const BUFFER: usize = 256 * 1024;

/// `source` compressed with zstd, as a stream.
pub fn zstd_compress<R>(source: R) -> impl AsyncRead + Send + Unpin
where
    R: AsyncRead + Send + Unpin,
{
    ZstdEncoder::with_quality(
        BufReader::with_capacity(BUFFER, source),
        Level::Precise(ZSTD_LEVEL),
    )
}

/// `source` (zstd) decompressed, as a stream. A stream that is not zstd, or is cut short,
/// ends with an error.
pub fn zstd_decompress<R>(source: R) -> impl AsyncRead + Send + Unpin
where
    R: AsyncRead + Send + Unpin,
{
    let mut d = ZstdDecoder::new(BufReader::with_capacity(BUFFER, source));
    // A backup is one frame; concatenated frames are accepted as zstd's CLI does.
    d.multiple_members(true);
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn round_trip() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let mut packed = Vec::new();
        zstd_compress(&data[..])
            .read_to_end(&mut packed)
            .await
            .unwrap();
        assert!(packed.len() < data.len() / 4, "{}", packed.len());
        let mut back = Vec::new();
        zstd_decompress(&packed[..])
            .read_to_end(&mut back)
            .await
            .unwrap();
        assert_eq!(back, data);
        let mut out = Vec::new();
        assert!(zstd_decompress(&packed[..packed.len() / 2])
            .read_to_end(&mut out)
            .await
            .is_err());
    }
}
