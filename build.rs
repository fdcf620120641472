//! Link flags tch's own build script does not give to *our* targets.
//!
//! - rpath to libtorch's folder, so `bertfit` runs without LD_LIBRARY_PATH;
//! - `--no-as-needed -ltorch`, so libtorch.so (and through it libtorch_cuda.so) stays a needed library:
//!   with `--as-needed` the linker drops it and CUDA is silently unavailable on a GPU machine.
//!
//!
//! It also compiles the C++ shim in `csrc/` (what tch 0.24 does not bind: autocast with a dtype, fused
//! Adam/AdamW, AMP unscaling over a list) against the very same libtorch headers, with libtorch's ABI.
//!
//! libtorch is found as torch-sys finds it: `LIBTORCH`, else the python on PATH (`LIBTORCH_USE_PYTORCH=1`).
use std::path::{Path, PathBuf};
use std::process::Command;

fn torch_lib_dir() -> Result<PathBuf, String> {
    if let Ok(root) = std::env::var("LIBTORCH") {
        return Ok(PathBuf::from(root).join("lib"));
    }
    let python = std::env::var("PYTHON_SYS_EXECUTABLE").unwrap_or_else(|_| "python3".to_string());
    let out = Command::new(&python)
        .args(["-c", "import os, torch; print(os.path.dirname(torch.__file__) + '/lib')"])
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{python} cannot import torch ({}); run scripts/setup.sh and put its venv first on PATH",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Compiles `csrc/torch_ext.cpp` into a static library linked into the crate. The headers are
/// `-isystem` so libtorch's own warnings do not drown ours.
fn build_shim(torch_root: &Path) {
    println!("cargo:rerun-if-changed=csrc");
    let include = torch_root.join("include");
    let api_include = include.join("torch/csrc/api/include");
    cc::Build::new()
        .cpp(true)
        .file("csrc/torch_ext.cpp")
        .flag("-std=c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .flag("-isystem")
        .flag(include.to_string_lossy().as_ref())
        .flag("-isystem")
        .flag(api_include.to_string_lossy().as_ref())
        .compile("bertfit_torch_ext");
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
}

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_USE_PYTORCH");
    println!("cargo:rerun-if-env-changed=PYTHON_SYS_EXECUTABLE");
    let lib = match torch_lib_dir() {
        Ok(lib) => lib,
        Err(e) => panic!("bertfit build: {e}"),
    };
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
    println!("cargo:rustc-link-arg=-Wl,--as-needed");
    match lib.parent() {
        Some(root) => build_shim(root),
        None => panic!("bertfit build: {} has no parent folder", lib.display()),
    }
}
