//! Link flags tch's own build script does not give to *our* targets.
//!
//! - rpath to libtorch's folder, so `bertfit` runs without LD_LIBRARY_PATH;
//! - `--no-as-needed -ltorch`, so libtorch.so (and through it libtorch_cuda.so) stays a needed library:
//!   with `--as-needed` the linker drops it and CUDA is silently unavailable on a GPU machine.
//!
//! It also compiles the C++ shim in `csrc/` against the very same libtorch headers, with libtorch's
//! ABI, as two static libraries sharing one error path (`csrc/guard.h`): `csrc/torch_ext.cpp`, the
//! ATen calls tch 0.24 does not bind (vendor-notes.md lists them and why), and `csrc/c10d.cpp`,
//! PyTorch's c10d process groups (Gloo; NCCL when its headers are installed).
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

/// Compiles `csrc/torch_ext.cpp` and `csrc/profiler.cpp` into a static library linked into the
/// crate. The headers are `-isystem` so libtorch's own warnings do not drown ours.
fn build_shim(torch_root: &Path) {
    println!("cargo:rerun-if-changed=csrc");
    let include = torch_root.join("include");
    let api_include = include.join("torch/csrc/api/include");
    cc::Build::new()
        .cpp(true)
        .file("csrc/torch_ext.cpp")
        .file("csrc/profiler.cpp")
        .file("csrc/dropout.cpp")
        .file("csrc/linear.cpp")
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

/// The include folders ProcessGroupNCCL.hpp needs beyond libtorch's own (nccl.h, the CUDA runtime
/// headers with `crt/`, and CCCL's `cuda/std`), when all are present in the pip `nvidia/` folder
/// beside torch; `None` otherwise, and the shim is built without NCCL. `BERTFIT_NCCL=0` forces it off.
fn nccl_includes(torch_root: &Path) -> Option<Vec<PathBuf>> {
    println!("cargo:rerun-if-env-changed=BERTFIT_NCCL");
    println!("cargo:rerun-if-env-changed=BERTFIT_CUDA_HEADERS");
    if std::env::var("BERTFIT_NCCL").is_ok_and(|v| v == "0") {
        return None;
    }
    // The pip `nvidia/` folder beside torch, and one under BERTFIT_CUDA_HEADERS (a `pip install
    // --target` folder holding the header packages without touching the venv).
    let mut roots = vec![torch_root.parent()?.join("nvidia")];
    if let Ok(extra) = std::env::var("BERTFIT_CUDA_HEADERS") {
        roots.push(PathBuf::from(extra).join("nvidia"));
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    for nvidia in &roots {
        println!("cargo:rerun-if-changed={}", nvidia.display());
        let Ok(entries) = std::fs::read_dir(nvidia) else { continue };
        dirs.extend(entries.filter_map(|e| e.ok().map(|e| e.path().join("include"))).filter(|d| d.is_dir()));
    }
    // CCCL's wheel nests its headers one level down (`include/cccl/cuda/std/...`).
    let nested: Vec<PathBuf> = dirs.iter().map(|d| d.join("cccl")).filter(|d| d.is_dir()).collect();
    dirs.extend(nested);
    let found = |rel: &str| dirs.iter().any(|d| d.join(rel).is_file());
    let needed = ["nccl.h", "cuda_runtime_api.h", "crt/host_defines.h", "cuda/std/cstdint"];
    needed.iter().all(|rel| found(rel)).then_some(dirs)
}

/// Compiles `csrc/c10d.cpp` (process groups: TCPStore, Gloo, NCCL when its headers are present).
/// gloo's own headers are not in the wheel: `csrc/gloo_stubs/` declares what ProcessGroupGloo.hpp
/// names (libtorch_cpu.so holds the real gloo).
fn build_c10d(torch_root: &Path) {
    let include = torch_root.join("include");
    let api_include = include.join("torch/csrc/api/include");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .file("csrc/c10d.cpp")
        .flag("-std=c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .define("USE_C10D_GLOO", None)
        .include("csrc/gloo_stubs")
        .flag("-isystem")
        .flag(include.to_string_lossy().as_ref())
        .flag("-isystem")
        .flag(api_include.to_string_lossy().as_ref());
    if let Some(dirs) = nccl_includes(torch_root) {
        build.define("USE_C10D_NCCL", None).define("USE_CUDA", None).define("BERTFIT_HAVE_NCCL", None);
        for d in dirs {
            build.flag("-isystem").flag(d.to_string_lossy().as_ref());
        }
        println!("cargo:rustc-link-lib=dylib=torch_cuda");
    }
    build.compile("bertfit_c10d");
}

/// `BERTFIT_LIBTORCH_VERSION` (e.g. `2.11.0`) from libtorch's `TORCH_VERSION_*` macros, for the
/// model card's framework versions; `unknown` when the headers do not say.
fn libtorch_version(torch_root: &Path) {
    let include = torch_root.join("include/torch");
    let headers = [include.join("headeronly/version.h"), include.join("csrc/api/include/torch/version.h")];
    let text: String = headers.iter().filter_map(|h| std::fs::read_to_string(h).ok()).collect();
    let part = |name: &str| {
        text.lines().find_map(|l| {
            l.trim().strip_prefix(&format!("#define TORCH_VERSION_{name} "))?.trim().parse::<u32>().ok()
        })
    };
    let version = match (part("MAJOR"), part("MINOR"), part("PATCH")) {
        (Some(a), Some(b), Some(c)) => format!("{a}.{b}.{c}"),
        _ => "unknown".into(),
    };
    println!("cargo:rustc-env=BERTFIT_LIBTORCH_VERSION={version}");
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
        Some(root) => {
            libtorch_version(root);
            build_shim(root);
            build_c10d(root);
        }
        None => panic!("bertfit build: {} has no parent folder", lib.display()),
    }
}
