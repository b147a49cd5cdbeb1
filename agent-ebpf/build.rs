// Rebuild the programs when bpf-linker changes: it is not a Rust dependency,
// so cargo would not notice otherwise.
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
