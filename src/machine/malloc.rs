//! glibc malloc settings for a process that allocates the same large tensors every step.
//!
//! libtorch's CPU allocator takes each tensor from glibc's malloc, which serves blocks above its
//! mmap threshold (at most 32 MiB) with a fresh `mmap` and returns them with `munmap` when freed.
//! A training step allocates such blocks every time (the word embedding's gradient, 47 MB for
//! BERT's vocabulary; attention's (B, heads, T, T) tensors at long lengths), so every step paid
//! the kernel's page faults and zeroing on first touch again: profiled on MiniLM at max length 128
//! in bf16, `fill_` 81 -> 62 ms and `copy_` 155 -> 107 ms over 8 steps with these settings, 6-13%
//! more samples/s; peak RSS 8-13% higher (BENCHMARKS.md). Freed memory is kept for the next
//! step instead: no mmap for large blocks, no trimming of the heap's top.
//! (Training runs on the main thread, whose arena is the sbrk heap; a thread's own arena still maps
//! blocks beyond its 64 MiB heap, whatever the settings.)
//!
//! Left as it is when the user set glibc's own knobs (`MALLOC_MMAP_MAX_`, `MALLOC_TRIM_THRESHOLD_`,
//! `GLIBC_TUNABLES`), and on other C libraries.

/// Applies the settings once, before any tensor is allocated.
pub fn keep_freed_memory() {
    let user_set = ["MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"]
        .iter()
        .any(|name| std::env::var_os(name).is_some());
    if !user_set {
        apply();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply() {
    // SAFETY: mallopt only changes the allocator's parameters; it is called at start-up, before
    // other threads exist. A refusal (return 0) leaves glibc's defaults, which are correct too.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() {}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    #[test]
    fn a_large_block_comes_from_the_heap_not_a_fresh_mapping() {
        // 40 MiB: above glibc's largest mmap threshold (32 MiB), below a thread arena's heap (64 MiB),
        // past which glibc maps a block whatever the settings (the test runs on its own thread).
        super::apply();
        // SAFETY: mallinfo2 only reads the allocator's counters.
        let mapped = || unsafe { libc::mallinfo2() }.hblkhd;
        let before = mapped();
        let block = std::hint::black_box(vec![1u8; 40 << 20]);
        let during = mapped();
        assert!(during < before + (40 << 20), "a 40 MiB block was mmapped: {before} -> {during} bytes");
        assert_eq!(block[12345], 1);
    }
}
