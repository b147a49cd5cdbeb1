//! Makes sure the eBPF toolchain is present, installing each missing piece once.
//!
//! bpf-linker must link against the same LLVM as the nightly rustc that emits
//! the bitcode. No distribution ships that LLVM, but the nightly toolchain
//! carries its own `libLLVM.so.*`, so bpf-linker is built against that file.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context, Result, bail};

pub const NIGHTLY: &str = "nightly";
const BPF_LINKER_VERSION: &str = "0.13.0";
const BPF_LINKER_LLVM_FEATURE: &str = "llvm-22";

/// Runs every bootstrap step, each only when its result is missing.
pub fn ensure(workspace: &Path) -> Result<()> {
    step("nightly rust-src component", ensure_rust_src)?;
    step("bpf-linker", || ensure_bpf_linker(workspace))?;
    Ok(())
}

fn step(name: &str, run: impl FnOnce() -> Result<StepOutcome>) -> Result<()> {
    let started = Instant::now();
    match run() {
        Ok(outcome) => {
            eprintln!(
                "xtask: {name}: {} ({:.1} s)",
                outcome.describe(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Err(error) => {
            eprintln!(
                "xtask: {name}: FAILED after {:.1} s",
                started.elapsed().as_secs_f64()
            );
            Err(error.context(format!("toolchain step `{name}` failed")))
        }
    }
}

enum StepOutcome {
    AlreadyPresent(String),
    Installed(String),
}

impl StepOutcome {
    fn describe(&self) -> String {
        match self {
            StepOutcome::AlreadyPresent(what) => format!("present ({what})"),
            StepOutcome::Installed(what) => format!("installed ({what})"),
        }
    }
}

fn ensure_rust_src() -> Result<StepOutcome> {
    let installed = capture(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        NIGHTLY,
    ]))
    .context("could not list the nightly toolchain's components; is rustup installed and the nightly toolchain present (`rustup toolchain list`)?")?;
    if installed.lines().any(|line| line.starts_with("rust-src")) {
        return Ok(StepOutcome::AlreadyPresent("rust-src".into()));
    }
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", NIGHTLY]))
        .context("by hand: `rustup component add rust-src --toolchain nightly`")?;
    Ok(StepOutcome::Installed("rust-src".into()))
}

fn ensure_bpf_linker(workspace: &Path) -> Result<StepOutcome> {
    if let Some(version) = working_bpf_linker_version() {
        if version.contains(BPF_LINKER_VERSION) {
            return Ok(StepOutcome::AlreadyPresent(version));
        }
        eprintln!("xtask: found `{version}`, want bpf-linker {BPF_LINKER_VERSION}; reinstalling");
    }

    let sysroot = PathBuf::from(
        capture(Command::new("rustc").args([&format!("+{NIGHTLY}"), "--print", "sysroot"]))
            .context("could not ask the nightly rustc for its sysroot")?
            .trim(),
    );
    let libllvm = find_nightly_libllvm(&sysroot.join("lib"))?;
    let prefix = workspace.join("target").join("llvm-prefix");
    let prefix_lib = prefix.join("lib");
    std::fs::create_dir_all(&prefix_lib)
        .with_context(|| format!("creating {}", prefix_lib.display()))?;
    let file_name = libllvm
        .file_name()
        .context("libLLVM path has no file name")?
        .to_owned();
    for link_name in [std::ffi::OsString::from("libLLVM.so"), file_name] {
        let link = prefix_lib.join(&link_name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&libllvm, &link)
            .with_context(|| format!("linking {} to {}", link.display(), libllvm.display()))?;
    }

    run(Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--locked",
            "--force",
            "--version",
            BPF_LINKER_VERSION,
            "--no-default-features",
            "--features",
            BPF_LINKER_LLVM_FEATURE,
        ])
        .env("LLVM_PREFIX", &prefix))
    .with_context(|| {
        format!(
            "by hand: `LLVM_PREFIX={} cargo install bpf-linker --version {BPF_LINKER_VERSION} --no-default-features --features {BPF_LINKER_LLVM_FEATURE}`",
            prefix.display()
        )
    })?;

    match working_bpf_linker_version() {
        Some(version) => Ok(StepOutcome::Installed(version)),
        None => bail!(
            "bpf-linker was installed but does not run under the nightly toolchain; try `rustup run nightly bpf-linker --version` to see why"
        ),
    }
}

/// bpf-linker loads the nightly's libLLVM, which is only on the library path
/// when run through rustup, exactly as rustc runs it during a build.
fn working_bpf_linker_version() -> Option<String> {
    let output = Command::new("rustup")
        .args(["run", NIGHTLY, "bpf-linker", "--version"])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn find_nightly_libllvm(lib_dir: &Path) -> Result<PathBuf> {
    let entries = std::fs::read_dir(lib_dir)
        .with_context(|| format!("reading the nightly toolchain's {}", lib_dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("libLLVM.so.") {
            return Ok(entry.path());
        }
    }
    bail!(
        "no libLLVM.so.* in {}; the nightly toolchain should ship one (reinstall it with `rustup toolchain install nightly`)",
        lib_dir.display()
    )
}

pub fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("could not start {command:?}"))?;
    if !status.success() {
        bail!("{command:?} exited with {status}");
    }
    Ok(())
}

fn capture(command: &mut Command) -> Result<String> {
    let output = command
        .output()
        .with_context(|| format!("could not start {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
