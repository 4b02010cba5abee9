//! The C allocator's handling of large buffers.
//!
//! glibc serves blocks above its mmap threshold (at most 32 MiB by its dynamic rule; a
//! 16-channel 1024^2 activation is 64 MiB) with fresh `mmap`s, unmaps them on free, and trims
//! the heap top when much is free: every iteration then page-faults its activations in again
//! (measured at 1024^2 NV-DIP: 4.4 s per iteration, a third of it in the kernel, against 3.1 s
//! with the buffers kept). [`keep_freed_buffers`] raises both thresholds so that freed buffers
//! are reused; the process keeps what it freed (its peak RSS is unchanged). The `magprior`
//! binary calls it at start-up; the library never changes the allocator unasked.

/// Asks glibc to keep freed large buffers for reuse (mmap threshold 1 GiB, no trimming).
/// Returns whether the allocator took both settings; `false` (and nothing done) on other
/// platforms and C libraries.
///
/// ```
/// let _ = magprior::keep_freed_buffers();
/// ```
pub fn keep_freed_buffers() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_THRESHOLD: i32 = -3;
        // SAFETY: mallopt only sets allocator parameters; it is safe to call at any time.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1 && mallopt(M_TRIM_THRESHOLD, i32::MAX) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
