//! Seeds the scale case of `scripts/bench.sh scale`: a pool of 300 small images in the
//! source registry, and 50 charts × 4 versions (chart directories to package), each version
//! referencing 8 images of the pool. Prints the image references of each chart version,
//! `chart version image…` per line.
//!
//! Usage: cargo run --release --example bench_scale_seed -- SOURCE_ADDR OUT_DIR

use lazyoci::testkit::{charts, images};

const POOL: usize = 300;
const CHARTS: usize = 50;
const VERSIONS: usize = 4;
const IMAGES_PER_VERSION: usize = 8;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lazyoci::install_crypto_provider();
    let args: Vec<String> = std::env::args().collect();
    let [_, src, out] = args.as_slice() else {
        anyhow::bail!("usage: bench_scale_seed SOURCE_ADDR OUT_DIR");
    };
    let out = std::path::Path::new(out);
    let mut pool = Vec::new();
    // Small single-layer images (16 KiB of data each), pushed 8 at a time.
    for chunk in (0..POOL as u64).collect::<Vec<_>>().chunks(8) {
        let pushed = futures::future::try_join_all(chunk.iter().map(|&i| {
            let repo = format!("pool/img-{i:03}");
            async move {
                images::image(
                    src,
                    &repo,
                    "1.0",
                    &[60_000 + i],
                    16 << 10,
                    i % 2 == 0,
                    "amd64",
                )
                .await
            }
        }))
        .await?;
        pool.extend(pushed.iter().map(|s| s.reference(src)));
    }
    for c in 0..CHARTS {
        for v in 0..VERSIONS {
            let version = format!("1.{v}.0");
            // Neighbouring versions share most images, as real releases do.
            let refs: Vec<String> = (0..IMAGES_PER_VERSION)
                .map(|k| pool[(c * 6 + v * 2 + k) % POOL].clone())
                .collect();
            let name = format!("scale-{c:02}");
            charts::write_chart_with_images(
                &out.join("charts").join(format!("{name}-{version}")),
                &name,
                &version,
                &refs,
            )?;
            println!("{name} {version} {}", refs.join(" "));
        }
    }
    Ok(())
}
