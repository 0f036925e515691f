//! `dcae::alloc::tune`: a large block freed and allocated again is served from the heap without
//! faulting its pages in a second time (glibc alone maps and unmaps it each time). A
//! `harness = false` binary: one check on the main thread, nothing else allocating beside it.

/// Allocates and touches `n` bytes (one write per page), frees them; the faults that took.
fn touch(n: usize) -> u64 {
    let before = dcae::alloc::minor_faults().unwrap_or(0);
    let mut v: Vec<u8> = Vec::with_capacity(n);
    let p = v.as_mut_ptr();
    for i in (0..n).step_by(4096) {
        // SAFETY: within the capacity just reserved.
        unsafe { p.add(i).write_volatile(1) };
    }
    std::hint::black_box(&mut v);
    drop(v);
    dcae::alloc::minor_faults().unwrap_or(0) - before
}

fn main() {
    let n = 64 << 20;
    let pages = (n / 4096) as u64;
    // glibc's own behaviour first: a block this large is mmap'ed, so each pass faults.
    let untuned = touch(n);
    if !dcae::alloc::tune() {
        // Not glibc, or the environment tunes malloc itself: nothing of ours to check.
        eprintln!("allocator left as it is (faults per pass: {untuned} for {pages} pages)");
        return;
    }
    if dcae::alloc::minor_faults().is_none() {
        eprintln!("no fault counter on this system");
        return;
    }
    let first = touch(n);
    let second = touch(n);
    assert!(
        untuned >= pages / 2,
        "untuned: {untuned} faults for {pages} pages"
    );
    // The first tuned pass grows the heap (fresh pages fault); the second reuses them.
    assert!(
        second < pages / 10,
        "tuned second pass: {second} faults for {pages} pages (first {first}, untuned {untuned})"
    );
    println!(
        "alloc: a 64 MiB block faulted {untuned} pages untuned, then {first} and {second} tuned: ok"
    );
}
