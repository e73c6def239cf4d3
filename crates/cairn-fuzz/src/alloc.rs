//! A counting global allocator: how many bytes one call on this thread allocates.
//!
//! Only the thread inside [`measure`] is counted, so parallel test threads do not disturb each
//! other. When the bytes live at once during the measured call would pass its limit, the process
//! stops right there with a message: the request that passes the limit is never handed to the
//! system allocator, so a hostile count cannot actually reserve gigabytes (or fail to and abort
//! with a less helpful message) before the check runs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;

/// Counts allocations of the thread that is inside [`measure`], forwarding all of them to the
/// system allocator.
pub struct Counting;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Sum of every allocation and growth made during the call.
    pub total: usize,
    /// Most bytes allocated during the call and live at the same time.
    pub peak: usize,
}

#[derive(Clone, Copy)]
struct State {
    active: bool,
    limit: usize,
    input_len: usize,
    live: isize,
    usage: Usage,
}

const IDLE: State = State {
    active: false,
    limit: 0,
    input_len: 0,
    live: 0,
    usage: Usage { total: 0, peak: 0 },
};

thread_local! {
    // Const-initialised and without a destructor, so touching it never allocates.
    static STATE: Cell<State> = const { Cell::new(IDLE) };
}

fn over_limit(s: &State, request: usize, live: isize) -> ! {
    // Counting stops first so the message itself is not measured.
    STATE.with(|st| st.set(IDLE));
    let _ = writeln!(
        std::io::stderr(),
        "ALLOCATION BOUND EXCEEDED: a request for {request} bytes would bring the bytes live \
         during one call to {live} for a {}-byte input, over the bound of {} bytes",
        s.input_len,
        s.limit
    );
    std::process::abort()
}

/// Accounts for `grow` more bytes (negative: freed) before they are allocated.
fn account(grow: isize, request: usize) {
    let _ = STATE.try_with(|st| {
        let mut s = st.get();
        if !s.active {
            return;
        }
        let live = s.live + grow;
        if live > 0 && live as usize > s.limit {
            over_limit(&s, request, live);
        }
        s.live = live;
        if grow > 0 {
            s.usage.total += grow as usize;
        }
        if live > 0 {
            s.usage.peak = s.usage.peak.max(live as usize);
        }
        st.set(s);
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        account(layout.size() as isize, layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        account(layout.size() as isize, layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        account(-(layout.size() as isize), 0);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        account(new_size as isize - layout.size() as isize, new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f`, counting what it allocates on this thread; aborts the process as soon as the bytes
/// live at once pass `limit`. A panic inside `f` is passed on after counting stops.
pub fn measure<R>(input_len: usize, limit: usize, f: impl FnOnce() -> R) -> (R, Usage) {
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            STATE.with(|st| st.set(IDLE));
        }
    }
    STATE.with(|st| {
        st.set(State {
            active: true,
            limit,
            input_len,
            ..IDLE
        })
    });
    let stop = Stop;
    let r = f();
    let usage = STATE.with(|st| st.get().usage);
    drop(stop);
    (r, usage)
}
