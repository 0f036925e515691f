//! The C allocator tuned for tensor work. glibc's malloc serves every request above its mmap
//! threshold (128 KiB, growing to 32 MiB at most) with a fresh `mmap`, and a freed one goes
//! straight back to the kernel: a forward pass allocates and frees buffers of tens to hundreds
//! of MiB per layer, so every one faults its pages in again (1.75 M minor faults and 4.5-5.7 s
//! of system time for `dcae bench --preset dc-ae-f32c32-sana-1.0 --size 256 --runs 3` on
//! 2 cores). Served from the heap instead and kept there for reuse, the same run takes 0.37 M
//! faults and 0.8-2.2 s of system time at the same peak memory (README, benchmarks).

/// Free memory at the top of the heap kept for reuse before it is handed back to the kernel.
pub const TRIM_THRESHOLD: i32 = 1 << 30;

/// Makes glibc serve large blocks from the heap (no per-allocation `mmap`) and keep up to
/// [`TRIM_THRESHOLD`] freed bytes for the next pass. Call once at start-up, before threads
/// start. Left alone when the user tunes malloc through the environment (`GLIBC_TUNABLES`,
/// `MALLOC_*`) or sets `DCAE_MALLOC=default`. Returns whether it changed anything; a no-op
/// (false) off glibc.
pub fn tune() -> bool {
    let user_tuned = std::env::vars_os().any(|(k, _)| {
        let k = k.to_string_lossy();
        k == "GLIBC_TUNABLES" || k.starts_with("MALLOC_")
    });
    let opted_out = std::env::var("DCAE_MALLOC").is_ok_and(|v| v == "default");
    if user_tuned || opted_out {
        return false;
    }
    tune_glibc()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_glibc() -> bool {
    // SAFETY: mallopt only sets allocator parameters; it is called before other threads run.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_glibc() -> bool {
    false
}

/// Minor page faults of this process so far (`getrusage`), for benchmarks and tests; `None`
/// off Unix.
pub fn minor_faults() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage fills the struct it is given; read only when it succeeded.
        let u = unsafe {
            if libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr()) != 0 {
                return None;
            }
            u.assume_init()
        };
        u64::try_from(u.ru_minflt).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}
