//! Sets `cfg(lazyoci_test_root)` when the build runs as root, so that tests which need root
//! (tests/it/operator_image.rs runs the image in a chroot as uid 65532) run in a root build,
//! as CI's is, and are listed as ignored otherwise. Cached until build.rs changes.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(lazyoci_test_root)");
    println!("cargo::rerun-if-changed=build.rs");
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false);
    if root {
        println!("cargo::rustc-cfg=lazyoci_test_root");
    }
}
