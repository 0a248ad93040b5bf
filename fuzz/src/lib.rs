//! What the fuzz targets in `fuzz_targets/` share. The properties they
//! check live in each crate's `testing` module, beside the property tests
//! that check them too.

use std::future::Future;

/// Runs `future` to its end on this thread's runtime, made once: a
/// runtime per input would cost more than most inputs.
pub fn block_on<F: Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime");
    }
    RUNTIME.with(|runtime| runtime.block_on(future))
}
