use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    // Read at run time, not baked in with env!(): a target directory copied
    // to another checkout would otherwise keep building the old sources.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR unset")?;
    let metadata_dir = std::path::Path::new(&manifest_dir)
        .parent()
        .ok_or_else(|| anyhow!("agent crate has no parent directory"))?
        .join("agent-ebpf");
    let root_dir = metadata_dir
        .to_str()
        .context("eBPF crate path is not UTF-8")?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "agent-ebpf",
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context("building the eBPF programs (run `cargo xtask bootstrap` if bpf-linker or rust-src is missing)")
}
