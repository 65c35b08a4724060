//! The SIGBUS guard: a truncated file never kills the reading process.
//!
//! Touching a page of a shared file mapping that lies past the end of the file
//! raises SIGBUS. The file is written by another process, which can truncate
//! it (or replace its contents with a shorter file) at any moment, including
//! between any length check the reader makes and its next load. A length check
//! therefore cannot make reading safe; this guard does:
//!
//! - Every reader mapping is registered here ([`Registration`]) for as long as
//!   it exists.
//! - A process-wide SIGBUS handler (`SA_SIGINFO | SA_ONSTACK`, installed once,
//!   the first time a mapping is registered) looks up the faulting address. If
//!   it lies inside a registered mapping, the handler maps a private zero page
//!   over the faulting page (`MAP_FIXED`), marks that mapping poisoned and
//!   returns: the faulting load is restarted and reads zeros, which every
//!   decoder treats as untrusted input anyway. The owner of the mapping sees
//!   the poison flag after its read ([`Registration::poisoned`]) and gives the
//!   file up.
//! - Every other SIGBUS is handed, unchanged, to the handler that was installed
//!   before (the Go runtime's, inside the Collector), or, if that was the
//!   default action, the default action is restored and the signal raised
//!   again, so the process dies of SIGBUS exactly as it would have without us.
//!
//! What runs inside the handler is async-signal-safe: atomic loads and stores,
//! and the `mmap` and `sigaction` system calls.
//!
//! The registry is a fixed array of slots, each a small seqlock: a writer of a
//! slot makes its sequence odd, stores the range, then makes it even again; the
//! handler reads the sequence, the range, and the sequence again, and trusts
//! the range only if both reads saw the same even number. A range is
//! unregistered before its mapping is unmapped, so an address in a registered
//! range always belongs to a live reader mapping.

use std::cell::UnsafeCell;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};

/// Most reader mappings registered at once (each file a Collector reads is one).
pub const MAX_GUARDED_MAPPINGS: usize = 8192;

struct Slot {
    /// Even: stable; odd: being changed. Bumped twice per change.
    seq: AtomicU64,
    /// First byte of the range; 0: free.
    start: AtomicUsize,
    len: AtomicUsize,
    /// Set by the handler when it replaced a page of this range.
    poisoned: AtomicBool,
    /// Claimed by a registration (taken with a CAS, so two threads never share a slot).
    taken: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    seq: AtomicU64::new(0),
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    poisoned: AtomicBool::new(false),
    taken: AtomicBool::new(false),
};

static SLOTS: [Slot; MAX_GUARDED_MAPPINGS] = [FREE; MAX_GUARDED_MAPPINGS];
/// One past the highest slot ever taken: the handler scans no further.
static HIGH_WATER: AtomicUsize = AtomicUsize::new(0);
/// Pages replaced by the handler since the process started.
static FAULTS_HANDLED: AtomicU64 = AtomicU64::new(0);
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(4096);
static INSTALL: Once = Once::new();
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The disposition that was in place before ours, written once by
/// [`install`] before our handler is installed and only read afterwards.
struct Previous(UnsafeCell<Option<libc::sigaction>>);
// SAFETY: written exactly once, inside `INSTALL.call_once`, before the handler
// that reads it is installed (the `sigaction` call that installs it is the
// synchronisation point); never written again.
#[allow(unsafe_code)]
unsafe impl Sync for Previous {}
static PREVIOUS: Previous = Previous(UnsafeCell::new(None));

/// A registered reader mapping; unregisters itself when dropped, which must
/// happen before the range is unmapped.
#[derive(Debug)]
pub struct Registration {
    index: usize,
}

impl Registration {
    /// Registers `[start, start + len)` and makes sure the handler is installed.
    /// Fails when [`MAX_GUARDED_MAPPINGS`] ranges are registered already, or
    /// when the handler cannot be installed.
    pub fn new(start: *const u8, len: usize) -> Result<Self, String> {
        install()?;
        let index = (0..MAX_GUARDED_MAPPINGS)
            .find(|&i| {
                SLOTS[i]
                    .taken
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })
            .ok_or_else(|| {
                format!("more than {MAX_GUARDED_MAPPINGS} files mapped at once: refusing another")
            })?;
        HIGH_WATER.fetch_max(index + 1, Ordering::AcqRel);
        let slot = &SLOTS[index];
        slot.poisoned.store(false, Ordering::Relaxed);
        write_range(slot, start as usize, len);
        Ok(Registration { index })
    }

    /// Whether the handler replaced a page of this mapping with zeros: the
    /// file shrank under the reader, and what was read since may be zeros.
    pub fn poisoned(&self) -> bool {
        SLOTS[self.index].poisoned.load(Ordering::Acquire)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let slot = &SLOTS[self.index];
        write_range(slot, 0, 0);
        slot.taken.store(false, Ordering::Release);
    }
}

/// Pages replaced with zeros by the handler since the process started.
pub fn faults_handled() -> u64 {
    FAULTS_HANDLED.load(Ordering::Relaxed)
}

fn write_range(slot: &Slot, start: usize, len: usize) {
    // Only the registration that took the slot writes it: no writer races.
    slot.seq.fetch_add(1, Ordering::AcqRel); // odd: being changed
    fence(Ordering::Release);
    slot.start.store(start, Ordering::Relaxed);
    slot.len.store(len, Ordering::Relaxed);
    slot.seq.fetch_add(1, Ordering::Release); // even: stable
}

/// The slot whose range holds `addr`, read consistently (seqlock).
fn find(addr: usize) -> Option<&'static Slot> {
    let high = HIGH_WATER.load(Ordering::Acquire).min(MAX_GUARDED_MAPPINGS);
    for slot in &SLOTS[..high] {
        loop {
            let before = slot.seq.load(Ordering::Acquire);
            if before % 2 == 1 {
                // Another thread is changing this slot: it is not the
                // faulting thread's own mapping (that one cannot change while
                // the faulting thread reads it), so it will not match.
                break;
            }
            let start = slot.start.load(Ordering::Relaxed);
            let len = slot.len.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if slot.seq.load(Ordering::Relaxed) != before {
                continue;
            }
            if start != 0 && addr >= start && addr - start < len {
                return Some(slot);
            }
            break;
        }
    }
    None
}

#[allow(unsafe_code)]
fn install() -> Result<(), String> {
    INSTALL.call_once(|| {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page > 0 {
            PAGE_SIZE.store(page as usize, Ordering::Relaxed);
        }
        // SAFETY: a zeroed sigaction is a valid value to be filled in; the
        // first call only reads the current disposition into `old`.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: a null new action only reads the disposition into `old`, a valid sigaction.
        if unsafe { libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) } != 0 {
            return;
        }
        // SAFETY: nothing reads PREVIOUS before our handler is installed below,
        // and this is the only write (inside call_once).
        unsafe { *PREVIOUS.0.get() = Some(old) };
        // SAFETY: as above; `handler` has the SA_SIGINFO signature.
        let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
        new.sa_sigaction = handler as *const () as usize;
        new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
        // SAFETY: sa_mask is a valid sigset_t to initialise.
        unsafe { libc::sigemptyset(&mut new.sa_mask) };
        // SAFETY: `new` is a fully initialised sigaction.
        if unsafe { libc::sigaction(libc::SIGBUS, &new, std::ptr::null_mut()) } == 0 {
            INSTALLED.store(true, Ordering::Release);
        }
    });
    if INSTALLED.load(Ordering::Acquire) {
        Ok(())
    } else {
        Err("cannot install the SIGBUS handler that guards reads of truncated files".into())
    }
}

#[allow(unsafe_code)]
extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler;
    // si_addr is the faulting address for a SIGBUS caused by a memory access.
    let addr = if info.is_null() {
        0
    } else {
        // SAFETY: `info` is non-null and points to the kernel's siginfo_t (see above).
        unsafe { (*info).si_addr() as usize }
    };
    if addr != 0
        && let Some(slot) = find(addr)
    {
        let page = PAGE_SIZE.load(Ordering::Relaxed);
        let base = addr & !(page - 1);
        // SAFETY: `base..base+page` lies inside a registered reader mapping
        // (ranges are page-aligned mappings, registered while mapped and
        // unregistered before they are unmapped). Replacing that one page with
        // a private zero page changes nothing but what this process reads
        // there; the reader that owns the mapping learns of it through the
        // poison flag and gives the file up.
        let p = unsafe {
            libc::mmap(
                base as *mut libc::c_void,
                page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            slot.poisoned.store(true, Ordering::Release);
            FAULTS_HANDLED.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    forward(sig, info, ctx);
}

/// Hands a SIGBUS that is not ours to the disposition that was there before.
#[allow(unsafe_code)]
fn forward(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: PREVIOUS was written before the handler was installed and is
    // never written again.
    let previous = unsafe { *PREVIOUS.0.get() };
    let Some(old) = previous else {
        return restore_default_and_raise(sig);
    };
    let h = old.sa_sigaction;
    if h == libc::SIG_DFL {
        restore_default_and_raise(sig);
    } else if h == libc::SIG_IGN {
        // The process asked to ignore SIGBUS before we came: keep doing so.
    } else if old.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with SA_SIGINFO, so it has
        // this signature; it is called with the arguments the kernel gave us.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(h) };
        f(sig, info, ctx);
    } else {
        // SAFETY: a handler installed without SA_SIGINFO takes the signal number only.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
        f(sig);
    }
}

#[allow(unsafe_code)]
fn restore_default_and_raise(sig: libc::c_int) {
    // SAFETY: a zeroed sigaction with SIG_DFL (0) is the default disposition;
    // sigaction and raise are async-signal-safe. The raised signal is blocked
    // while this handler runs and is delivered, with the default action (the
    // process dies of SIGBUS), as soon as it returns.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &dfl, std::ptr::null_mut());
        libc::raise(sig);
    }
}
