//! Seeds a source registry for `scripts/bench.sh`: 40 images with shared base layers, one
//! multi-arch index, one image with a single layer of just over 1 GiB (about 1.3 GiB in
//! all), plus a chart referencing all of them and a mirror.yaml. Prints the image
//! references, one per line.
//!
//! Usage: cargo run --release --example bench_seed -- SOURCE_ADDR TARGET_ADDR OUT_DIR

use lazyoci::testkit::{charts, images};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lazyoci::install_crypto_provider();
    let args: Vec<String> = std::env::args().collect();
    let [_, src, dst, out] = args.as_slice() else {
        anyhow::bail!("usage: bench_seed SOURCE_ADDR TARGET_ADDR OUT_DIR");
    };
    let out = std::path::Path::new(out);
    let mut refs = Vec::new();
    // 38 images of three 2-4 MiB layers; the first is one of 12 shared bases (seed i % 4 at
    // size 2 + i % 3 MiB), each used by 3 or 4 images.
    for i in 0..38u64 {
        let base = 10_000 + (i % 4);
        let img = images::image(
            src,
            &format!("bench/app-{i:02}"),
            "1.0",
            &[base, 20_000 + i, 30_000 + i],
            (2 + (i % 3) as usize) << 20,
            i % 2 == 0,
            "amd64",
        )
        .await?;
        refs.push(img.reference(src));
    }
    let multi = images::multiarch(
        src,
        "bench/multi",
        "1.0",
        &["amd64", "arm64", "arm"],
        40_000,
    )
    .await?;
    refs.push(multi.reference(src));
    // 1 GiB of incompressible data: the gzipped layer is a little larger than 1 GiB.
    let big = images::image(src, "bench/big", "1.0", &[50_000], 1 << 30, false, "amd64").await?;
    refs.push(big.reference(src));

    charts::write_chart_with_images(&out.join("charts"), "bench", "1.0.0", &refs)?;
    std::fs::write(
        out.join("mirror.yaml"),
        format!(
            "target: {{url: {dst}/lazyoci, insecure: true}}\nupstreams:\n  bench: {{type: local, path: ./charts/bench, chart: bench, versions: [\"1.0.0\"]}}\n"
        ),
    )?;
    for r in refs {
        println!("{r}");
    }
    Ok(())
}
